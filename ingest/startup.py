"""Ingest's part in `manage.py serve` (core.signals, connected in IngestConfig.ready()).

On the embedded default the serving process also runs the ingestion worker: started before the
web server, then — what beat does daily in production — audit retention, then the documents a
crash left unfinished are queued again; stopped when the web server stops."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from django.conf import settings

if TYPE_CHECKING:
    from .embedded import EmbeddedWorker

_worker: EmbeddedWorker | None = None  # the one this process started, while it serves


def start_worker(*, worker: bool, write: Callable[[str], object], **kwargs) -> None:
    """On ``core.signals.serving``: the embedded worker, unless settings or ``--no-worker``
    (``worker=False``) say otherwise."""
    global _worker
    if not (settings.EMBEDDED_WORKER and worker):
        return
    from audit.services import audit_apply_retention

    from . import services
    from .embedded import EmbeddedWorker  # imports the Celery worker: only when one is started

    _worker = EmbeddedWorker()
    _worker.start()
    redacted = audit_apply_retention()  # what beat does daily in production
    if redacted:
        write(f"retention: redacted {redacted} old audit record(s)")
    resumed = services.documents_resume()
    if resumed:
        write(f"resumed {resumed} unfinished document(s)")


def stop_worker(**kwargs) -> None:
    """On ``core.signals.serving_stopped``: stop the worker ``start_worker`` started."""
    global _worker
    if _worker is not None:
        worker, _worker = _worker, None
        worker.stop()
