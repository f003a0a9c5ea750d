"""Uploads over MAX_UPLOAD_MB are refused at the door, before their bytes are spooled to disk.

Three places, because the body reaches Django in different ways:

- ``UploadLimitASGI`` wraps the ASGI application (uvicorn, ``make run`` and production): Django's
  ASGI handler writes the whole body to a temporary file before any middleware runs, so the
  limit acts on the ASGI messages. A declared ``Content-Length`` over the limit is answered 413
  without reading a byte (a client that sent ``Expect: 100-continue`` never sends the body);
  a body without one is counted as it arrives and cut off once past the limit.
- ``UploadLimitMiddleware`` does the same check of ``Content-Length`` under WSGI, where the body
  is read lazily, and answers 413 for a file the handler below stopped.
- ``UploadLimitHandler``, first in FILE_UPLOAD_HANDLERS, counts each file's bytes as the
  multipart parser streams them and stops the upload once one file passes the limit, before
  Django's memory and temporary-file handlers store more than the limit of it.

A request may carry at most one maximum-size file and its form (MAX_UPLOAD_MB + 1 MB); several
smaller files fit in one request as long as the total does. A refused upload leaves nothing
behind, not even a failed document: the 413 says why to the client that is still waiting.
"""

from __future__ import annotations

import html
import json
import logging

from django.conf import settings
from django.core.files.uploadhandler import FileUploadHandler, StopUpload
from django.http import HttpRequest, HttpResponse

from config.middleware import API_PREFIX

logger = logging.getLogger(__name__)

MB = 1024 * 1024
FORM_ALLOWANCE = 1 * MB  # the multipart framing and the other fields around one file
STATUS = 413


def file_limit() -> int:
    return settings.MAX_UPLOAD_MB * MB


def request_limit() -> int:
    return file_limit() + FORM_ALLOWANCE


def _limit_phrase() -> str:
    return f"over the {settings.MAX_UPLOAD_MB} MB upload limit (MAX_UPLOAD_MB)"


def _request_refusal(size: int, *, declared: bool) -> str:
    amount = f"is {size / MB:.1f} MB" if declared else f"passed {request_limit() / MB:.0f} MB"
    return (
        f"the upload {amount}, {_limit_phrase()}: a request carries at most one file of "
        f"{settings.MAX_UPLOAD_MB} MB and its form; nothing was stored"
    )


def _file_refusal(name: str) -> str:
    return f"{name} is {_limit_phrase()}; nothing was stored"


def _declared_length(value: str | bytes | None) -> int | None:
    try:
        return int(value) if value not in (None, "", b"") else None
    except (TypeError, ValueError):
        return None  # Django and the server deal with a malformed header


def _body(path: str, message: str) -> tuple[bytes, bytes]:
    """(content type, body): JSON under the API, a short page elsewhere."""
    if path.startswith(API_PREFIX):
        return b"application/json", json.dumps({"error": message}).encode()
    page = (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<title>Upload too large</title></head><body><h1>Upload too large</h1>"
        f"<p>{html.escape(message)}</p><p><a href='/documents/'>Back to documents</a></p>"
        "</body></html>"
    )
    return b"text/html; charset=utf-8", page.encode()


def too_large_response(request: HttpRequest, message: str) -> HttpResponse:
    logger.warning("upload refused (%s %s): %s", request.method, request.path, message)
    content_type, body = _body(request.path_info, message)
    return HttpResponse(body, status=STATUS, content_type=content_type.decode())


class UploadLimitHandler(FileUploadHandler):
    """Counts each file's bytes as they stream in; past MAX_UPLOAD_MB it stops the whole upload
    (the handlers after it never receive the chunk that crossed the limit) and leaves the reason
    on the request for UploadLimitMiddleware to answer."""

    def new_file(self, field_name, file_name, *args, **kwargs) -> None:
        super().new_file(field_name, file_name, *args, **kwargs)
        declared = _declared_length(self.content_length)  # a part's own header, if it has one
        if declared is not None and declared > file_limit():
            self._refuse()

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes:
        if start + len(raw_data) > file_limit():
            self._refuse()
        return raw_data

    def file_complete(self, file_size: int) -> None:
        return None  # the next handler builds the file

    def _refuse(self) -> None:
        if self.request is not None:
            self.request.upload_refused = _file_refusal(self.file_name or "a file")
        # nothing more is read: under ASGI the body is a bounded temporary file already, under
        # WSGI the server discards what is left
        raise StopUpload(connection_reset=True)


class UploadLimitMiddleware:
    """Before CSRF (which reads the form of a POST): refuses a declared Content-Length over the
    limit without reading the body, and parses a multipart body itself so that a file the
    handler stopped is answered 413 here, never half-seen by a view."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        declared = _declared_length(request.META.get("CONTENT_LENGTH"))
        if declared is not None and declared > request_limit():
            return too_large_response(request, _request_refusal(declared, declared=True))
        return self.get_response(request)

    def process_view(self, request: HttpRequest, view_func, view_args, view_kwargs):
        if request.method in ("POST", "PUT", "PATCH") and request.content_type.startswith(
            "multipart/form-data"
        ):
            request.FILES  # noqa: B018 - parse now, through UploadLimitHandler
            if message := getattr(request, "upload_refused", None):
                return too_large_response(request, message)
        return None


class UploadLimitASGI:
    """Wraps the ASGI application: the limit acts before Django spools the body."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        headers = dict(scope.get("headers") or ())
        declared = _declared_length(headers.get(b"content-length"))
        limit = request_limit()
        if declared is not None and declared > limit:
            await self._refuse(send, path, _request_refusal(declared, declared=True))
            return

        received = 0
        refused = False

        async def limited_receive():
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    refused = True
                    await self._refuse(send, path, _request_refusal(received, declared=False))
                    # Django stops reading (RequestAborted) and sends nothing; the server
                    # drops whatever else the client sends
                    return {"type": "http.disconnect"}
            return message

        await self.app(scope, limited_receive, send)

    async def _refuse(self, send, path: str, message: str) -> None:
        logger.warning("upload refused (%s): %s", path, message)
        content_type, body = _body(path, message)
        await send(
            {
                "type": "http.response.start",
                "status": STATUS,
                "headers": [
                    (b"content-type", content_type),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
