"""manage.py eval retrieval --dataset NAME [--limit N] [--k 10] [--passages N] [--json] [--gate]
[--tolerance 0.02]
manage.py eval answers --dataset NAME [--model ID] [--judge ID] [--limit N] [--negatives N]
[--calibration N] [--passages N] [--json] [--gate] [--tolerance 0.02]
manage.py eval gate [--dataset NAME]... [--update [--limit N] [--passages N]] [--baselines DIR]
[--json]

NAME is `halueval-qa` (HaluEval QA in a temporary store), `cisi` (the CISI test collection at
CISI_DIR in a temporary store, judged by document; retrieval only), `feedback` (the app's
feedback with citations; retrieval only) or the path of a JSONL file asked of the app's store:
lines of {"query", "relevant": [chunk ids]} for retrieval, {"query", "answer", "relevant"?} for
answers. Prints one JSON document on stdout, progress on stderr. Exit 1 when --gate finds a
metric that dropped by more than --tolerance since the previous comparable run; exit 2 on bad
arguments.

`eval gate` measures retrieval on every dataset with a baseline in evaluation/baselines/ (or the
ones named) and exits 1 when a metric fell below its baseline's 95% confidence interval, naming
it; `--update` rewrites the baselines instead (commit them saying why).
"""

import contextlib
import json
import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from evaluation import answers, gate, services
from evaluation.datasets import DatasetError


class Command(BaseCommand):
    help = "Evaluate retrieval or answers on a dataset; prints JSON metrics and stores the run."

    def add_arguments(self, parser):
        kinds = parser.add_subparsers(dest="kind", required=True, metavar="KIND")
        # Types are checked in the service, not by argparse: a bad value must exit 2 even when
        # the command is called from code (argparse errors become exit 1 there).
        retrieval = kinds.add_parser("retrieval", help="recall, MRR and nDCG per search mode")
        _common(
            retrieval,
            datasets="halueval-qa | cisi | feedback | PATH to a JSONL file",
            default_limit=200,
        )
        retrieval.add_argument("--k", "-k", default="10", help="results per query (>= 10)")

        answers_ = kinds.add_parser(
            "answers", help="correctness, citation precision, abstention, judged faithfulness"
        )
        _common(
            answers_, datasets="halueval-qa | PATH to a JSONL file with answers", default_limit=20
        )
        answers_.add_argument("--model", help="model id to evaluate (default: the default model)")
        answers_.add_argument(
            "--judge", help="model id of the faithfulness judge (default: EVAL_JUDGE_MODEL)"
        )
        answers_.add_argument(
            "--negatives", help="questions also asked without their evidence (default: all)"
        )
        answers_.add_argument(
            "--calibration", help="HaluEval answer pairs to calibrate the judge on (default 25)"
        )

        gate_ = kinds.add_parser(
            "gate",
            help="hold retrieval to the committed baselines (evaluation/baselines/NAME.json)",
        )
        gate_.add_argument(
            "--dataset",
            action="append",
            default=[],
            help="only this dataset (repeatable; default: every baseline)",
        )
        gate_.add_argument(
            "--update", action="store_true", help="measure and rewrite the baselines instead"
        )
        gate_.add_argument("--limit", help="with --update: a new slice's first N questions")
        gate_.add_argument("--passages", help="with --update: a new slice's corpus size")
        gate_.add_argument(
            "--baselines", default=str(gate.BASELINES_DIR), help="folder of the baseline files"
        )
        gate_.add_argument("--json", action="store_true", help="compact JSON (one line)")

    def handle(self, *args, kind: str, **options):
        getattr(self, f"_{kind}")(**options)

    def _gate(self, *, dataset, update, limit, passages, baselines, json: bool, **options):
        try:
            with contextlib.redirect_stdout(sys.stderr):
                result = gate.eval_gate_run(
                    datasets=dataset,
                    update=update,
                    limit=_number(int, "--limit", limit),
                    passages=_number(int, "--passages", passages),
                    directory=Path(baselines),
                    log=self._log,
                )
        except (DatasetError, gate.GateError) as exc:
            raise CommandError(str(exc), returncode=2) from None
        self.stdout.write(_dumps(result.as_json(), compact=json))
        failures = []
        for verdict in result.verdicts:
            name = verdict.dataset
            if verdict.status == "updated":
                continue
            for row in verdict.improved:
                self._log(
                    f"{name} {_row(row)}: improved, above the interval; update the baseline "
                    f"deliberately (manage.py eval gate --update --dataset {name})"
                )
            for change, (old, new) in verdict.settings_changed.items():
                self._log(f"{name}: setting {change} was {old!r} in the baseline, now {new!r}")
            failures += [f"{name}: {problem}" for problem in verdict.problems]
            failures += [
                f"{name} {_row(row)}: dropped below the interval" for row in verdict.dropped
            ]
            if verdict.status == "passed":
                self._log(
                    f"{name}: passed ({len(verdict.rows) - len(verdict.improved)} metrics within "
                    f"their interval, {len(verdict.improved)} above)"
                )
        if failures:
            raise CommandError("retrieval gate failed:\n  " + "\n  ".join(failures), returncode=1)

    def _retrieval(self, *, dataset, limit, k, passages, json: bool, gate, tolerance, **options):
        arguments = {
            "limit": _number(int, "--limit", limit),
            "k": _number(int, "--k", k),
            "passages": _number(int, "--passages", passages),
            "tolerance": _number(float, "--tolerance", tolerance),
        }
        self._run(services.eval_retrieval_run, dataset=dataset, gate=gate, json=json, **arguments)

    def _answers(self, *, dataset, model, judge, json: bool, gate, **options):
        arguments = {
            "limit": _number(int, "--limit", options["limit"]),
            "negatives": _number(int, "--negatives", options["negatives"]),
            "calibration": _number(int, "--calibration", options["calibration"]),
            "passages": _number(int, "--passages", options["passages"]),
            "tolerance": _number(float, "--tolerance", options["tolerance"]),
        }
        self._run(
            answers.eval_answers_run,
            dataset=dataset,
            model_id=model,
            judge_id=judge,
            gate=gate,
            json=json,
            **arguments,
        )

    def _run(self, evaluate, *, json: bool, **arguments):
        try:
            # stdout carries the JSON document and nothing else (libraries may print)
            with contextlib.redirect_stdout(sys.stderr):
                result = evaluate(log=self._log, **arguments)
        except (DatasetError, services.EvaluationError) as exc:
            raise CommandError(str(exc), returncode=2) from None
        document = result.as_json()
        self.stdout.write(_dumps(document, compact=json))
        if result.gate is not None and not result.gate["passed"]:
            failed = ", ".join(
                f"{r['mode']} {r['metric']} {r['previous']:.4f} -> {r['current']:.4f}"
                for r in result.gate["regressions"]
            )
            raise CommandError(
                f"gate failed (tolerance {result.gate['tolerance']}): {failed}", returncode=1
            )

    def _log(self, message: str) -> None:
        self.stderr.write(f"[eval] {message}")


def _common(parser, *, datasets: str, default_limit: int) -> None:
    """The options every kind of evaluation takes."""
    parser.add_argument("--dataset", required=True, help=datasets)
    parser.add_argument(
        "--limit",
        help=f"first N questions (halueval-qa: default {default_limit}; cisi: all judged ones)",
    )
    parser.add_argument(
        "--passages",
        help="corpus size with distractors (halueval-qa: default 5 x --limit; cisi: all abstracts)",
    )
    parser.add_argument("--json", action="store_true", help="compact JSON (one line)")
    parser.add_argument(
        "--gate", action="store_true", help="exit 1 if a metric fell since the previous run"
    )
    parser.add_argument(
        "--tolerance", default=str(services.DEFAULT_TOLERANCE), help="allowed absolute drop"
    )


def _row(row: dict) -> str:
    return (
        f"{row['mode']} {row['metric']}: baseline {row['baseline']:.4f}, now {row['now']:.4f}, "
        f"allowed [{row['low']:.4f}, {row['high']:.4f}]"
    )


def _number(kind, flag: str, value):
    if value is None:
        return None
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise CommandError(f"{flag} must be a number, got {value!r}", returncode=2) from None


def _dumps(document: dict, *, compact: bool) -> str:
    return json.dumps(document) if compact else json.dumps(document, indent=2)
