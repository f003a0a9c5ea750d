"""Celery tasks: each takes ids, has a stable name, and calls one service."""

from __future__ import annotations

import logging

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded

from . import services
from .models import EvalJob

logger = logging.getLogger(__name__)


# No retries: a run that failed says why on the page, and running a whole evaluation again on
# its own would only load the worker twice. Unexpected errors are recorded, never raised, so the
# worker (in the embedded default, the serving process's) goes on with the next task.
@shared_task(name="evaluation.eval_job_run", ignore_result=True)
def eval_job_run_task(job_id: int) -> None:
    try:
        services.eval_job_run(job_id=job_id)
    except EvalJob.DoesNotExist:
        logger.info("evaluation job %s was deleted before it ran", job_id)
    except SoftTimeLimitExceeded:
        services.eval_job_fail(
            job_id=job_id, reason="stopped at the task time limit: try a smaller --limit"
        )
    except Exception as exc:
        logger.exception("evaluation job %s failed", job_id)
        services.eval_job_fail(
            job_id=job_id, reason=f"internal error ({type(exc).__name__}: {exc})"
        )
