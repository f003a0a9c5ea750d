"""Issue 14, item 1: originals in an S3-compatible bucket (STORAGE_BACKEND=s3).

The bucket is real HTTP: moto in server mode on loopback, spoken to by boto3 through
django-storages, as MinIO or AWS would be. The worker is a separate `celery worker` process
configured only by its environment, with a DATA_DIR of its own that starts empty: it can index
an original only by reading it from the bucket, and it must leave nothing under DATA_DIR/uploads.

The worker indexes into an embedded store in its own DATA_DIR (what is shared here is the
database, the broker and the bucket; a shared vector store is another test's subject), so this
process checks what the worker did through the database and the bucket, not through search."""

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError
from django.core.files.storage import storages
from django.core.files.uploadedfile import SimpleUploadedFile

from config.celery import app as celery_app
from config.settings.base import originals_storage
from ingest import services
from ingest.models import Document
from ingest.tasks import document_ingest_task
from tests.docs import make_pdf
from tests.live import CeleryWorker, free_port, worker_env

from .helpers import ingest, upload

ROOT = Path(__file__).resolve().parents[2]
CREDENTIALS = {"access_key": "test-access-key", "secret_key": "test-secret-key"}
REGION = "us-east-1"

MANUAL = [
    "Boiler room manual\nOnly trained staff may enter the boiler room.",
    "Pressure checks\nCheck the boiler pressure gauge every Monday; it must read 1.5 bar.",
]


@pytest.fixture(scope="module")
def s3_endpoint():
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def bucket(s3_endpoint, settings):
    """A new empty bucket, and this process's default storage switched to it."""
    name = f"originals-{uuid.uuid4().hex[:12]}"
    client = boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        region_name=REGION,
        aws_access_key_id=CREDENTIALS["access_key"],
        aws_secret_access_key=CREDENTIALS["secret_key"],
    )
    client.create_bucket(Bucket=name)
    # Django's setting_changed handler drops the cached storages (default_storage included).
    settings.STORAGES = {
        **settings.STORAGES,
        "default": originals_storage(
            "s3", bucket=name, endpoint_url=s3_endpoint, region=REGION, **CREDENTIALS
        ),
    }
    assert type(storages["default"]).__name__ == "S3Storage"
    yield Bucket(client, name, endpoint=s3_endpoint)


class Bucket:
    def __init__(self, client, name: str, *, endpoint: str) -> None:
        self.client, self.name, self.endpoint = client, name, endpoint

    def keys(self) -> list[str]:
        listed = self.client.list_objects_v2(Bucket=self.name)
        return sorted(item["Key"] for item in listed.get("Contents", []))

    def read(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.name, Key=key)["Body"].read()

    def holds(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.name, Key=key)
        except ClientError as exc:
            assert exc.response["ResponseMetadata"]["HTTPStatusCode"] == 404
            return False
        return True


def files_under(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


@pytest.fixture
def s3_worker(bucket, settings, tmp_path_factory):
    """A worker whose DATA_DIR is a new empty folder, reading originals from the bucket."""
    assert settings.CELERY_BROKER_URL.startswith("redis://"), "this test needs the real broker"
    celery_app.control.purge()  # messages left by an interrupted earlier run
    data_dir = tmp_path_factory.mktemp("worker") / "data"
    data_dir.mkdir()
    env = worker_env(
        settings,
        data_dir,
        STORAGE_BACKEND="s3",
        S3_BUCKET=bucket.name,
        S3_ENDPOINT_URL=bucket.endpoint,
        S3_REGION=REGION,
        AWS_ACCESS_KEY_ID=CREDENTIALS["access_key"],
        AWS_SECRET_ACCESS_KEY=CREDENTIALS["secret_key"],
    )
    worker = CeleryWorker("s3-test", env=env, log_path=data_dir.parent / "worker.log")
    worker.data_dir = data_dir
    try:
        yield worker
    finally:
        worker.stop()


def wait_until_finished(document_id: int, worker: CeleryWorker, timeout=180.0) -> Document:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        worker.alive()
        document = Document.objects.get(pk=document_id)
        if document.is_finished:
            return document
        time.sleep(0.3)
    raise AssertionError(f"document {document_id} is still {document.status}:\n{worker.output()}")


@pytest.mark.django_db(transaction=True)
def test_upload_ready_download_delete_with_a_worker_that_shares_no_disk(
    admin_client, bucket, s3_worker, settings
):
    pdf = make_pdf(MANUAL)

    response = admin_client.post(
        "/api/v1/documents", {"file": [SimpleUploadedFile("boiler.pdf", pdf)]}
    )
    assert response.status_code == 202, response.content
    (created,) = response.json()["documents"]
    document = Document.objects.get(pk=created["id"])
    assert bucket.keys() == [document.file.name]  # the upload went to the bucket
    assert bucket.read(document.file.name) == pdf

    document = wait_until_finished(document.pk, s3_worker)
    assert document.status == "ready", f"{document.error}\n{s3_worker.output()}"
    assert (document.page_count, document.media_type) == (2, "application/pdf")
    assert document.chunk_count > 0
    assert "ingest.document_ingest" in s3_worker.output()  # that worker did it, not this process

    response = admin_client.get(f"/documents/{document.pk}/file")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert int(response["Content-Length"]) == len(pdf)
    assert b"".join(response.streaming_content) == pdf

    response = admin_client.delete(f"/api/v1/documents/{document.pk}")
    assert response.status_code in (200, 204), response.content
    assert not Document.objects.filter(pk=document.pk).exists()
    assert not bucket.holds(document.file.name)
    assert bucket.keys() == []

    # nothing on either side's disk: not the worker's DATA_DIR, not this process's MEDIA_ROOT
    assert files_under(s3_worker.data_dir / "uploads") == []
    assert files_under(Path(settings.MEDIA_ROOT)) == []


@pytest.mark.django_db
def test_dedup_reindex_and_delete_share_one_object(bucket, collection, settings):
    """The same bytes in two collections are one object; re-indexing reads it from the bucket;
    it is removed with the last document that uses it, not before."""
    other = services.collection_get_or_create(slug="other")
    memo = b"Visitors sign in at reception and wear a badge at all times."

    first = ingest(memo, "visitors.txt", collection)
    again = upload(memo, "copy.txt", collection)
    elsewhere = ingest(memo, "visitors.txt", other)
    assert (first.status, again.status, elsewhere.status) == ("ready", "duplicate", "ready")
    assert first.file.name == elsewhere.file.name
    assert bucket.keys() == [first.file.name]

    services.document_reindex(document=first, enqueue=False)
    document_ingest_task.apply(args=[first.pk])
    first.refresh_from_db()
    assert first.status == "ready", first.error

    services.document_delete(document=first)  # its duplicate is promoted: the object stays
    assert bucket.keys() == [elsewhere.file.name]
    services.document_delete(document=Document.objects.get(pk=again.pk))
    assert bucket.keys() == [elsewhere.file.name]  # the other collection still uses it
    services.document_delete(document=elsewhere)
    assert bucket.keys() == []
    assert files_under(Path(settings.MEDIA_ROOT)) == []


@pytest.mark.django_db
def test_an_object_gone_from_the_bucket_fails_the_document_and_is_not_found(
    admin_client, bucket, collection
):
    document = ingest(b"Lunch is served from noon to two.", "lunch.txt", collection)
    assert document.status == "ready"
    bucket.client.delete_object(Bucket=bucket.name, Key=document.file.name)

    assert admin_client.get(f"/documents/{document.pk}/file").status_code == 404
    services.document_reindex(document=document, enqueue=False)
    document_ingest_task.apply(args=[document.pk])
    document.refresh_from_db()
    assert document.status == "failed"
    assert document.error == "the stored original file is missing from storage"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"STORAGE_BACKEND": "s3"}, "STORAGE_BACKEND=s3 needs S3_BUCKET"),
        ({"STORAGE_BACKEND": "nfs"}, "STORAGE_BACKEND='nfs': expected 'filesystem'"),
    ],
)
def test_a_storage_backend_that_cannot_work_stops_start_up(env, message):
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=ROOT,
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings.test",
            "S3_BUCKET": "",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert message in result.stderr
