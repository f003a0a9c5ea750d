"""A Qdrant server on 127.0.0.1 for tests: the REST endpoints ``rag.store.QdrantStore`` uses,
answered by qdrant-client's own engine (its in-memory local mode) and recording every request.

It speaks the wire protocol, so the real ``QdrantClient(url=...)`` is exercised end to end
(request bodies, response parsing, status codes): the store contract runs against it like
against the embedded engines. Only what the store calls is served; anything else is a 404::

    with FakeQdrant() as server:
        store = QdrantStore(url=server.url, dimension=8)
        ...
        assert ("PUT", "/collections/chunks") in [(m, p) for m, p, _ in server.requests]
"""

from __future__ import annotations

import json
import re
import threading
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

VERSION = "1.15.5"


class FakeQdrant:
    def __init__(self) -> None:
        from qdrant_client import QdrantClient

        self.engine = QdrantClient(location=":memory:")
        self.requests: list[tuple[str, str, Any]] = []  # (method, path without query, body)
        self._lock = threading.Lock()  # the local engine is not thread-safe
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}"

    def __enter__(self) -> FakeQdrant:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
        self.engine.close()

    # -- the endpoints ---------------------------------------------------------------------------

    def answer(self, method: str, path: str, body: Any) -> Any:
        """The ``result`` of a request, or raises ``LookupError`` (404) / ``ValueError`` (400)."""
        from qdrant_client import models

        engine = self.engine
        if method == "GET" and path == "/":
            return {"title": "qdrant", "version": VERSION}
        match = re.fullmatch(r"/collections/([^/]+)(/.*)?", path)
        if not match:
            raise LookupError(path)
        name, rest = match.group(1), match.group(2) or ""
        route = (method, rest)
        if route == ("GET", "/exists"):
            return {"exists": engine.collection_exists(name)}
        if route == ("PUT", ""):
            create = models.CreateCollection.model_validate(body)
            return engine.create_collection(
                name, vectors_config=create.vectors, sparse_vectors_config=create.sparse_vectors
            )
        if not engine.collection_exists(name):
            raise LookupError(f"Collection `{name}` doesn't exist!")
        if route == ("GET", ""):
            return engine.get_collection(name)
        if route == ("PUT", "/index"):
            index = models.CreateFieldIndex.model_validate(body)
            with warnings.catch_warnings():  # "no effect in local mode": a server builds them
                warnings.simplefilter("ignore", UserWarning)
                return engine.create_payload_index(name, index.field_name, index.field_schema)
        if route == ("PUT", "/points"):
            points = models.PointsList.model_validate(body).points
            return engine.upsert(name, points=points)
        if route == ("POST", "/points/delete"):
            selector = (
                models.FilterSelector.model_validate(body)
                if "filter" in body
                else models.PointIdsList.model_validate(body)
            )
            return engine.delete(name, points_selector=selector)
        if route == ("POST", "/points"):
            request = models.PointRequest.model_validate(body)
            return engine.retrieve(
                name,
                ids=request.ids,
                with_payload=request.with_payload,
                with_vectors=request.with_vector,
            )
        if route == ("POST", "/points/count"):
            request = models.CountRequest.model_validate(body)
            return engine.count(name, count_filter=request.filter, exact=request.exact)
        if route == ("POST", "/points/scroll"):
            request = models.ScrollRequest.model_validate(body)
            records, offset = engine.scroll(
                name,
                scroll_filter=request.filter,
                limit=request.limit or 10,
                offset=request.offset,
                with_payload=request.with_payload,
                with_vectors=request.with_vector,
            )
            return {"points": records, "next_page_offset": offset}
        if route == ("POST", "/points/query"):
            request = models.QueryRequest.model_validate(body)
            return engine.query_points(
                name,
                query=request.query,
                using=request.using,
                query_filter=request.filter,
                limit=request.limit or 10,
                with_payload=request.with_payload,
            )
        raise LookupError(f"{method} {path} is not served by the fake")


def _handler_for(fake: FakeQdrant) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"null")
            path = self.path.split("?")[0]
            fake.requests.append((self.command, path, body))
            try:
                with fake._lock:
                    result = fake.answer(self.command, path, body)
                self._reply(200, {"result": _jsonable(result), "status": "ok", "time": 0.0})
            except LookupError as exc:
                self._reply(404, {"status": {"error": f"Not found: {exc}"}, "time": 0.0})
            except (ValueError, AssertionError) as exc:  # bad requests, as the engine says
                self._reply(400, {"status": {"error": f"Bad request: {exc}"}, "time": 0.0})

        do_GET = do_PUT = do_POST = do_DELETE = _handle

        def _reply(self, status: int, document: dict) -> None:
            data = json.dumps(document).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args) -> None:
            pass

    return Handler


def _jsonable(value: Any) -> Any:
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    return value
