"""VectorStore protocol and its two Qdrant implementations.

- ``EdgeStore``: the embedded default, Qdrant's engine in this process (qdrant-edge-py), one shard
  in a folder under DATA_DIR that one process may open.
- ``QdrantStore``: qdrant-client, for a Qdrant server or cluster (``url``); its ``path`` (the
  pure-Python local mode, the embedded default before EdgeStore) is kept for the benchmarks that
  compare against it and for moving such a folder into an EdgeStore (``migrate_from``).

Both hold every chunk in one collection (shard), with a named dense vector and a BM25 sparse
vector whose IDF the engine supplies at query time; the Django collection and the document are
payload fields, so access filters run inside the query.
"""

from __future__ import annotations

import itertools
import json
import logging
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from .types import IndexedChunk, ScoredChunk, SparseVector

logger = logging.getLogger(__name__)

DENSE = "dense"
LEXICAL = "lexical"


class StoreUnavailable(Exception):
    """The store could not be reached or answered with a server error: worth retrying later."""


class StoreLocked(Exception):
    """The embedded store's folder is held by another process (only one may open it)."""


@runtime_checkable
class VectorStore(Protocol):
    def ensure_collection(self) -> None: ...

    def upsert(self, items: Sequence[IndexedChunk]) -> None: ...

    def delete_document(self, document_id: str, *, from_index: int = 0) -> None:
        """Remove the document's points whose chunk index is >= ``from_index``."""
        ...

    def delete_trailing(self, point_id: Callable[[int], str], start: int) -> int:
        """Delete the points ``point_id(start)``, ``point_id(start + 1)``, … up to the first that
        does not exist; returns how many were deleted."""
        ...

    def count(self, *, document_id: str | None = None) -> int: ...

    def search_dense(
        self, vector: Sequence[float], *, k: int, collections: Sequence[str] | None = None
    ) -> list[ScoredChunk]: ...

    def search_lexical(
        self, vector: SparseVector, *, k: int, collections: Sequence[str] | None = None
    ) -> list[ScoredChunk]: ...

    def optimize(self) -> bool:
        """Build what search needs to stay fast (HNSW graphs) for points written since the last
        call; ``True`` if anything was built. Slow (seconds to a minute): the ingestion worker
        calls it after a document, never a web request. Search is correct before it runs."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class StoredPoint:
    """One point as a store holds it, for copying between stores without re-embedding."""

    id: str
    dense: tuple[float, ...]
    sparse: SparseVector
    payload: dict


TRAILING_PROBE = 64  # point ids looked up per round by delete_trailing

# Filtered fields: the access filter (collection), deletes (document_id), neighbours (chunk_index)
PAYLOAD_INDEXES = {
    "document_id": "KEYWORD",
    "collection": "KEYWORD",
    "chunk_index": "INTEGER",
    "kind": "KEYWORD",
}


class QdrantStore:
    """Qdrant through qdrant-client. ``path`` selects embedded local mode, ``url`` a server."""

    def __init__(
        self,
        *,
        url: str | None = None,
        path: str | None = None,
        api_key: str | None = None,
        collection: str = "chunks",
        dimension: int = 384,
        timeout: float = 30.0,
        shard_number: int | None = None,
        replication_factor: int | None = None,
        write_consistency_factor: int | None = None,
    ) -> None:
        """``shard_number``, ``replication_factor`` and ``write_consistency_factor`` apply when
        this store creates the collection on a Qdrant cluster (None: the server's default);
        embedded mode has neither shards nor replicas."""
        if bool(url) == bool(path):
            raise ValueError("QdrantStore needs exactly one of url (server) or path (embedded)")
        if dimension < 1:
            raise ValueError("dimension must be positive")
        self.url, self.path, self.api_key = url, path, api_key
        self.collection = collection
        self.dimension = dimension
        self.timeout = timeout
        for name, value in (
            ("shard_number", shard_number),
            ("replication_factor", replication_factor),
            ("write_consistency_factor", write_consistency_factor),
        ):
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1")
        self.cluster = {
            "shard_number": shard_number,
            "replication_factor": replication_factor,
            "write_consistency_factor": write_consistency_factor,
        }
        self._client = None
        self._ready = False
        # The embedded engine is plain Python with no locking of its own; a server needs none.
        self._lock = threading.RLock()

    @property
    def embedded(self) -> bool:
        return self.path is not None

    # -- plumbing --------------------------------------------------------------------------------

    @property
    def client(self):
        if self._client is None:
            from qdrant_client import QdrantClient

            with self._lock:
                if self._client is None:
                    if self.path:
                        try:
                            self._client = QdrantClient(path=self.path)
                        except RuntimeError as exc:
                            if "already accessed" in str(exc):
                                raise StoreLocked(
                                    f"the embedded vector store at {self.path} is open in another "
                                    "process (the running app?). Only one process may open it: "
                                    "stop that process, or set QDRANT_URL to use a Qdrant server."
                                ) from exc
                            raise
                    else:
                        self._client = QdrantClient(
                            url=self.url, api_key=self.api_key, timeout=int(self.timeout)
                        )
        return self._client

    @contextmanager
    def _call(self) -> Iterator[None]:
        from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

        try:
            with self._lock:
                yield
        except UnexpectedResponse as exc:
            if exc.status_code is not None and exc.status_code >= 500:
                raise StoreUnavailable(f"Qdrant answered {exc.status_code}") from exc
            raise
        except (ResponseHandlingException, ConnectionError, TimeoutError) as exc:
            raise StoreUnavailable(f"Qdrant is unreachable at {self.url}: {exc}") from exc
        except Exception as exc:
            if type(exc).__module__.startswith(("httpx", "httpcore", "grpc")):
                raise StoreUnavailable(f"Qdrant is unreachable at {self.url}: {exc}") from exc
            raise

    def ensure_collection(self) -> None:
        if self._ready:
            return
        from qdrant_client import models

        with self._call():
            if not self.client.collection_exists(self.collection):
                self.client.create_collection(
                    self.collection,
                    vectors_config={
                        DENSE: models.VectorParams(
                            size=self.dimension, distance=models.Distance.COSINE
                        )
                    },
                    sparse_vectors_config={
                        LEXICAL: models.SparseVectorParams(modifier=models.Modifier.IDF)
                    },
                    **({} if self.embedded else self._cluster_options()),
                )
            else:
                info = self.client.get_collection(self.collection)
                vectors = info.config.params.vectors
                size = vectors[DENSE].size if isinstance(vectors, dict) else None
                if size != self.dimension:
                    raise ValueError(
                        f"Qdrant collection {self.collection!r} holds {size}-d vectors but the "
                        f"embedder gives {self.dimension}-d: re-index into a new collection"
                    )
            if not self.embedded:  # payload indexes have no effect in embedded mode
                # Also on a collection an operator created (sharded, replicated) before the
                # first start: creating an index that exists is a no-op for Qdrant.
                for field, schema in PAYLOAD_INDEXES.items():
                    self.client.create_payload_index(
                        self.collection, field, getattr(models.PayloadSchemaType, schema)
                    )
        self._ready = True

    def _cluster_options(self) -> dict:
        return {name: value for name, value in self.cluster.items() if value is not None}

    # -- writes ----------------------------------------------------------------------------------

    def upsert(self, items: Sequence[IndexedChunk]) -> None:
        self.import_points([stored_point_for(item) for item in items])

    def import_points(self, points: Sequence[StoredPoint]) -> None:
        """Write points as they are (``upsert`` and copies from another store)."""
        if not points:
            return
        from qdrant_client import models

        structs = [
            models.PointStruct(
                id=point.id,
                vector={
                    DENSE: list(point.dense),
                    LEXICAL: models.SparseVector(
                        indices=list(point.sparse.indices), values=list(point.sparse.values)
                    ),
                },
                payload=point.payload,
            )
            for point in points
        ]
        self.ensure_collection()
        with self._call():
            self.client.upsert(self.collection, points=structs, wait=True)

    def delete_document(self, document_id: str, *, from_index: int = 0) -> None:
        from qdrant_client import models

        must = [
            models.FieldCondition(key="document_id", match=models.MatchValue(value=document_id))
        ]
        if from_index > 0:
            must.append(
                models.FieldCondition(key="chunk_index", range=models.Range(gte=from_index))
            )
        self.ensure_collection()
        with self._call():
            self.client.delete(
                self.collection,
                points_selector=models.FilterSelector(filter=models.Filter(must=must)),
                wait=True,
            )

    def delete_trailing(self, point_id: Callable[[int], str], start: int) -> int:
        """What a longer earlier version of a document left beyond its new end, found by point id
        (a document's points are written in index order, so its leftovers are contiguous): a
        few lookups instead of a filtered delete, which in embedded mode reads every point of
        the collection and made ingesting thousands of small files quadratic."""
        from qdrant_client import models

        self.ensure_collection()
        deleted = 0
        while True:
            ids = [point_id(index) for index in range(start, start + TRAILING_PROBE)]
            with self._call():
                found = self.client.retrieve(
                    self.collection, ids=ids, with_payload=False, with_vectors=False
                )
            present = {str(point.id) for point in found}
            run = list(itertools.takewhile(present.__contains__, ids))
            if run:
                with self._call():
                    self.client.delete(
                        self.collection,
                        points_selector=models.PointIdsList(points=run),
                        wait=True,
                    )
                deleted += len(run)
            if len(run) < len(ids):
                return deleted
            start += TRAILING_PROBE

    # -- reads -----------------------------------------------------------------------------------

    def count(self, *, document_id: str | None = None) -> int:
        self.ensure_collection()
        with self._call():
            return self.client.count(
                self.collection, count_filter=_filter(document_id=document_id), exact=True
            ).count

    def search_dense(
        self, vector: Sequence[float], *, k: int, collections: Sequence[str] | None = None
    ) -> list[ScoredChunk]:
        return self._query(list(vector), DENSE, k, collections)

    def search_lexical(
        self, vector: SparseVector, *, k: int, collections: Sequence[str] | None = None
    ) -> list[ScoredChunk]:
        from qdrant_client import models

        if not vector.indices:
            return []
        query = models.SparseVector(indices=list(vector.indices), values=list(vector.values))
        return self._query(query, LEXICAL, k, collections)

    def _query(
        self, query, using: str, k: int, collections: Sequence[str] | None
    ) -> list[ScoredChunk]:
        if collections is not None and not collections:
            return []  # no readable collection: nothing to search, not everything
        self.ensure_collection()
        with self._call():
            response = self.client.query_points(
                self.collection,
                query=query,
                using=using,
                limit=k,
                query_filter=_filter(collections=collections),
                with_payload=True,
            )
        return [
            scored_from(point.id, point.score, point.payload or {}) for point in response.points
        ]

    def export_points(self, *, batch: int = 256) -> Iterator[list[StoredPoint]]:
        """Every point with its vectors and payload, ``batch`` at a time."""
        self.ensure_collection()
        offset = None
        while True:
            with self._call():
                records, offset = self.client.scroll(
                    self.collection,
                    limit=batch,
                    offset=offset,
                    with_payload=True,
                    with_vectors=True,
                )
            if records:
                yield [
                    _stored_point(record.id, record.vector, record.payload) for record in records
                ]
            if offset is None:
                return

    def optimize(self) -> bool:
        return False  # a server (and local mode) keeps its own indexes up to date

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None
                self._ready = False


# Build HNSW per segment of this size rather than merging every new batch into one large
# segment: the engine's automatic segment count follows the CPU count (2 here), so each crossing
# of the indexing threshold rebuilt the whole graph (8 s at 10k points, 38 s at 30k, measured).
EDGE_SEGMENTS = 8
FLUSH_INTERVAL = 30.0  # seconds: EdgeStore.optimize writes segments at most this often
EDGE_CONFIG_FILE = "edge_config.json"


class EdgeStore:
    """Qdrant's engine in this process (qdrant-edge-py): one shard in the folder ``path``.

    One process may open the folder (the engine locks its write-ahead log); a second gets
    ``StoreLocked``. ``migrate_from``: a folder of qdrant-client's local mode (the embedded store
    before this one); if ``path`` holds no shard yet and that folder exists, its points are copied
    in (vectors and payloads as they are, nothing re-embedded) when the store first opens.

    Threads: one object serves the web threads and the embedded worker. Reads take no Python
    lock: a shard is safe to share between threads (the engine locks its segments itself;
    checked with 3 readers and 1 writer). Writes, ``optimize``, opening and closing are
    serialised by ``_lock``, so a close never pulls the shard from under a write and a
    document's delete-then-write steps are never interleaved with another thread's. Note that the
    engine keeps the GIL for the whole of a call: ``optimize`` stops every other thread of the
    process while it builds (see ``EDGE_SEGMENTS``), hence its place after a document, never in
    a request.
    """

    def __init__(
        self,
        *,
        path: str,
        dimension: int = 384,
        migrate_from: str | None = None,
        segments: int = EDGE_SEGMENTS,
        indexing_threshold_kb: int | None = None,
    ) -> None:
        """``segments``: how many segments the engine keeps before merging; ``indexing_threshold_kb``:
        the vectors a segment holds before ``optimize`` builds its HNSW graph (None: the engine's
        default, about 10 MB, 6,500 384-d vectors); below it, search scans every vector."""
        if not path:
            raise ValueError("EdgeStore needs the folder path of its shard")
        if dimension < 1:
            raise ValueError("dimension must be positive")
        if segments < 1:
            raise ValueError("segments must be at least 1")
        self.path = Path(path)
        self.dimension = dimension
        self.migrate_from = Path(migrate_from) if migrate_from else None
        self.segments = segments
        self.indexing_threshold_kb = indexing_threshold_kb
        self._shard = None
        self._lock = threading.RLock()
        self._flushed_at = time.monotonic()

    # -- plumbing --------------------------------------------------------------------------------

    @property
    def shard(self):
        shard = self._shard
        if shard is None:
            with self._lock:
                if self._shard is None:
                    self._shard = self._open()
                shard = self._shard
        return shard

    def _config(self):
        from qdrant_edge import (
            Distance,
            EdgeConfig,
            EdgeOptimizersConfig,
            EdgeSparseVectorParams,
            EdgeVectorParams,
            Modifier,
        )

        return EdgeConfig(
            vectors={DENSE: EdgeVectorParams(size=self.dimension, distance=Distance.Cosine)},
            sparse_vectors={LEXICAL: EdgeSparseVectorParams(modifier=Modifier.Idf)},
            optimizers=EdgeOptimizersConfig(
                default_segment_number=self.segments,
                indexing_threshold=self.indexing_threshold_kb,
            ),
        )

    def _open(self):
        from qdrant_edge import EdgeShard, PayloadSchemaType, UpdateOperation

        if not _holds_shard(self.path) and self.migrate_from and self.migrate_from.exists():
            self._migrate()
        with self._engine():
            if _holds_shard(self.path):
                self._check_dimension()
                shard = EdgeShard.load(str(self.path), self._config())
            else:
                shard = EdgeShard.create(str(self.path), self._config())
            indexed = shard.info().payload_schema
            for field, schema in PAYLOAD_INDEXES.items():
                if field not in indexed:
                    shard.update(
                        UpdateOperation.create_field_index(
                            field, getattr(PayloadSchemaType, schema.title())
                        )
                    )
        return shard

    def _check_dimension(self) -> None:
        try:
            stored = json.loads((self.path / EDGE_CONFIG_FILE).read_text())
            size = stored["vectors"][DENSE]["size"]
        except (OSError, ValueError, KeyError, TypeError):
            return  # the engine checks the vectors against the segments itself
        if size != self.dimension:
            raise ValueError(
                f"the vector store at {self.path} holds {size}-d vectors but the embedder "
                f"gives {self.dimension}-d: re-index into a new folder"
            )

    def _migrate(self) -> None:
        """Copy the local-mode folder into a shard built beside ``path``, then move it into
        place: a copy cut short leaves no shard at ``path``, so the next start copies again."""
        source = QdrantStore(path=str(self.migrate_from), dimension=self.dimension)
        staging = self.path.with_name(self.path.name + ".migrating")
        target = EdgeStore(
            path=str(staging),
            dimension=self.dimension,
            segments=self.segments,
            indexing_threshold_kb=self.indexing_threshold_kb,
        )
        started = time.monotonic()
        copied = 0
        try:
            source.client  # noqa: B018 - claims the old folder: a second process stops here
            if _holds_shard(self.path):
                return  # moved by another process while this one started
            shutil.rmtree(staging, ignore_errors=True)  # what a copy cut short left
            if source.client.collection_exists(source.collection):
                for points in source.export_points():
                    target.import_points(points)
                    copied += len(points)
            if target.count() != copied:
                raise RuntimeError(f"copied {copied} points but the new store holds fewer")
        finally:
            source.close()
            target.close()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        staging.replace(self.path)
        logger.warning(
            "moved %d passages from the Qdrant local-mode folder %s into the embedded store %s "
            "in %.1f s; the old folder is no longer used and may be deleted",
            copied,
            self.migrate_from,
            self.path,
            time.monotonic() - started,
        )

    @contextmanager
    def _engine(self) -> Iterator[None]:
        """The engine raises plain ``Exception``s; the held folder is the one we name."""
        try:
            yield
        except Exception as exc:
            if "WouldBlock" in str(exc):
                raise StoreLocked(
                    f"the embedded vector store at {self.path} is open in another process (the "
                    "running app?). Only one process may open it: stop that process, or set "
                    "QDRANT_URL to use a Qdrant server."
                ) from exc
            raise

    def ensure_collection(self) -> None:
        self.shard  # noqa: B018 - opening creates the shard and its payload indexes

    # -- writes ----------------------------------------------------------------------------------

    def upsert(self, items: Sequence[IndexedChunk]) -> None:
        self.import_points([stored_point_for(item) for item in items])

    def import_points(self, points: Sequence[StoredPoint]) -> None:
        """Write points as they are (``upsert`` and copies from another store)."""
        if not points:
            return
        from qdrant_edge import Point, UpdateOperation
        from qdrant_edge import SparseVector as EdgeSparseVector

        operation = UpdateOperation.upsert_points(
            [
                Point(
                    point.id,
                    {
                        DENSE: list(point.dense),
                        LEXICAL: EdgeSparseVector(
                            list(point.sparse.indices), list(point.sparse.values)
                        ),
                    },
                    point.payload,
                )
                for point in points
            ]
        )
        with self._lock:
            self.shard.update(operation)

    def delete_document(self, document_id: str, *, from_index: int = 0) -> None:
        from qdrant_edge import FieldCondition, Filter, MatchValue, RangeFloat, UpdateOperation

        must = [FieldCondition(key="document_id", match=MatchValue(document_id))]
        if from_index > 0:
            must.append(FieldCondition(key="chunk_index", range=RangeFloat(gte=from_index)))
        with self._lock:
            self.shard.update(UpdateOperation.delete_points_by_filter(Filter(must=must)))

    def delete_trailing(self, point_id: Callable[[int], str], start: int) -> int:
        """See ``QdrantStore.delete_trailing``: lookups by id, then one delete per run."""
        from qdrant_edge import UpdateOperation

        deleted = 0
        with self._lock:
            while True:
                ids = [point_id(index) for index in range(start, start + TRAILING_PROBE)]
                found = self.shard.retrieve(ids, with_payload=False, with_vector=False)
                present = {str(record.id) for record in found}
                run = list(itertools.takewhile(present.__contains__, ids))
                if run:
                    self.shard.update(UpdateOperation.delete_points(run))
                    deleted += len(run)
                if len(run) < len(ids):
                    return deleted
                start += TRAILING_PROBE

    def optimize(self) -> bool:
        """Build the HNSW index of segments that passed the indexing threshold, then write the
        segments to disk when something was built or FLUSH_INTERVAL has passed. Every update is
        in the engine's write-ahead log already (replayed at the next load, so a crash loses no
        acknowledged write); the flush only saves that replay, and costs ~10 ms, as much as
        embedding a short document's passages."""
        with self._lock:
            shard = self.shard
            started = time.monotonic()
            built = shard.optimize()
            if built or started - self._flushed_at >= FLUSH_INTERVAL:
                shard.flush()
                self._flushed_at = time.monotonic()
        if built:
            logger.info("vector store indexes built in %.1f s", time.monotonic() - started)
        return built

    # -- reads -----------------------------------------------------------------------------------

    def count(self, *, document_id: str | None = None) -> int:
        from qdrant_edge import CountRequest

        return self.shard.count(
            CountRequest(exact=True, filter=_edge_filter(document_id=document_id))
        )

    def search_dense(
        self, vector: Sequence[float], *, k: int, collections: Sequence[str] | None = None
    ) -> list[ScoredChunk]:
        return self._query(list(vector), DENSE, k, collections)

    def search_lexical(
        self, vector: SparseVector, *, k: int, collections: Sequence[str] | None = None
    ) -> list[ScoredChunk]:
        from qdrant_edge import SparseVector as EdgeSparseVector

        if not vector.indices:
            return []
        query = EdgeSparseVector(list(vector.indices), list(vector.values))
        return self._query(query, LEXICAL, k, collections)

    def _query(
        self, query, using: str, k: int, collections: Sequence[str] | None
    ) -> list[ScoredChunk]:
        from qdrant_edge import Query, QueryRequest

        if collections is not None and not collections:
            return []  # no readable collection: nothing to search, not everything
        points = self.shard.query(
            QueryRequest(
                limit=k,
                query=Query.Nearest(query, using=using),
                filter=_edge_filter(collections=collections),
                with_payload=True,
            )
        )
        return [scored_from(point.id, point.score, point.payload or {}) for point in points]

    def export_points(self, *, batch: int = 256) -> Iterator[list[StoredPoint]]:
        """Every point with its vectors and payload, ``batch`` at a time."""
        from qdrant_edge import ScrollRequest

        offset = None
        while True:
            records, offset = self.shard.scroll(
                ScrollRequest(offset=offset, limit=batch, with_payload=True, with_vector=True)
            )
            if records:
                yield [
                    _stored_point(record.id, record.vector, record.payload) for record in records
                ]
            if offset is None:
                return

    def close(self) -> None:
        with self._lock:
            if self._shard is not None:
                shard, self._shard = self._shard, None
                shard.close()  # flushes; the folder's lock goes with it


def _holds_shard(path: Path) -> bool:
    return (path / EDGE_CONFIG_FILE).exists() or (path / "segments").exists()


def _edge_filter(*, document_id: str | None = None, collections: Sequence[str] | None = None):
    from qdrant_edge import FieldCondition, Filter, MatchAny, MatchValue

    must: list = []
    if document_id is not None:
        must.append(FieldCondition(key="document_id", match=MatchValue(document_id)))
    if collections is not None:
        must.append(FieldCondition(key="collection", match=MatchAny(list(collections))))
    return Filter(must=must) if must else None


def stored_point_for(item: IndexedChunk) -> StoredPoint:
    return StoredPoint(
        id=item.chunk.id, dense=tuple(item.dense), sparse=item.sparse, payload=payload_for(item)
    )


def _stored_point(point_id, vector, payload) -> StoredPoint:
    """A point read back from either engine: named vectors, the sparse one as any object with
    ``indices`` and ``values``."""
    vectors = vector if isinstance(vector, dict) else {}
    sparse = vectors.get(LEXICAL)
    return StoredPoint(
        id=str(point_id),
        dense=tuple(float(x) for x in vectors.get(DENSE) or ()),
        sparse=SparseVector(
            tuple(int(i) for i in getattr(sparse, "indices", ())),
            tuple(float(v) for v in getattr(sparse, "values", ())),
        ),
        payload=dict(payload or {}),
    )


def payload_for(item: IndexedChunk) -> dict:
    chunk = item.chunk
    return {
        "document_id": chunk.doc_id,
        "chunk_index": chunk.index,
        "page": chunk.page,
        "start": chunk.start,
        "end": chunk.end,
        "text": chunk.text,
        "heading_path": list(chunk.heading_path),
        "content_hash": chunk.content_hash,
        "kind": chunk.kind,
        **item.payload,
    }


def scored_from(point_id, score: float, payload: dict) -> ScoredChunk:
    return ScoredChunk(
        chunk_id=str(point_id),
        document_id=str(payload.get("document_id", "")),
        collection=str(payload.get("collection", "")),
        page=payload.get("page"),
        start=int(payload.get("start", 0)),
        end=int(payload.get("end", 0)),
        text=str(payload.get("text", "")),
        score=float(score),
        heading_path=tuple(payload.get("heading_path") or ()),
        document_name=str(payload.get("document_name", "")),
        injection_reasons=tuple((payload.get("injection") or {}).get("reasons") or ()),
        # points written before chunk kinds existed are content
        kind="navigation" if payload.get("kind") == "navigation" else "content",
    )


def _filter(*, document_id: str | None = None, collections: Sequence[str] | None = None):
    from qdrant_client import models

    must: list = []
    if document_id is not None:
        must.append(
            models.FieldCondition(key="document_id", match=models.MatchValue(value=document_id))
        )
    if collections is not None:
        must.append(
            models.FieldCondition(key="collection", match=models.MatchAny(any=list(collections)))
        )
    return models.Filter(must=must) if must else None
