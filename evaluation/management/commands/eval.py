"""manage.py eval retrieval --dataset NAME [--limit N] [--k 10] [--passages N] [--json] [--gate]
[--tolerance 0.02]
manage.py eval answers --dataset NAME [--model ID] [--judge ID] [--limit N] [--negatives N]
[--calibration N] [--passages N] [--json] [--gate] [--tolerance 0.02]

NAME is `halueval-qa` (HaluEval QA in a temporary store), `feedback` (the app's feedback with
citations; retrieval only) or the path of a JSONL file asked of the app's store: lines of
{"query", "relevant": [chunk ids]} for retrieval, {"query", "answer", "relevant"?} for answers.
Prints one JSON document on stdout, progress on stderr. Exit 1 when --gate finds a metric that
dropped by more than --tolerance since the previous comparable run; exit 2 on bad arguments.
"""

import contextlib
import json
import sys

from django.core.management.base import BaseCommand, CommandError

from evaluation import answers, services
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
            datasets="halueval-qa | feedback | PATH to a JSONL file",
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

    def handle(self, *args, kind: str, **options):
        getattr(self, f"_{kind}")(**options)

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
    parser.add_argument("--limit", help=f"first N questions (halueval-qa: default {default_limit})")
    parser.add_argument(
        "--passages", help="halueval-qa corpus size with distractors (default 5 x --limit)"
    )
    parser.add_argument("--json", action="store_true", help="compact JSON (one line)")
    parser.add_argument(
        "--gate", action="store_true", help="exit 1 if a metric fell since the previous run"
    )
    parser.add_argument(
        "--tolerance", default=str(services.DEFAULT_TOLERANCE), help="allowed absolute drop"
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
