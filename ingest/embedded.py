"""The embedded default's worker: a Celery worker on a thread of the process that owns the store.

Qdrant local mode lets one process open its folder, so in the embedded default the web process
also consumes the ingestion queue. It is a real Celery worker (solo pool) reading the folder
broker under DATA_DIR, so the CLI can queue work for it and the task code is the one production
runs. Celery's time limits are not enforced on a thread (they need the prefork pool's signals),
so the pipeline checks INGEST_SOFT_TIME_LIMIT itself between pages and batches
(ingest.services.document_ingest): a huge document is failed with the limit named and the worker
goes on. The hard limit cannot be had here: nothing can kill a thread.
"""

from __future__ import annotations

import logging
import socket
import threading

from celery.worker import WorkController, state

from config.celery import app as celery_app

logger = logging.getLogger(__name__)


class _WorkController(WorkController):
    def __init__(self, *args, **kwargs) -> None:
        self.started = threading.Event()
        super().__init__(*args, **kwargs)

    def on_consumer_ready(self, consumer) -> None:
        self.started.set()


class EmbeddedWorker:
    def __init__(self, app=celery_app) -> None:
        self.app = app
        self.worker: _WorkController | None = None
        self.thread: threading.Thread | None = None

    def start(self, *, timeout: float = 30.0) -> None:
        self.app.finalize()
        self.app.set_current()
        self.worker = _WorkController(
            app=self.app,
            hostname=f"embedded@{socket.gethostname()}",
            pool="solo",
            concurrency=1,
            loglevel="INFO",
            ready_callback=None,
            without_heartbeat=True,
            without_mingle=True,
            without_gossip=True,
        )
        self.thread = threading.Thread(
            target=self.worker.start, name="embedded-worker", daemon=True
        )
        self.thread.start()
        if not self.worker.started.wait(timeout):
            raise RuntimeError(f"the embedded worker did not start within {timeout:.0f} s")
        logger.info("embedded ingestion worker started")

    def stop(self, *, timeout: float = 10.0) -> None:
        if self.thread is None:
            return
        state.should_terminate = 0  # the consumer loop checks this between messages
        self.thread.join(timeout)
        state.should_terminate = None
        if self.thread.is_alive():
            logger.warning("the embedded worker is still busy; its document resumes at next start")
        self.thread = None
