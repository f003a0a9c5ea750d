"""VectorStore protocol and its Qdrant implementation (embedded local folder or server URL).

One Qdrant collection holds every chunk, with a named dense vector and a BM25 sparse vector; the
Django collection and the document are payload fields, so access filters run inside the query.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Protocol, runtime_checkable

from .types import IndexedChunk, ScoredChunk, SparseVector

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

    def close(self) -> None: ...


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
        if not items:
            return
        from qdrant_client import models

        points = [
            models.PointStruct(
                id=item.chunk.id,
                vector={
                    DENSE: list(item.dense),
                    LEXICAL: models.SparseVector(
                        indices=list(item.sparse.indices), values=list(item.sparse.values)
                    ),
                },
                payload=payload_for(item),
            )
            for item in items
        ]
        self.ensure_collection()
        with self._call():
            self.client.upsert(self.collection, points=points, wait=True)

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

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None
                self._ready = False


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
