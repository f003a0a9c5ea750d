"""Retrieval evaluation: ask every case in every mode, score, store the run, compare, gate.

Metrics are the means over cases of ``rag.metrics`` (recall@1/5/10, MRR@10, nDCG@10) with the
case's relevant keys (chunk ids, or CISI document ids: the dataset's ``relevance_key``); a run is
compared with the previous run of the same kind and dataset, metric by metric, and ``--gate``
fails when any metric dropped by more than the tolerance. (The CI gate against committed
baselines, with confidence intervals, is ``evaluation.gate``.)"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from rag import metrics
from rag.retrieval import MODES, Retriever
from rag.types import ScoredChunk

from .datasets import (
    CISI,
    FEEDBACK,
    HALUEVAL_QA,
    MANUALS,
    Case,
    DatasetError,
    Log,
    _quiet,
    chunk_key,
    dataset_open,
)
from .models import EvalJob, EvalRun
from .selectors import eval_run_latest

METRIC_KS = (1, 5, 10)
METRIC_NAMES = (*(f"recall@{k}" for k in METRIC_KS), "mrr@10", "ndcg@10")
DEFAULT_TOLERANCE = 0.02
ROUND = 4
RETRIEVER_SETTINGS = (
    "fusion",
    "pool_multiplier",
    "pool_min",
    "rrf_k",
    "dense_weight",
    "lexical_weight",
    "dedup_threshold",
    "min_dense_score",
)


class EvaluationError(ValueError):
    """Bad arguments for an evaluation (the dataset's own errors are DatasetError)."""


@dataclass(frozen=True)
class EvalResult:
    run: EvalRun
    previous: EvalRun | None
    deltas: dict
    gate: dict | None

    def as_json(self) -> dict:
        return {
            "dataset": self.run.dataset,
            "questions": self.run.questions,
            ("modes" if self.run.kind == EvalRun.Kind.RETRIEVAL else "metrics"): self.run.metrics,
            "run_id": self.run.pk,
            "previous_run_id": self.previous.pk if self.previous else None,
            "deltas": self.deltas,
            "gate": self.gate,
            "parameters": self.run.parameters,
            "models": self.run.model_ids,
            "prompt_version": self.run.prompt_version,
            "corpus": {
                "version": self.run.corpus_version,
                "description": self.run.corpus_description,
            },
        }


def case_score(ranked: Sequence[str], relevant: frozenset[str]) -> dict[str, float]:
    row = {f"recall@{k}": metrics.recall_at_k(ranked, relevant, k) for k in METRIC_KS}
    row["mrr@10"] = metrics.reciprocal_rank(ranked, relevant, 10)
    row["ndcg@10"] = metrics.ndcg_at_k(ranked, relevant, 10)
    return row


def retrieval_case_scores(
    retriever: Retriever,
    cases: Sequence[Case],
    *,
    k: int,
    collections: Sequence[str] | None = None,
    modes: Sequence[str] = MODES,
    key: Callable[[ScoredChunk], str] = chunk_key,
    log: Log = _quiet,
) -> dict[str, list[dict[str, float]]]:
    """``{mode: [{metric: score} per case, in case order]}``: each hit is judged by its ``key``
    (the dataset's ``relevance_key``); each query is embedded once for all modes."""
    retriever = replace(retriever, embedder=_QueryCache(retriever.embedder))
    rows: dict[str, list[dict[str, float]]] = {mode: [] for mode in modes}
    for done, case in enumerate(cases, start=1):
        for mode in modes:
            hits = retriever.search(case.query, k=k, collections=collections, mode=mode)
            rows[mode].append(case_score([key(hit) for hit in hits], case.relevant))
        if done % max(1, len(cases) // 20) == 0 or done == len(cases):  # every 5 %
            log(f"scored {done}/{len(cases)} questions")
    return rows


def metric_means(rows: dict[str, list[dict[str, float]]]) -> dict[str, dict[str, float]]:
    """``{mode: {metric: mean over cases}}`` of :func:`retrieval_case_scores`."""
    return {
        mode: {name: round(metrics.mean(r[name] for r in scored), ROUND) for name in METRIC_NAMES}
        for mode, scored in rows.items()
    }


def retrieval_scores(
    retriever: Retriever,
    cases: Sequence[Case],
    *,
    k: int,
    collections: Sequence[str] | None = None,
    modes: Sequence[str] = MODES,
    key: Callable[[ScoredChunk], str] = chunk_key,
    log: Log = _quiet,
) -> dict[str, dict[str, float]]:
    """``{mode: {metric: mean over cases}}``."""
    return metric_means(
        retrieval_case_scores(
            retriever, cases, k=k, collections=collections, modes=modes, key=key, log=log
        )
    )


def metric_deltas(current: dict, previous: dict) -> dict[str, dict[str, float]]:
    """``current - previous`` for every mode and metric both runs have."""
    return {
        mode: {
            name: round(value - previous[mode][name], ROUND)
            for name, value in values.items()
            if value is not None and previous.get(mode, {}).get(name) is not None
        }
        for mode, values in current.items()
        if mode in previous
    }


def gate_check(
    current: dict, previous: dict | None, *, tolerance: float, previous_run_id: int | None
) -> dict:
    """Passed unless some metric fell by more than ``tolerance`` (absolute) since ``previous``."""
    regressions = []
    for mode, deltas in metric_deltas(current, previous or {}).items():
        for name, delta in deltas.items():
            if -delta > tolerance + 1e-9:  # rounding must not turn "equal to" into "more than"
                regressions.append(
                    {
                        "mode": mode,
                        "metric": name,
                        "previous": previous[mode][name],
                        "current": current[mode][name],
                        "delta": delta,
                    }
                )
    return {
        "passed": not regressions,
        "tolerance": tolerance,
        "compared_with": previous_run_id,
        "regressions": regressions,
    }


def eval_retrieval_run(
    *,
    dataset: str,
    k: int = 10,
    limit: int | None = None,
    passages: int | None = None,
    gate: bool = False,
    tolerance: float = DEFAULT_TOLERANCE,
    log: Log = _quiet,
) -> EvalResult:
    """Evaluate retrieval on ``dataset`` in every mode, store the run and compare it with the
    previous run of the same dataset. Raises EvaluationError / DatasetError on bad arguments."""
    if k < 10:
        raise EvaluationError("--k must be at least 10 (the metrics go to rank 10)")
    if limit is not None and limit < 1:
        raise EvaluationError("--limit must be at least 1")
    if passages is not None and passages < 0:
        raise EvaluationError("--passages must be >= 0")
    if tolerance < 0:
        raise EvaluationError("--tolerance must be >= 0")

    with dataset_open(dataset, limit=limit, passages=passages, log=log) as data:
        log(f"evaluating {len(data.cases)} questions on {data.name} ({data.corpus_description})")
        scores = retrieval_scores(
            data.retriever,
            data.cases,
            k=k,
            collections=data.collections,
            key=data.relevance_key,
            log=log,
        )
        parameters = {
            "k": k,
            "limit": limit,
            "modes": list(MODES),
            "retriever": {name: getattr(data.retriever, name) for name in RETRIEVER_SETTINGS},
            **data.details,
        }
        name, questions = data.name, len(data.cases)
        embedder_name = getattr(data.retriever.embedder, "name", "")
        version, description = data.corpus_version, data.corpus_description

    return run_store(
        kind=EvalRun.Kind.RETRIEVAL,
        dataset=name,
        parameters=parameters,
        questions=questions,
        metrics=scores,
        gate=gate,
        tolerance=tolerance,
        model_ids={"embedder": embedder_name},
        corpus_version=version,
        corpus_description=description,
    )


def run_store(
    *,
    kind: str,
    dataset: str,
    parameters: dict,
    questions: int,
    metrics: dict,
    gate: bool,
    tolerance: float,
    **fields,
) -> EvalResult:
    """Store a run, compared with the previous comparable one and gated when ``gate``."""
    previous = eval_run_latest(
        kind=kind, dataset=dataset, parameters=parameters, questions=questions
    )
    verdict = None
    if gate:
        verdict = gate_check(
            metrics,
            previous.metrics if previous else None,
            tolerance=tolerance,
            previous_run_id=previous.pk if previous else None,
        )
    run = EvalRun.objects.create(
        kind=kind,
        dataset=dataset,
        parameters=parameters,
        questions=questions,
        metrics=metrics,
        gate=verdict,
        **fields,
    )
    deltas = metric_deltas(metrics, previous.metrics) if previous else {}
    return EvalResult(run=run, previous=previous, deltas=deltas, gate=verdict)


# --- runs asked for from the browser ------------------------------------------------------------

logger = logging.getLogger(__name__)

# The built-in datasets each kind takes (`eval` also takes a JSONL path, which the page does
# not: a path typed into a web form would read the server's files).
PAGE_DATASETS = {
    EvalRun.Kind.RETRIEVAL: (HALUEVAL_QA, CISI, MANUALS, FEEDBACK),
    EvalRun.Kind.ANSWERS: (HALUEVAL_QA,),
}
# Progress from the lines a run logs: "indexed 40/100 passages" while indexing (5-45 % of the
# run) is 21 %. Never backwards: an answers run logs its positives, then its negatives.
PROGRESS_PHASES = (
    (re.compile(r"^indexed (\d+)/(\d+)"), 5, 45),
    (re.compile(r"^scored (\d+)/(\d+)"), 45, 99),
    (re.compile(r"^answered (\d+)/(\d+)"), 45, 75),
    (re.compile(r"^negative (\d+)/(\d+)"), 75, 90),
)
PROGRESS_WRITE_INTERVAL = 1.0  # seconds between writes of a new stage at the same percentage


def eval_job_request(
    *, kind: str, dataset: str, options: dict, by: AbstractBaseUser | None = None
) -> EvalJob:
    """Queue an evaluation run (what `manage.py eval KIND --dataset DATASET` does, with
    ``options`` as the service takes them) for a Celery worker, once the row is committed."""
    if dataset not in PAGE_DATASETS.get(kind, ()):
        allowed = ", ".join(PAGE_DATASETS.get(kind, ())) or "none"
        raise EvaluationError(f"{kind} runs from the page take the datasets: {allowed}")
    job = EvalJob.objects.create(kind=kind, dataset=dataset, options=options, requested_by=by)
    from .tasks import eval_job_run_task  # the task module imports this one

    def send() -> None:
        try:
            eval_job_run_task.delay(job.pk)
        except Exception as exc:  # broker down: say so on the job instead of leaving it queued
            logger.exception("could not queue evaluation job %s", job.pk)
            eval_job_fail(job_id=job.pk, reason=f"could not reach the task queue ({exc})")

    transaction.on_commit(send)
    return job


def eval_job_run(*, job_id: int) -> EvalJob:
    """Do a queued run: the same service as the command, its progress lines written on the job
    row as they come; a bad argument or dataset fails the job with the reason."""
    from .answers import eval_answers_run  # answers imports this module

    job = EvalJob.objects.get(pk=job_id)
    if job.is_finished:  # a message delivered again after the run ended
        return job
    EvalJob.objects.filter(pk=job_id).update(
        status=EvalJob.Status.RUNNING,
        started_at=timezone.now(),
        progress=0,
        stage="starting",
        updated_at=timezone.now(),  # update() leaves auto_now alone; EvalJob.stalled reads it
    )
    evaluate = eval_retrieval_run if job.kind == EvalRun.Kind.RETRIEVAL else eval_answers_run
    try:
        result = evaluate(dataset=job.dataset, log=_JobProgress(job_id), **job.options)
    except (DatasetError, EvaluationError) as exc:
        eval_job_fail(job_id=job_id, reason=str(exc))
        return EvalJob.objects.get(pk=job_id)
    gate = result.gate
    verdict = "" if gate is None else (" · gate passed" if gate["passed"] else " · gate failed")
    EvalJob.objects.filter(pk=job_id).update(
        status=EvalJob.Status.DONE,
        progress=100,
        stage=f"stored run #{result.run.pk}{verdict}",
        run=result.run,
        finished_at=timezone.now(),
    )
    return EvalJob.objects.get(pk=job_id)


def eval_job_fail(*, job_id: int, reason: str) -> None:
    EvalJob.objects.filter(pk=job_id).update(
        status=EvalJob.Status.FAILED,
        error=reason[:2000],
        finished_at=timezone.now(),
        updated_at=timezone.now(),
    )


class _JobProgress:
    """The ``log`` of a run done for the page: each line becomes the job's stage, and a line
    that counts ("scored 20/50") its percentage."""

    def __init__(self, job_id: int) -> None:
        self.job_id, self.progress, self.written = job_id, 0, 0.0

    def __call__(self, message: str) -> None:
        logger.info("evaluation job %s: %s", self.job_id, message)
        progress = self.progress
        for pattern, start, end in PROGRESS_PHASES:
            found = pattern.match(message)
            if found:
                done, total = int(found[1]), max(int(found[2]), 1)
                progress = max(progress, start + (end - start) * min(done, total) // total)
        now = time.monotonic()
        if progress == self.progress and now - self.written < PROGRESS_WRITE_INTERVAL:
            return
        self.progress, self.written = progress, now
        EvalJob.objects.filter(pk=self.job_id).update(
            progress=progress, stage=message[:300], updated_at=timezone.now()
        )


class _QueryCache:
    """Embeds each query once: every case is asked in three modes."""

    def __init__(self, embedder) -> None:
        self.embedder, self.dimension, self.name = embedder, embedder.dimension, embedder.name
        self._cache: dict[str, np.ndarray] = {}

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        for text in texts:
            if text not in self._cache:
                self._cache[text] = self.embedder.embed([text])[0]
        return np.vstack([self._cache[text] for text in texts])
