from __future__ import annotations

from .models import EvalJob, EvalRun

# What a run measured, as opposed to how the system under test was set up (retriever and
# answering settings, which are exactly what a gate should catch changing; the model and the
# prompt version are columns of their own).
SYSTEM_PARAMETERS = frozenset({"retriever", "answering"})


def eval_run_latest(
    *, kind: str, dataset: str, parameters: dict | None = None, questions: int | None = None
) -> EvalRun | None:
    """The most recent comparable run: same kind and dataset and, when given, the same questions
    and measurement parameters (k, limit, corpus size). A run over other questions is no
    baseline: comparing with it would gate on noise."""
    runs = EvalRun.objects.filter(kind=kind, dataset=dataset).order_by("-created_at", "-id")
    if questions is not None:
        runs = runs.filter(questions=questions)
    if parameters is None:
        return runs.first()
    wanted = _measured(parameters)
    return next((run for run in runs[:200] if _measured(run.parameters) == wanted), None)


def _measured(parameters: dict) -> dict:
    return {key: value for key, value in parameters.items() if key not in SYSTEM_PARAMETERS}


def eval_jobs_recent(*, limit: int = 10) -> list[EvalJob]:
    """The runs last asked for on the page, newest first, with who asked (one query)."""
    return list(EvalJob.objects.select_related("requested_by")[:limit])


def eval_job_json(job: EvalJob) -> dict:
    """What the page polls for while a run goes on."""
    return {
        "id": job.pk,
        "kind": job.kind,
        "dataset": job.dataset,
        "status": job.status,
        "progress": job.progress,
        "stage": job.stage,
        "error": job.error,
        "run_id": job.run_id,
        "finished": job.is_finished,
        "notice": job.notice,
    }
