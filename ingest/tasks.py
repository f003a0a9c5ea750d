"""Celery tasks: each takes ids, has a stable name, and calls one service. Retries live here."""

from __future__ import annotations

import logging
import random

from botocore.exceptions import ConnectionError as ObjectStorageConnectionError
from botocore.exceptions import HTTPClientError as ObjectStorageHTTPError
from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import InterfaceError, OperationalError
from kombu.exceptions import OperationalError as BrokerError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from rag.parsing import ParseError
from rag.store import StoreUnavailable

from . import services
from .models import Document

logger = logging.getLogger(__name__)

# Failures of a service we depend on, not of the document: worth another attempt later.
TRANSIENT_ERRORS = (
    StoreUnavailable,
    ObjectStorageConnectionError,  # the bucket's endpoint (STORAGE_BACKEND=s3) unreachable
    ObjectStorageHTTPError,
    OperationalError,
    InterfaceError,
    BrokerError,
    RedisConnectionError,
    RedisTimeoutError,
    ConnectionError,
    TimeoutError,
)


def retry_countdown(retries: int) -> float:
    """Exponential back-off with full jitter: 5 s, 10 s, 20 s ... capped at 10 minutes."""
    return random.uniform(0.5, 1.0) * min(600.0, 5.0 * 2**retries)


@shared_task(
    name="ingest.document_ingest",
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=settings.INGEST_MAX_RETRIES,
    soft_time_limit=settings.INGEST_SOFT_TIME_LIMIT,
    time_limit=settings.INGEST_TIME_LIMIT,
    ignore_result=True,
)
def document_ingest_task(self, document_id: int) -> None:
    try:
        services.document_ingest(document_id=document_id)
    except (Document.DoesNotExist, services.DocumentGone):
        logger.info("document %s was deleted before ingestion finished", document_id)
    except ParseError as exc:
        services.document_fail(document_id=document_id, reason=exc.reason)
    except FileNotFoundError:
        services.document_fail(
            document_id=document_id, reason="the stored original file is missing from storage"
        )
    except (services.DocumentTimeLimit, SoftTimeLimitExceeded):
        # the pipeline's own checkpoint, or Celery's signal in a prefork worker: either way the
        # worker is free for the next document, and what was indexed so far is taken back
        services.document_fail(
            document_id=document_id, reason=services.time_limit_reason(), remove_points=True
        )
    except TRANSIENT_ERRORS as exc:
        attempt = self.request.retries + 1
        if self.request.retries >= self.max_retries:
            services.document_fail(
                document_id=document_id, reason=f"gave up after {attempt} attempts: {exc}"
            )
            return
        countdown = retry_countdown(self.request.retries)
        logger.warning(
            "document %s: transient failure, retry in %.0fs: %s", document_id, countdown, exc
        )
        try:
            services.document_retry_later(
                document_id=document_id, reason=str(exc), countdown=countdown, attempt=attempt
            )
        except TRANSIENT_ERRORS:
            pass  # the database itself is down: the retry will say so next time
        raise self.retry(exc=exc, countdown=countdown) from exc
    except Exception as exc:  # a bug or an unexpected input: fail visibly, keep the worker alive
        logger.exception("document %s: ingestion failed", document_id)
        services.document_fail(
            document_id=document_id, reason=f"internal error ({type(exc).__name__}: {exc})"
        )
