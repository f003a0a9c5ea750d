"""The retrieval quality gate: every development set measured on a fixed slice and held to the
baseline committed for it in ``evaluation/baselines/NAME.json``.

A baseline records, per search mode and metric, the value measured and the half-width of its 95%
confidence interval: a percentile bootstrap of the mean over the per-question scores, with a fixed
seed so the same scores always give the same interval. The gate measures again on the same slice
and fails when a metric falls below ``value - half_width``; above ``value + half_width`` it is
reported as improved (the baseline is then updated deliberately, not by the gate). Differences
inside the interval are what another sample of questions could give, so they neither fail nor
count as progress.

The gate runs whatever baselines exist: adding a dataset is ``manage.py eval gate --update
--dataset NAME`` and committing the file it writes, with a message that says why.
"""

from __future__ import annotations

import datetime
import json
import re
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import numpy as np
from django.conf import settings

from .datasets import FEEDBACK, Log, _quiet, dataset_open
from .services import METRIC_NAMES, ROUND, metric_means, retrieval_case_scores

BASELINES_DIR = Path(__file__).resolve().parent / "baselines"
K = 10
CONFIDENCE = 0.95
RESAMPLES = 2000
SEED = 0  # fixed: the same per-question scores always give the same interval
METHOD = "percentile bootstrap of the mean over questions (3/n when all scores are equal)"
# Retriever fields that are components, not settings
_COMPONENTS = {"embedder", "store", "lexical"}
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_EPSILON = 1e-9  # rounding to 4 places must not turn "at the bound" into "beyond it"


class GateError(ValueError):
    """Bad arguments for the gate: an unknown dataset, no baselines, a malformed baseline."""


@dataclass(frozen=True)
class Measurement:
    dataset: str
    limit: int
    passages: int | None
    questions: int
    scores: dict[str, list[dict[str, float]]]  # {mode: [{metric: score} per question]}
    corpus_version: str
    corpus_description: str
    settings: dict
    seconds: float

    @property
    def means(self) -> dict[str, dict[str, float]]:
        return metric_means(self.scores)


@dataclass(frozen=True)
class Verdict:
    """One dataset's result: ``rows`` compare each metric with its baseline interval;
    ``problems`` make the comparison meaningless (another corpus, other questions)."""

    dataset: str
    baseline_path: str
    measurement: Measurement
    status: str  # "passed" | "failed" | "updated"
    rows: list[dict] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    settings_changed: dict = field(default_factory=dict)

    @property
    def dropped(self) -> list[dict]:
        return [row for row in self.rows if row["status"] == "dropped"]

    @property
    def improved(self) -> list[dict]:
        return [row for row in self.rows if row["status"] == "improved"]

    def as_json(self) -> dict:
        m = self.measurement
        return {
            "dataset": self.dataset,
            "status": self.status,
            "baseline": self.baseline_path,
            "questions": m.questions,
            "slice": {"limit": m.limit, "passages": m.passages, "k": K},
            "corpus": {"version": m.corpus_version, "description": m.corpus_description},
            "seconds": m.seconds,
            "problems": self.problems,
            "settings_changed": self.settings_changed,
            "modes": m.means,
            "comparison": self.rows,
        }


@dataclass(frozen=True)
class GateResult:
    verdicts: list[Verdict]

    @property
    def passed(self) -> bool:
        return all(v.status != "failed" for v in self.verdicts)

    def as_json(self) -> dict:
        return {"passed": self.passed, "datasets": [v.as_json() for v in self.verdicts]}


# ---------------------------------------------------------------------------------------------
# The service
# ---------------------------------------------------------------------------------------------


def eval_gate_run(
    *,
    datasets: Sequence[str] = (),
    update: bool = False,
    limit: int | None = None,
    passages: int | None = None,
    directory: Path = BASELINES_DIR,
    log: Log = _quiet,
) -> GateResult:
    """Measure every dataset that has a baseline in ``directory`` (or those named) and compare
    it with its baseline; with ``update``, write the baselines instead. A new baseline takes
    the dataset's default slice unless ``limit``/``passages`` say otherwise; an existing one
    keeps its slice. Raises GateError / DatasetError on bad arguments."""
    if (limit is not None or passages is not None) and not update:
        raise GateError("--limit and --passages choose a new baseline's slice: only with --update")
    if limit is not None and limit < 1:
        raise GateError("--limit must be at least 1")
    if passages is not None and passages < 0:
        raise GateError("--passages must be >= 0")
    baselines = baselines_load(directory)
    names = list(dict.fromkeys(datasets)) or sorted(baselines)
    if not names:
        raise GateError(
            f"no baselines in {directory}: create one with "
            "`manage.py eval gate --update --dataset NAME`"
        )
    for name in names:
        if not _NAME_RE.match(name) or name == FEEDBACK:
            raise GateError(
                f"the gate measures built-in development sets, not {name!r} (the app's own "
                "store changes with its documents)"
            )
        if name not in baselines and not update:
            raise GateError(
                f"no baseline for {name!r} in {directory}: create it with "
                f"`manage.py eval gate --update --dataset {name}`"
            )

    verdicts = []
    for name in names:
        baseline = baselines.get(name)
        path = directory / f"{name}.json"
        chosen = baseline["slice"] if baseline else {"limit": limit, "passages": passages}
        if baseline and update and (limit is not None or passages is not None):
            chosen = {"limit": limit, "passages": passages}
        measurement = gate_measure(
            dataset=name, limit=chosen.get("limit"), passages=chosen.get("passages"), log=log
        )
        if update:
            baseline_write(path, baseline_document(measurement))
            log(f"{name}: wrote {path}")
            verdicts.append(Verdict(name, str(path), measurement, "updated"))
        else:
            verdicts.append(gate_compare(baseline, measurement, baseline_path=str(path)))
    return GateResult(verdicts)


def gate_measure(
    *, dataset: str, limit: int | None, passages: int | None, log: Log = _quiet
) -> Measurement:
    """Every question of the slice, in every mode, scored one by one."""
    started = time.perf_counter()
    with dataset_open(dataset, limit=limit, passages=passages, log=log) as data:
        log(f"{dataset}: {len(data.cases)} questions ({data.corpus_description})")
        scores = retrieval_case_scores(
            data.retriever,
            data.cases,
            k=K,
            collections=data.collections,
            key=data.relevance_key,
            log=log,
        )
        retriever = {
            f.name: getattr(data.retriever, f.name)
            for f in fields(data.retriever)
            if f.name not in _COMPONENTS
        }
        used = {
            "k": K,
            "retriever": retriever,
            "chunker": {"tokens": settings.CHUNK_TOKENS, "overlap": settings.CHUNK_OVERLAP},
            "embedder": getattr(data.retriever.embedder, "name", ""),
        }
        measurement = Measurement(
            dataset=dataset,
            limit=len(data.cases),
            passages=data.details.get("passages", passages),
            questions=len(data.cases),
            scores=scores,
            corpus_version=data.corpus_version,
            corpus_description=data.corpus_description,
            settings=used,
            seconds=0.0,
        )
    seconds = round(time.perf_counter() - started, 1)
    log(f"{dataset}: measured in {seconds} s")
    return replace(measurement, seconds=seconds)


def gate_compare(baseline: dict, measurement: Measurement, *, baseline_path: str) -> Verdict:
    """Each metric of ``baseline`` against ``measurement``: "dropped" below its interval,
    "improved" above it, "ok" inside."""
    problems = []
    corpus = baseline.get("corpus", {}).get("version")
    if corpus != measurement.corpus_version:
        problems.append(
            f"the corpus differs from the baseline's (digest {measurement.corpus_version}, "
            f"baseline {corpus}): update the baseline deliberately"
        )
    if baseline.get("questions") != measurement.questions:
        problems.append(
            f"{measurement.questions} questions, the baseline has {baseline.get('questions')}"
        )
    means = measurement.means
    rows = []
    for mode, entries in baseline["metrics"].items():
        for name, entry in entries.items():
            now = means.get(mode, {}).get(name)
            if now is None:
                problems.append(f"{mode} {name}: not measured any more")
                continue
            value, half = entry["value"], entry["half_width"]
            low, high = round(value - half, ROUND), round(value + half, ROUND)
            status = (
                "dropped" if now < low - _EPSILON else "improved" if now > high + _EPSILON else "ok"
            )
            rows.append(
                {
                    "mode": mode,
                    "metric": name,
                    "baseline": value,
                    "now": now,
                    "low": low,
                    "high": high,
                    "status": status,
                }
            )
    failed = bool(problems) or any(row["status"] == "dropped" for row in rows)
    return Verdict(
        dataset=measurement.dataset,
        baseline_path=baseline_path,
        measurement=measurement,
        status="failed" if failed else "passed",
        rows=rows,
        problems=problems,
        settings_changed=_changes(baseline.get("settings", {}), measurement.settings),
    )


# ---------------------------------------------------------------------------------------------
# Baselines
# ---------------------------------------------------------------------------------------------


def bootstrap_half_width(
    values: Sequence[float],
    *,
    resamples: int = RESAMPLES,
    seed: int = SEED,
    confidence: float = CONFIDENCE,
) -> float:
    """Half the width of the percentile bootstrap ``confidence`` interval of the mean of
    ``values`` (resampled with replacement ``resamples`` times from a generator seeded with
    ``seed``).

    When every question scores the same (a metric at its ceiling: all 200 answers in the top 5)
    the bootstrap interval has width 0, and one question changing would fail the gate; the rule
    of three stands in there: 3/n, the 95% bound on the rate of something not seen in n tries."""
    data = np.asarray(values, dtype=float)
    if len(data) == 0:
        return 0.0
    if np.ptp(data) == 0:
        return round(min(1.0, 3 / len(data)), ROUND)
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, len(data), size=(resamples, len(data)))].mean(axis=1)
    low, high = np.quantile(means, [(1 - confidence) / 2, (1 + confidence) / 2])
    return round(float(high - low) / 2, ROUND)


def baseline_document(measurement: Measurement) -> dict:
    """What a baseline file holds: where the numbers come from and the numbers."""
    means = measurement.means
    return {
        "dataset": measurement.dataset,
        "slice": {"limit": measurement.limit, "passages": measurement.passages},
        "questions": measurement.questions,
        "corpus": {
            "version": measurement.corpus_version,
            "description": measurement.corpus_description,
        },
        "code": code_version(),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "settings": measurement.settings,
        "interval": {
            "confidence": CONFIDENCE,
            "method": METHOD,
            "resamples": RESAMPLES,
            "seed": SEED,
        },
        "measured_seconds": measurement.seconds,
        "metrics": {
            mode: {
                name: {
                    "value": means[mode][name],
                    "half_width": bootstrap_half_width([row[name] for row in rows]),
                }
                for name in METRIC_NAMES
            }
            for mode, rows in measurement.scores.items()
        },
    }


def baselines_load(directory: Path) -> dict[str, dict]:
    """``{dataset: baseline}`` for every ``NAME.json`` in ``directory``."""
    baselines = {}
    for path in sorted(directory.glob("*.json")):
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
            slice_, metrics = document["slice"], document["metrics"]
            for entries in metrics.values():
                for entry in entries.values():
                    float(entry["value"]), float(entry["half_width"])
            if not isinstance(slice_, dict):
                raise TypeError("slice")
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise GateError(f"{path}: not a baseline ({exc.__class__.__name__}: {exc})") from None
        baselines[path.stem] = document
    return baselines


def baseline_write(path: Path, document: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")


def code_version() -> dict:
    """The commit the numbers were measured on, and whether the tree had uncommitted changes."""
    root = Path(settings.BASE_DIR)

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", *args], cwd=root, capture_output=True, text=True, timeout=30, check=True
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip()

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def _changes(before: dict, after: dict, prefix: str = "") -> dict:
    """``{"retriever.rrf_k": [before, after]}`` for every setting that differs."""
    changed = {}
    for key in sorted(set(before) | set(after)):
        old, new = before.get(key), after.get(key)
        if isinstance(old, dict) and isinstance(new, dict):
            changed.update(_changes(old, new, f"{prefix}{key}."))
        elif old != new:
            changed[f"{prefix}{key}"] = [old, new]
    return changed
