"""One document may not hold the only worker forever: past INGEST_SOFT_TIME_LIMIT it is failed
with the limit named, its points are taken back, and the worker goes on with the next one.

The embedded default's worker is a solo-pool Celery worker on a thread, where Celery's own
time limits (prefork signals) do nothing; the limit is checked by the pipeline itself."""

import io
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from config.celery import app as celery_app
from core.components import get_store
from ingest import services
from ingest.embedded import EmbeddedWorker
from ingest.models import Document
from ingest.tasks import document_ingest_task
from tests.docs import make_pdf

from .helpers import ingest, upload

MANUAL = [
    "Pump maintenance manual\nRead this manual before servicing the pump.",
    "Seals\nReplace the shaft seal every 2,000 operating hours.",
    "Bearings\nGrease the bearings monthly with lithium grease.",
]


def wait_until_finished(document_id: int, timeout: float = 120.0) -> Document:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        document = Document.objects.get(pk=document_id)
        if document.is_finished:
            return document
        time.sleep(0.2)
    raise AssertionError(f"document {document_id} not finished: {document.status}")


@pytest.fixture
def embedded_worker(settings):
    assert settings.CELERY_BROKER_URL.startswith("redis://"), "this test needs the real broker"
    celery_app.control.purge()  # messages left by an interrupted earlier run
    worker = EmbeddedWorker(celery_app)
    worker.start()
    yield worker
    worker.stop(timeout=30)


@pytest.mark.django_db(transaction=True)
def test_the_embedded_worker_fails_a_document_past_the_limit_and_goes_on(
    collection, settings, embedded_worker
):
    manual = ingest(make_pdf(MANUAL), "pump.pdf", collection)
    store = get_store()
    assert manual.status == "ready" and store.count(document_id=str(manual.pk)) > 0

    settings.INGEST_SOFT_TIME_LIMIT = 0  # every document is over it at its first checkpoint
    services.document_reindex(document=manual)  # queued for the embedded worker
    manual = wait_until_finished(manual.pk)

    assert manual.status == "failed"
    assert manual.error == (
        "ingestion took longer than 0 s (INGEST_SOFT_TIME_LIMIT); "
        "split the document or raise the limit"
    )
    assert store.count(document_id=str(manual.pk)) == 0  # no half-indexed document is searched

    settings.INGEST_SOFT_TIME_LIMIT = 3600
    memo = services.document_upload(
        file=io.BytesIO(b"Visitors sign in at reception."), name="memo.txt", collection=collection
    )
    memo = wait_until_finished(memo.pk)
    assert memo.status == "ready", memo.error  # the same worker took the next document


@pytest.mark.django_db
def test_the_limit_holds_in_the_task_code_whatever_the_pool(collection, settings):
    """`ingest --sync` and every pool run the same checks: no Celery signal is needed."""
    settings.INGEST_SOFT_TIME_LIMIT = 0
    document = upload(make_pdf(MANUAL), "pump.pdf", collection)

    document_ingest_task.apply(args=[document.pk])

    document.refresh_from_db()
    assert document.status == "failed" and document.stage == "failed"
    assert "took longer than 0 s (INGEST_SOFT_TIME_LIMIT)" in document.error
    assert get_store().count(document_id=str(document.pk)) == 0


def test_celery_limits_agree_with_the_ingestion_settings(settings):
    """The production worker (prefork) enforces what the settings say, for every task, and the
    broker does not hand a task to a second worker while the first may still be on it."""
    conf = celery_app.conf
    assert conf.task_soft_time_limit == settings.INGEST_SOFT_TIME_LIMIT
    assert conf.task_time_limit == settings.INGEST_TIME_LIMIT > settings.INGEST_SOFT_TIME_LIMIT
    assert document_ingest_task.soft_time_limit == settings.INGEST_SOFT_TIME_LIMIT
    assert document_ingest_task.time_limit == settings.INGEST_TIME_LIMIT
    assert conf.worker_max_memory_per_child == settings.INGEST_WORKER_MAX_MEMORY_MB * 1024
    assert conf.broker_transport_options["visibility_timeout"] > settings.INGEST_TIME_LIMIT


def test_a_hard_limit_not_above_the_soft_one_stops_start_up():
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "INGEST_SOFT_TIME_LIMIT": "600",
        "INGEST_TIME_LIMIT": "600",
    }
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=Path(__file__).resolve().parents[2],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "INGEST_TIME_LIMIT (600) must be above INGEST_SOFT_TIME_LIMIT (600)" in result.stderr
