"""Upload -> Redis broker -> a real Celery worker -> ready, and how the task treats failures."""

import io
import time

import kombu.pools
import pytest
from celery.contrib.testing.worker import start_worker
from django.core.files.uploadedfile import SimpleUploadedFile

from config.celery import app as celery_app
from core.components import get_retriever
from ingest import services
from ingest.models import Document
from ingest.tasks import document_ingest_task, retry_countdown
from tests.docs import make_pdf, make_png

from .helpers import upload


def wait_until_finished(ids: list[int], timeout: float = 120.0) -> list[Document]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        documents = list(Document.objects.filter(pk__in=ids).order_by("pk"))
        if all(d.is_finished for d in documents):
            return documents
        time.sleep(0.2)
    raise AssertionError(f"not finished in {timeout} s: {[(d.pk, d.status) for d in documents]}")


@pytest.fixture
def worker(settings):
    assert settings.CELERY_BROKER_URL.startswith("redis://"), "this test needs the real broker"
    celery_app.control.purge()  # messages left by an interrupted earlier run
    with start_worker(celery_app, pool="solo", perform_ping_check=False, shutdown_timeout=30):
        yield


@pytest.mark.django_db(transaction=True)
def test_upload_through_redis_and_a_real_worker_becomes_searchable(admin_client, worker):
    handbook = make_pdf(
        ["Handbook\nWelcome.", "Travel\nTaxi receipts must be submitted within thirty days."]
    )
    files = [
        SimpleUploadedFile("photo.pdf", make_png()),  # a bad file in the same batch
        SimpleUploadedFile("handbook.pdf", handbook),
    ]
    response = admin_client.post("/api/v1/documents", {"file": files})
    assert response.status_code == 202
    ids = [d["id"] for d in response.json()["documents"]]

    photo, handbook_doc = wait_until_finished(ids)

    assert photo.status == "failed" and "image/png" in photo.error
    assert handbook_doc.status == "ready", handbook_doc.error
    assert handbook_doc.page_count == 2 and handbook_doc.started_at is not None
    polled = admin_client.get(f"/api/v1/documents/{handbook_doc.pk}").json()
    assert (polled["status"], polled["progress"]) == ("ready", 100)
    (hit,) = get_retriever().search("deadline for taxi receipts", k=1)
    assert (hit.document_name, hit.page) == ("handbook.pdf", 2)


@pytest.mark.django_db
def test_unreachable_store_is_retried_then_fails_with_the_reason(collection, settings):
    settings.RAG_VECTOR_STORE = {
        "BACKEND": "rag.store.QdrantStore",
        "OPTIONS": {"url": "http://127.0.0.1:9", "timeout": 2},
    }
    document = upload(b"Fire exits are on every floor.", "exits.txt", collection)
    document_ingest_task.max_retries = 0  # eager retries would run at once; one attempt is enough
    try:
        document_ingest_task.apply(args=[document.pk])
    finally:
        document_ingest_task.max_retries = settings.INGEST_MAX_RETRIES

    document.refresh_from_db()
    assert document.status == "failed"
    assert document.error.startswith("gave up after 1 attempts: Qdrant is unreachable")


@pytest.mark.django_db
def test_a_transient_failure_is_scheduled_for_retry(collection, settings, monkeypatch):
    settings.RAG_VECTOR_STORE = {
        "BACKEND": "rag.store.QdrantStore",
        "OPTIONS": {"url": "http://127.0.0.1:9", "timeout": 2},
    }
    document = upload(b"Visitors sign in at reception.", "visitors.txt", collection)
    retried = []
    monkeypatch.setattr(
        document_ingest_task, "retry", lambda **kw: retried.append(kw) or RuntimeError("retry")
    )

    with pytest.raises(RuntimeError, match="retry"):
        document_ingest_task.run(document.pk)

    document.refresh_from_db()
    # the start ended in a known way (a retry), so it does not count towards a poison document
    assert document.status == "queued" and document.attempts == 0
    assert document.stage.startswith("retrying in ")
    assert 2.5 <= retried[0]["countdown"] <= 5.0


def test_back_off_grows_with_jitter_and_is_capped():
    for retries, high in [(0, 5), (1, 10), (3, 40), (20, 600)]:
        samples = [retry_countdown(retries) for _ in range(50)]
        assert all(high / 2 <= s <= high for s in samples)
        assert len(set(samples)) > 1


@pytest.fixture
def broker_down(settings):
    """Point the app at a port where no broker listens, with fresh connection pools."""

    def reset_pools() -> None:
        kombu.pools.reset()  # closes every pool and forgets it: the next use builds a new one
        celery_app._pool = None
        celery_app.amqp._producer_pool = None

    reset_pools()
    celery_app.conf.broker_write_url = "redis://127.0.0.1:9/0"  # what publishing connects to
    yield
    reset_pools()
    celery_app.conf.broker_write_url = settings.CELERY_BROKER_URL


@pytest.mark.django_db
def test_queue_down_marks_the_document_failed_instead_of_losing_it(
    collection, broker_down, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        document = services.document_upload(
            file=io.BytesIO(b"Queue me."), name="q.txt", collection=collection
        )

    document.refresh_from_db()
    assert document.status == "failed"
    assert "could not reach the task queue" in document.error
    assert document.file  # the bytes are kept: Re-index can try again


@pytest.mark.django_db
def test_a_document_the_worker_died_on_is_failed_not_resumed_forever(collection, settings):
    """A poison document (the worker died in it: out of memory, killed) is resumed at start-up
    and redelivered; after INGEST_MAX_ATTEMPTS such starts it fails for good, with the reason."""
    settings.INGEST_MAX_ATTEMPTS = 3
    poison = upload(b"Visitors sign in at reception.", "visitors.txt", collection)
    # two starts that never ended: the worker died mid-way and the document was left parsing
    Document.objects.filter(pk=poison.pk).update(status="parsing", attempts=2)

    assert services.documents_resume() == 1
    document_ingest_task.apply(args=[poison.pk])  # the third start may still succeed
    poison.refresh_from_db()
    assert (poison.status, poison.attempts) == ("ready", 3)

    Document.objects.filter(pk=poison.pk).update(status="parsing", attempts=3)
    services.documents_resume()
    document_ingest_task.apply(args=[poison.pk])
    poison.refresh_from_db()
    assert poison.status == "failed" and poison.attempts == 4
    assert poison.error == "stopped after 3 attempts (the worker died while processing it)"

    services.document_reindex(document=poison)  # an admin's re-index starts afresh
    document_ingest_task.apply(args=[poison.pk])
    poison.refresh_from_db()
    assert (poison.status, poison.attempts) == ("ready", 1)
