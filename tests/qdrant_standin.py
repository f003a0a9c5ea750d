"""A stand-in for a Qdrant server, for tests only: the subset of Qdrant's REST API that
``rag.store.QdrantStore`` uses, answered by Qdrant's own engine (qdrant-edge-py), one shard per
collection in a folder, so filters, BM25 IDF scoring and fusion behave as Qdrant's.

No Qdrant server binary can be installed here; the embedded engine opens in one process only.
Several processes (web, Celery workers, a test) share one vector store through this service,
as production's do through a real Qdrant server. Production never uses it.

Served (anything else is a 404)::

    GET    /  /healthz /livez /readyz
    GET    /collections                            names
    GET    /collections/{name}                     collection info (vectors config, payload schema)
    GET    /collections/{name}/exists
    PUT    /collections/{name}                     create: named dense vectors, sparse vectors
    DELETE /collections/{name}
    PUT    /collections/{name}/index               payload index
    PUT    /collections/{name}/points              upsert {"points": [...]} or {"batch": {...}}
    POST   /collections/{name}/points              retrieve by ids
    POST   /collections/{name}/points/delete       by {"points": ids} or {"filter": ...}
    POST   /collections/{name}/points/count
    POST   /collections/{name}/points/scroll
    POST   /collections/{name}/points/query        nearest (dense, sparse), prefetch + fusion rrf/dbsf

Run it as a process (``python -m tests.qdrant_standin --port 6333 --path /tmp/qdrant``) or in a
thread of a test::

    with QdrantStandin(path=tmp_path / "qdrant") as server:
        store = QdrantStore(url=server.url, dimension=8)
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import signal
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


def _reported_version() -> str:
    """The server version told to qdrant-client's compatibility check: the installed client's, as
    the stand-in serves exactly what that client sends."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("qdrant-client")
    except PackageNotFoundError:
        return "1.15.0"


VERSION = _reported_version()
META_FILE = "standin_collection.json"  # the create request, kept beside the collection's shard
DEFAULT_RRF_K = 2  # Qdrant's


class NotFound(LookupError):
    pass


class BadRequest(ValueError):
    pass


class QdrantStandin:
    """The service: ``port`` 0 picks a free one (``url`` tells which)."""

    def __init__(self, *, path: str | Path, host: str = "127.0.0.1", port: int = 0) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self._shards: dict[str, Any] = {}
        self._meta: dict[str, dict] = {}
        self._lock = threading.RLock()  # collections map and writes; reads run concurrently
        self._operation = 0
        for folder in sorted(self.path.iterdir()):
            if (folder / META_FILE).exists():
                self._load(folder.name)
        self._server = ThreadingHTTPServer((host, port), _handler_for(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def start(self) -> QdrantStandin:
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._server.serve_forever()

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()
        with self._lock:
            for shard in self._shards.values():
                shard.close()  # flushes
            self._shards.clear()

    def __enter__(self) -> QdrantStandin:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- collections -----------------------------------------------------------------------------

    def _folder(self, name: str) -> Path:
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", name) or name in {".", ".."}:
            raise BadRequest(f"collection name {name!r} is not served by the stand-in")
        return self.path / name

    def _load(self, name: str) -> None:
        from qdrant_edge import EdgeShard

        folder = self._folder(name)
        meta = json.loads((folder / META_FILE).read_text())
        self._shards[name] = EdgeShard.load(str(folder / "shard"), _edge_config(meta))
        self._meta[name] = meta

    def _shard(self, name: str):
        shard = self._shards.get(name)
        if shard is None:
            raise NotFound(f"Collection `{name}` doesn't exist!")
        return shard

    def create_collection(self, name: str, body: dict) -> bool:
        from qdrant_edge import EdgeShard

        meta = {
            "vectors": _vectors_config(body.get("vectors")),
            "sparse_vectors": {
                vector: {"modifier": (params or {}).get("modifier") or "none"}
                for vector, params in (body.get("sparse_vectors") or {}).items()
            },
            "shard_number": body.get("shard_number"),
            "replication_factor": body.get("replication_factor"),
            "write_consistency_factor": body.get("write_consistency_factor"),
        }
        with self._lock:
            if name in self._shards:
                raise BadRequest(f"Wrong input: Collection `{name}` already exists!")
            folder = self._folder(name)
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
            self._shards[name] = EdgeShard.create(str(folder / "shard"), _edge_config(meta))
            self._meta[name] = meta
            (folder / META_FILE).write_text(json.dumps(meta))
        return True

    def delete_collection(self, name: str) -> bool:
        with self._lock:
            shard = self._shards.pop(name, None)
            self._meta.pop(name, None)
            if shard is None:
                return False
            shard.close()
            shutil.rmtree(self._folder(name), ignore_errors=True)
        return True

    def collection_info(self, name: str) -> dict:
        shard = self._shard(name)
        meta = self._meta[name]
        info = shard.info()
        vectors = meta["vectors"]
        params: dict[str, Any] = {
            "vectors": vectors.get("") if set(vectors) == {""} else vectors,
            "sparse_vectors": meta["sparse_vectors"] or None,
            "shard_number": meta.get("shard_number") or 1,
            "replication_factor": meta.get("replication_factor") or 1,
            "write_consistency_factor": meta.get("write_consistency_factor") or 1,
            "on_disk_payload": True,
        }
        return {
            "status": "green",
            "optimizer_status": "ok",
            "indexed_vectors_count": info.indexed_vectors_count,
            "points_count": info.points_count,
            "segments_count": info.segments_count,
            "config": {
                "params": params,
                "hnsw_config": {"m": 16, "ef_construct": 100, "full_scan_threshold": 10000},
                "optimizer_config": {
                    "deleted_threshold": 0.2,
                    "vacuum_min_vector_number": 1000,
                    "default_segment_number": 0,
                    "flush_interval_sec": 5,
                },
                "wal_config": {"wal_capacity_mb": 32, "wal_segments_ahead": 0},
            },
            "payload_schema": {
                field: {"data_type": _schema_name(index.data_type), "points": index.points}
                for field, index in info.payload_schema.items()
            },
        }

    # -- writes ----------------------------------------------------------------------------------

    def _update(self, name: str, operation) -> dict:
        with self._lock:
            self._shard(name).update(operation)
            self._operation += 1
            return {"operation_id": self._operation, "status": "completed"}

    def create_index(self, name: str, body: dict) -> dict:
        from qdrant_edge import PayloadSchemaType, UpdateOperation

        schema = body.get("field_schema")
        if isinstance(schema, dict):
            schema = schema.get("type")
        field = body.get("field_name")
        if not field or not isinstance(schema, str):
            raise BadRequest("an index needs field_name and field_schema")
        kind = getattr(PayloadSchemaType, schema.title(), None)
        if kind is None:
            raise BadRequest(f"unknown field_schema {schema!r}")
        with self._lock:
            if field in self._shard(name).info().payload_schema:
                self._operation += 1  # as Qdrant: creating an existing index is a no-op
                return {"operation_id": self._operation, "status": "completed"}
            return self._update(name, UpdateOperation.create_field_index(field, kind))

    def upsert(self, name: str, body: dict) -> dict:
        from qdrant_edge import Point, UpdateOperation

        if "batch" in body:
            batch = body["batch"]
            ids = batch.get("ids") or []
            vectors = batch.get("vectors") or {}
            payloads = batch.get("payloads") or [None] * len(ids)
            if isinstance(vectors, list):
                rows = [{"": vector} for vector in vectors]
            else:
                rows = [
                    {vector: values[i] for vector, values in vectors.items()}
                    for i in range(len(ids))
                ]
            points = [
                {"id": ids[i], "vector": rows[i], "payload": payloads[i]} for i in range(len(ids))
            ]
        else:
            points = body.get("points")
        if not isinstance(points, list):
            raise BadRequest("upsert needs points")
        edge = [
            Point(_point_id(point["id"]), _vector(point.get("vector")), point.get("payload"))
            for point in points
        ]
        return self._update(name, UpdateOperation.upsert_points(edge))

    def delete(self, name: str, body: dict) -> dict:
        from qdrant_edge import UpdateOperation

        if "points" in body:
            operation = UpdateOperation.delete_points([_point_id(i) for i in body["points"]])
        elif "filter" in body:
            operation = UpdateOperation.delete_points_by_filter(_filter(body["filter"]))
        else:
            raise BadRequest("delete needs points or filter")
        return self._update(name, operation)

    # -- reads -----------------------------------------------------------------------------------

    def retrieve(self, name: str, body: dict) -> list[dict]:
        records = self._shard(name).retrieve(
            [_point_id(i) for i in body.get("ids") or []],
            with_payload=_with_payload(body.get("with_payload", True)),
            with_vector=_with_vector(body.get("with_vector", False)),
        )
        return [_record(record) for record in records]

    def count(self, name: str, body: dict) -> dict:
        from qdrant_edge import CountRequest

        request = CountRequest(exact=True, filter=_filter(body.get("filter")))
        return {"count": self._shard(name).count(request)}

    def scroll(self, name: str, body: dict) -> dict:
        from qdrant_edge import ScrollRequest

        offset = body.get("offset")
        records, next_offset = self._shard(name).scroll(
            ScrollRequest(
                offset=None if offset is None else _point_id(offset),
                limit=body.get("limit") or 10,
                filter=_filter(body.get("filter")),
                with_payload=_with_payload(body.get("with_payload", True)),
                with_vector=_with_vector(body.get("with_vector", False)),
            )
        )
        return {
            "points": [_record(record) for record in records],
            "next_page_offset": _json_id(next_offset),
        }

    def query(self, name: str, body: dict) -> dict:
        from qdrant_edge import QueryRequest

        shard = self._shard(name)
        limit = body.get("limit") or 10
        prefetches = _prefetches(body.get("prefetch"))
        query = _query(body.get("query"), body.get("using"))
        if query is None and not prefetches:
            raise BadRequest("the stand-in answers queries with a query or prefetches")
        points = shard.query(
            QueryRequest(
                limit=limit,
                offset=body.get("offset") or None,
                query=query,
                prefetches=prefetches or None,
                filter=_filter(body.get("filter")),
                score_threshold=body.get("score_threshold"),
                with_payload=_with_payload(body.get("with_payload", False)),
                with_vector=_with_vector(body.get("with_vector", False)),
            )
        )
        return {"points": [_scored(point) for point in points]}

    # -- routing ---------------------------------------------------------------------------------

    def answer(self, method: str, path: str, body: Any) -> Any:
        """The ``result`` of a request; raises ``NotFound`` (404) or ``BadRequest`` (400)."""
        if path == "/collections" and method == "GET":
            return {"collections": [{"name": name} for name in sorted(self._shards)]}
        match = re.fullmatch(r"/collections/([^/]+)(/.*)?", path)
        if not match:
            raise NotFound(f"{method} {path}")
        name, rest = match.group(1), match.group(2) or ""
        body = body if isinstance(body, dict) else {}
        route = (method, rest)
        if route == ("GET", "/exists"):
            return {"exists": name in self._shards}
        if route == ("PUT", ""):
            return self.create_collection(name, body)
        if route == ("DELETE", ""):
            return self.delete_collection(name)
        handlers = {
            ("GET", ""): lambda: self.collection_info(name),
            ("PUT", "/index"): lambda: self.create_index(name, body),
            ("PUT", "/points"): lambda: self.upsert(name, body),
            ("POST", "/points"): lambda: self.retrieve(name, body),
            ("POST", "/points/delete"): lambda: self.delete(name, body),
            ("POST", "/points/count"): lambda: self.count(name, body),
            ("POST", "/points/scroll"): lambda: self.scroll(name, body),
            ("POST", "/points/query"): lambda: self.query(name, body),
        }
        handler = handlers.get(route)
        if handler is None:
            raise NotFound(f"{method} {path} is not served by the stand-in")
        return handler()


# -- REST JSON -> qdrant_edge ----------------------------------------------------------------------


def _vectors_config(vectors: Any) -> dict:
    if not vectors:
        return {}
    if "size" in vectors:  # one unnamed vector
        vectors = {"": vectors}
    return {
        name: {"size": int(params["size"]), "distance": params.get("distance", "Cosine")}
        for name, params in vectors.items()
    }


def _edge_config(meta: dict):
    from qdrant_edge import (
        Distance,
        EdgeConfig,
        EdgeSparseVectorParams,
        EdgeVectorParams,
        Modifier,
    )

    names = ("Cosine", "Dot", "Euclid", "Manhattan")
    distances = {name.lower(): getattr(Distance, name) for name in names}
    return EdgeConfig(
        vectors={
            name: EdgeVectorParams(
                size=params["size"], distance=distances[params["distance"].lower()]
            )
            for name, params in meta["vectors"].items()
        },
        sparse_vectors={
            name: EdgeSparseVectorParams(
                modifier=Modifier.Idf if params["modifier"] == "idf" else getattr(Modifier, "None")
            )
            for name, params in meta["sparse_vectors"].items()
        },
    )


def _point_id(value: Any):
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise BadRequest(f"point id {value!r} is neither an unsigned integer nor a UUID")
    if isinstance(value, str):
        try:
            return str(uuid.UUID(value))
        except ValueError as exc:
            raise BadRequest(f"point id {value!r} is not a UUID") from exc
    return value


def _sparse(value: dict):
    from qdrant_edge import SparseVector

    return SparseVector([int(i) for i in value["indices"]], [float(v) for v in value["values"]])


def _named_vector(value: Any):
    if isinstance(value, dict):
        if "indices" in value:
            return _sparse(value)
        raise BadRequest(f"unsupported vector {value!r}")
    return [float(x) for x in value] if value and not isinstance(value[0], list) else value


def _vector(value: Any):
    if isinstance(value, dict) and "indices" not in value:
        return {name: _named_vector(vector) for name, vector in value.items()}
    return {"": _named_vector(value)}  # one unnamed vector


def _filter(value: Any):
    from qdrant_edge import Filter, MinShould

    if not value:
        return None
    min_should = value.get("min_should")
    return Filter(
        must=_conditions(value.get("must")),
        should=_conditions(value.get("should")),
        must_not=_conditions(value.get("must_not")),
        min_should=(
            MinShould(_conditions(min_should["conditions"]) or [], int(min_should["min_count"]))
            if min_should
            else None
        ),
    )


def _conditions(value: Any) -> list | None:
    if value is None:
        return None
    return [_condition(item) for item in (value if isinstance(value, list) else [value])]


def _condition(value: dict):
    from qdrant_edge import FieldCondition, HasIdCondition, IsEmptyCondition, IsNullCondition

    if "has_id" in value:
        return HasIdCondition({_point_id(i) for i in value["has_id"]})
    if "is_empty" in value:
        return IsEmptyCondition(value["is_empty"]["key"])
    if "is_null" in value:
        return IsNullCondition(value["is_null"]["key"])
    if {"must", "should", "must_not", "min_should"} & set(value):
        return _filter(value)
    if "key" not in value:
        raise BadRequest(f"condition {value!r} is not served by the stand-in")
    return FieldCondition(
        key=value["key"],
        match=_match(value.get("match")),
        range=_range(value.get("range")),
        values_count=_values_count(value.get("values_count")),
    )


def _match(value: Any):
    from qdrant_edge import MatchAny, MatchExcept, MatchText, MatchValue

    if value is None:
        return None
    if "value" in value:
        return MatchValue(value["value"])
    if "any" in value:
        return MatchAny(list(value["any"]))
    if "except" in value:
        return MatchExcept(list(value["except"]))
    if "text" in value:
        return MatchText(value["text"])
    raise BadRequest(f"match {value!r} is not served by the stand-in")


def _range(value: Any):
    from qdrant_edge import RangeFloat

    if value is None:
        return None
    bounds = {key: value.get(key) for key in ("gt", "gte", "lt", "lte")}
    if any(isinstance(bound, str) for bound in bounds.values()):
        raise BadRequest("datetime ranges are not served by the stand-in")
    return RangeFloat(**{key: None if v is None else float(v) for key, v in bounds.items()})


def _values_count(value: Any):
    from qdrant_edge import ValuesCount

    return None if value is None else ValuesCount(**value)


def _query(value: Any, using: str | None):
    """``{"nearest": vector}`` (or a bare vector), ``{"fusion": "rrf"|"dbsf"}``, ``{"rrf": {"k":
    n}}``; ``None`` when there is no query (the prefetches' order stands)."""
    from qdrant_edge import Fusion, Query

    if value is None:
        return None
    if isinstance(value, dict) and "fusion" in value:
        if value["fusion"] == "rrf":
            return Fusion.Rrf(k=DEFAULT_RRF_K)
        if value["fusion"] == "dbsf":
            return Fusion.Dbsf()
        raise BadRequest(f"fusion {value['fusion']!r} is not served by the stand-in")
    if isinstance(value, dict) and "rrf" in value:
        rrf = value["rrf"] or {}
        return Fusion.Rrf(k=int(rrf.get("k") or DEFAULT_RRF_K), weights=rrf.get("weights"))
    if isinstance(value, dict) and "nearest" in value:
        value = value["nearest"]
    if isinstance(value, int | str):
        raise BadRequest("queries by point id are not served by the stand-in")
    return Query.Nearest(_named_vector(value), using=using or "")


def _prefetches(value: Any) -> list:
    from qdrant_edge import Prefetch

    if value is None:
        return []
    return [
        Prefetch(
            limit=item.get("limit") or 10,
            query=_query(item.get("query"), item.get("using")),
            prefetches=_prefetches(item.get("prefetch")) or None,
            filter=_filter(item.get("filter")),
            score_threshold=item.get("score_threshold"),
        )
        for item in (value if isinstance(value, list) else [value])
    ]


def _with_payload(value: Any):
    if isinstance(value, dict):  # {"include": [...]} / {"exclude": [...]}
        from qdrant_edge import PayloadSelector

        if "include" in value:
            return PayloadSelector.Include(value["include"])
        return PayloadSelector.Exclude(value["exclude"])
    return value if isinstance(value, bool | list) else True


def _with_vector(value: Any):
    return value if isinstance(value, bool | list) else False


# -- qdrant_edge -> REST JSON ----------------------------------------------------------------------


def _json_id(value: Any):
    if value is None or isinstance(value, int):
        return value
    return str(value)


def _json_vector(value: Any):
    if value is None:
        return None
    if isinstance(value, dict):
        named = {name: _json_vector(vector) for name, vector in value.items()}
        return named[""] if set(named) == {""} else named
    if hasattr(value, "indices"):
        return {"indices": list(value.indices), "values": list(value.values)}
    return list(value)


def _record(record) -> dict:
    return {
        "id": _json_id(record.id),
        "payload": record.payload,
        "vector": _json_vector(record.vector),
        "shard_key": None,
        "order_value": record.order_value,
    }


def _scored(point) -> dict:
    return {
        "id": _json_id(point.id),
        "version": point.version,
        "score": point.score,
        "payload": point.payload,
        "vector": _json_vector(point.vector),
        "shard_key": None,
        "order_value": point.order_value,
    }


def _schema_name(data_type: Any) -> str:
    return str(data_type).rsplit(".", 1)[-1].lower()


# -- HTTP --------------------------------------------------------------------------------------------


def _handler_for(standin: QdrantStandin) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as qdrant-client's httpx pool expects

        def _handle(self) -> None:
            started = time.monotonic()
            path = self.path.split("?")[0].rstrip("/") or "/"
            if self.command == "GET" and path == "/":
                self._reply(200, {"title": "qdrant - vector search engine", "version": VERSION})
                return
            if self.command == "GET" and path in {"/healthz", "/livez", "/readyz"}:
                self._reply(200, f"{path[1:]} check passed", content_type="text/plain")
                return
            try:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"null")
                result = standin.answer(self.command, path, body)
                status, document = 200, {"result": result, "status": "ok"}
            except NotFound as exc:
                status, document = 404, {"status": {"error": f"Not found: {exc}"}}
            except (BadRequest, ValueError, KeyError, TypeError) as exc:
                status, document = 400, {"status": {"error": f"Bad request: {exc}"}}
            except Exception as exc:  # noqa: BLE001 - the engine's own errors, as Qdrant's 500
                status, document = 500, {"status": {"error": f"Service internal error: {exc}"}}
            document["time"] = time.monotonic() - started
            self._reply(status, document)

        do_GET = do_PUT = do_POST = do_DELETE = do_PATCH = _handle

        def _reply(
            self, status: int, document: Any, content_type: str = "application/json"
        ) -> None:
            data = (
                json.dumps(document) if content_type == "application/json" else document
            ).encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args) -> None:
            pass

    return Handler


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="A Qdrant REST stand-in for tests (not for production)"
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=6333, help="0 picks a free port")
    parser.add_argument("--path", required=True, help="folder of the collections' shards")
    args = parser.parse_args(argv)
    standin = QdrantStandin(path=args.path, host=args.host, port=args.port)

    def stop(*_):  # SIGTERM: close the shards (flushed) before leaving
        threading.Thread(target=standin._server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    print(f"qdrant stand-in listening on {standin.url}", flush=True)
    try:
        standin.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        standin.stop()


if __name__ == "__main__":
    main()
