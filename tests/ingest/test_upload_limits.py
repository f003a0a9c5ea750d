"""An upload over MAX_UPLOAD_MB is refused at the door with a 413 and a reason, before its bytes
are spooled to disk: by its declared Content-Length before the body is read, and while it
streams (a body without an honest length) as soon as a file passes the limit."""

import asyncio
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.files.uploadhandler import FileUploadHandler

from config.asgi import application as asgi_application
from ingest.models import Document

API = "/api/v1/documents"
MB = 1024 * 1024
RECORDER = "tests.ingest.test_upload_limits.StorageRecorder"


class StorageRecorder(FileUploadHandler):
    """Placed just before Django's memory and temporary-file handlers: every byte it sees is a
    byte they would keep (in memory, or spooled to a temporary file)."""

    largest = 0  # the most bytes of one file passed on to storage, over the test

    def receive_data_chunk(self, raw_data, start):
        type(self).largest = max(type(self).largest, start + len(raw_data))
        return raw_data

    def file_complete(self, file_size):
        return None


@pytest.fixture
def recorder(settings, tmp_path):
    handlers = list(settings.FILE_UPLOAD_HANDLERS)
    after_limit = next(
        (n + 1 for n, h in enumerate(handlers) if h.endswith("UploadLimitHandler")), 0
    )
    handlers.insert(after_limit, RECORDER)
    settings.FILE_UPLOAD_HANDLERS = handlers
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 64 * 1024  # anything larger goes to a temporary file
    settings.FILE_UPLOAD_TEMP_DIR = str(tmp_path)
    settings.MAX_UPLOAD_MB = 1
    StorageRecorder.largest = 0
    return StorageRecorder


@pytest.mark.django_db
class TestThroughDjango:
    def test_a_declared_length_over_the_limit_is_refused_unread(
        self, admin_client, collection, recorder
    ):
        big = SimpleUploadedFile("big.txt", b"a " * (3 * MB // 2 * 2))  # 3 MB
        response = admin_client.post(API, {"file": big})

        assert response.status_code == 413
        error = response.json()["error"]
        assert (
            "over the 1 MB upload limit (MAX_UPLOAD_MB)" in error and "nothing was stored" in error
        )
        assert recorder.largest == 0  # the body was never parsed
        assert not Document.objects.exists()

    def test_a_file_passing_the_limit_while_streaming_is_stopped_there(
        self, admin_client, collection, recorder
    ):
        # 1.5 MB: the request as a whole is within what one file and its form may take, so only
        # the count of the file's own bytes as they stream in can catch it
        big = SimpleUploadedFile("big.txt", b"a " * (3 * MB // 4))
        response = admin_client.post(API, {"file": big})

        assert response.status_code == 413
        error = response.json()["error"]
        assert error.startswith("big.txt is over the 1 MB upload limit (MAX_UPLOAD_MB)"), error
        assert 0 < recorder.largest <= 1 * MB  # stopped before storage got past the limit
        assert not Document.objects.exists()

    def test_one_file_over_the_limit_refuses_the_whole_request(
        self, admin_client, collection, recorder
    ):
        small = SimpleUploadedFile("small.txt", b"Visitors sign in at reception.")
        big = SimpleUploadedFile("big.txt", b"a " * (3 * MB // 4))
        response = admin_client.post(API, {"file": [small, big]})

        assert response.status_code == 413 and "big.txt" in response.json()["error"]
        assert not Document.objects.exists()  # all or nothing: the client sends again

    def test_a_file_at_the_limit_is_accepted(self, admin_client, collection, recorder):
        exact = SimpleUploadedFile("exact.txt", b"a " * (MB // 2))  # 1 MB to the byte
        response = admin_client.post(API, {"file": exact})

        assert response.status_code == 202, response.content
        (document,) = response.json()["documents"]
        assert document["status"] == "queued" and document["size"] == MB
        assert recorder.largest == MB

    def test_a_page_gets_an_html_answer(self, admin_client, recorder):
        response = admin_client.post(
            "/documents/", {"file": SimpleUploadedFile("big.txt", b"a" * 3 * MB)}
        )
        assert response.status_code == 413
        assert response["Content-Type"].startswith("text/html")
        assert "over the 1 MB upload limit (MAX_UPLOAD_MB)" in response.content.decode()


class Exchange:
    """Drives the project's ASGI application as uvicorn does, counting the body bytes it pulls."""

    def __init__(self, *, body_chunks, headers=()):
        self.chunks = iter(body_chunks)
        self.headers = [(k.encode(), v.encode()) for k, v in headers]
        self.pulled = 0
        self.ended = False
        self.sent: list[dict] = []

    async def receive(self):
        if self.ended:  # as uvicorn: nothing more until the client goes away
            await asyncio.Event().wait()
        chunk = next(self.chunks, None)
        if chunk is None:
            self.ended = True
            return {"type": "http.request", "body": b"", "more_body": False}
        self.pulled += len(chunk)
        return {"type": "http.request", "body": chunk, "more_body": True}

    async def send(self, message):
        self.sent.append(message)

    def run(self, path=API):
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": [(b"host", b"testserver"), *self.headers],
            "client": ("127.0.0.1", 50000),
            "server": ("testserver", 80),
        }
        asyncio.run(asgi_application(scope, self.receive, self.send))
        start = next(m for m in self.sent if m["type"] == "http.response.start")
        body = b"".join(m.get("body", b"") for m in self.sent if m["type"] == "http.response.body")
        return start["status"], body


def stream(total=8 * MB, size=64 * 1024):
    """A body far over the limit, but finite: were the limit ever lost, the test fails instead
    of filling the disk (as the unbounded version did, on the code before the limit)."""
    for _ in range(total // size):
        yield b"x" * size


class TestThroughAsgi:
    """Under uvicorn Django reads the whole body into a temporary file before any middleware
    runs, so the limit has to act on the ASGI messages themselves."""

    def test_a_declared_length_over_the_limit_is_answered_before_any_body_is_read(self, settings):
        settings.MAX_UPLOAD_MB = 1
        exchange = Exchange(
            body_chunks=stream(),
            headers=[("content-type", "multipart/form-data; boundary=x"),
                     ("content-length", str(50 * MB))],
        )  # fmt: skip
        status, body = exchange.run()

        assert status == 413 and exchange.pulled == 0
        assert "over the 1 MB upload limit (MAX_UPLOAD_MB)" in json.loads(body)["error"]

    def test_a_body_without_a_length_is_cut_off_once_past_the_limit(self, settings):
        settings.MAX_UPLOAD_MB = 1
        exchange = Exchange(
            body_chunks=stream(), headers=[("content-type", "multipart/form-data; boundary=x")]
        )
        status, body = exchange.run()

        assert status == 413
        assert exchange.pulled <= 2 * MB + 64 * 1024  # the file, its form, one chunk more
        assert "over the 1 MB upload limit (MAX_UPLOAD_MB)" in json.loads(body)["error"]

    def test_a_body_under_the_limit_reaches_the_app(self, settings):
        settings.MAX_UPLOAD_MB = 1
        exchange = Exchange(
            body_chunks=[b"x" * 1000],
            headers=[("content-type", "multipart/form-data; boundary=x"),
                     ("content-length", "1000")],
        )  # fmt: skip
        status, body = exchange.run()

        assert status == 403  # Django itself answered: a POST without a CSRF cookie
        assert json.loads(body)["error"].startswith("CSRF verification failed")
