from __future__ import annotations

from .models import EvalRun

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
