"""rag.store: a contract every VectorStore must meet, run against each implementation (the
embedded engine, a Qdrant server over its REST API, qdrant-client's local mode), plus what is
specific to each (folder locks, migration, server errors, configuration)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import numpy as np
import pytest

from rag.chunking import chunk_id_for
from rag.lexical import BM25Encoder
from rag.store import EdgeStore, QdrantStore, StoreLocked, StoreUnavailable, VectorStore
from rag.types import Chunk, IndexedChunk, ScoredChunk, SparseVector
from tests.fakes.qdrant import FakeQdrant

DIM = 8
ENCODER = BM25Encoder()


def unit_vector(rng: np.random.Generator) -> tuple[float, ...]:
    vector = rng.normal(size=DIM)
    return tuple(float(x) for x in vector / np.linalg.norm(vector))


def make_item(
    document_id: str,
    index: int,
    text: str,
    *,
    collection: str = "handbook",
    vector: tuple[float, ...] | None = None,
    rng: np.random.Generator | None = None,
    page: int | None = None,
    heading_path: tuple[str, ...] = ("Guide", "Setup"),
) -> IndexedChunk:
    chunk = Chunk(
        id=chunk_id_for(f"sha-{document_id}", index),
        doc_id=document_id,
        index=index,
        page=page if page is not None else index + 1,
        start=10 * index,
        end=10 * index + len(text),
        text=text,
        heading_path=heading_path,
        content_hash=f"hash-{document_id}-{index}",
    )
    return IndexedChunk(
        chunk=chunk,
        dense=vector or unit_vector(rng or np.random.default_rng()),
        sparse=ENCODER.encode_document(text),
        payload={"collection": collection, "document_name": f"{document_id}.pdf"},
    )


def make_document(
    document_id: str, count: int, rng: np.random.Generator, *, collection: str = "handbook"
) -> list[IndexedChunk]:
    return [
        make_item(document_id, i, f"{document_id} passage {i}", collection=collection, rng=rng)
        for i in range(count)
    ]


def ids_of(results: list[ScoredChunk]) -> set[str]:
    return {r.chunk_id for r in results}


# ---------------------------------------------------------------------------------------------
# The contract. Add an implementation by adding a param to `store_factory`.
# ---------------------------------------------------------------------------------------------


STORES = ["edge", "qdrant-server", "qdrant-local"]


@pytest.fixture(params=STORES)
def store_factory(request, tmp_path) -> Iterator[Callable[[], VectorStore]]:
    """``edge``: the embedded default (qdrant-edge, real engine); ``qdrant-server``: QdrantStore
    over HTTP to a Qdrant REST server (tests.fakes.qdrant); ``qdrant-local``: QdrantStore's
    local mode, kept for benchmarks and to migrate old folders."""
    opened: list[VectorStore] = []
    server = FakeQdrant().__enter__() if request.param == "qdrant-server" else None

    def factory() -> VectorStore:
        if request.param == "edge":
            store = EdgeStore(path=str(tmp_path / "edge"), dimension=DIM)
        elif request.param == "qdrant-server":
            store = QdrantStore(url=server.url, dimension=DIM)
        elif request.param == "qdrant-local":
            store = QdrantStore(path=str(tmp_path / "q"), dimension=DIM)
        else:  # pragma: no cover - a new implementation must be wired here
            raise AssertionError(request.param)
        opened.append(store)
        return store

    yield factory
    for store in opened:
        store.close()
    if server is not None:
        server.__exit__(None, None, None)


@pytest.fixture
def store(store_factory) -> VectorStore:
    store = store_factory()
    store.ensure_collection()
    return store


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


class TestVectorStoreContract:
    def test_satisfies_protocol(self, store):
        assert isinstance(store, VectorStore)

    def test_ensure_collection_is_idempotent(self, store, rng):
        store.ensure_collection()
        store.ensure_collection()
        assert store.count() == 0
        store.upsert(make_document("a", 3, rng))
        store.ensure_collection()
        assert store.count() == 3

    def test_upsert_then_count(self, store, rng):
        store.upsert(make_document("a", 5, rng) + make_document("b", 3, rng))
        assert store.count() == 8
        assert store.count(document_id="a") == 5
        assert store.count(document_id="b") == 3
        assert store.count(document_id="missing") == 0

    def test_upsert_nothing(self, store):
        store.upsert([])
        assert store.count() == 0

    def test_reupsert_same_ids_replaces(self, store, rng):
        items = make_document("a", 4, rng)
        store.upsert(items)
        store.upsert(items)
        assert store.count() == 4
        changed = make_item("a", 2, "rewritten passage", vector=items[2].dense)
        store.upsert([changed])
        assert store.count() == 4
        (best, *_) = store.search_dense(changed.dense, k=1)
        assert best.chunk_id == changed.chunk.id
        assert best.text == "rewritten passage"

    def test_delete_from_index_keeps_earlier_chunks(self, store, rng):
        a, b = make_document("a", 6, rng), make_document("b", 4, rng)
        store.upsert(a + b)
        store.delete_document("a", from_index=3)
        assert store.count(document_id="a") == 3
        assert store.count(document_id="b") == 4
        remaining = ids_of(store.search_dense(a[0].dense, k=50))
        assert remaining == {item.chunk.id for item in a[:3] + b}

    def test_delete_from_index_zero_and_past_end(self, store, rng):
        store.upsert(make_document("a", 3, rng))
        store.delete_document("a", from_index=3)
        assert store.count(document_id="a") == 3
        store.delete_document("a", from_index=0)
        assert store.count(document_id="a") == 0

    def test_delete_trailing_removes_the_run_beyond_the_new_end(self, store, rng):
        # 150 points: more than two rounds of lookups; another document is left alone
        a, b = make_document("a", 150, rng), make_document("b", 3, rng)
        store.upsert(a + b)
        deleted = store.delete_trailing(lambda index: chunk_id_for("sha-a", index), 10)
        assert deleted == 140
        assert store.count(document_id="a") == 10 and store.count(document_id="b") == 3
        assert store.delete_trailing(lambda index: chunk_id_for("sha-a", index), 10) == 0
        assert store.delete_trailing(lambda index: chunk_id_for("sha-new", index), 0) == 0

    def test_delete_document_removes_only_that_document(self, store, rng):
        a, b = make_document("a", 4, rng), make_document("b", 2, rng)
        store.upsert(a + b)
        store.delete_document("a")
        assert store.count() == 2
        assert store.count(document_id="a") == 0
        assert ids_of(store.search_dense(a[0].dense, k=50)) == {item.chunk.id for item in b}
        store.delete_document("never-indexed")
        assert store.count() == 2

    def test_search_dense_round_trips_the_payload(self, store, rng):
        target = make_item(
            "doc-42",
            7,
            "The roof repairs were postponed until spring.",
            collection="minutes",
            vector=unit_vector(rng),
            page=12,
            heading_path=("Council", "Buildings", "Roof"),
        )
        store.upsert([target, *make_document("other", 5, rng)])
        results = store.search_dense(target.dense, k=3)
        assert len(results) == 3
        best = results[0]
        assert isinstance(best, ScoredChunk)
        assert best == ScoredChunk(
            chunk_id=target.chunk.id,
            document_id="doc-42",
            collection="minutes",
            page=12,
            start=70,
            end=70 + len(target.chunk.text),
            text="The roof repairs were postponed until spring.",
            score=best.score,
            heading_path=("Council", "Buildings", "Roof"),
            document_name="doc-42.pdf",
        )
        assert best.score == pytest.approx(1.0, abs=1e-4)

    def test_search_dense_orders_by_score(self, store, rng):
        query = unit_vector(rng)
        items = make_document("a", 12, rng)
        store.upsert(items)
        results = store.search_dense(query, k=5)
        assert len(results) == 5
        scores = [r.score for r in results]
        assert scores == sorted(scores, reverse=True)
        expected = sorted(items, key=lambda it: -float(np.dot(it.dense, query)))[:5]
        assert [r.chunk_id for r in results] == [it.chunk.id for it in expected]
        for result, item in zip(results, expected, strict=True):
            assert result.score == pytest.approx(float(np.dot(item.dense, query)), abs=1e-4)

    def test_page_none_round_trips(self, store, rng):
        item = make_item("txt", 0, "no pages here", rng=rng)
        item = IndexedChunk(
            chunk=Chunk(**{**{f: getattr(item.chunk, f) for f in Chunk.__slots__}, "page": None}),
            dense=item.dense,
            sparse=item.sparse,
            payload=item.payload,
        )
        store.upsert([item])
        (result,) = store.search_dense(item.dense, k=1)
        assert result.page is None

    def test_collections_filter(self, store, rng):
        store.upsert(
            make_document("a", 3, rng, collection="hr")
            + make_document("b", 3, rng, collection="finance")
            + make_document("c", 3, rng, collection="legal")
        )
        query = unit_vector(rng)
        assert {r.collection for r in store.search_dense(query, k=20, collections=["hr"])} == {"hr"}
        both = store.search_dense(query, k=20, collections=["hr", "legal"])
        assert len(both) == 6 and {r.collection for r in both} == {"hr", "legal"}
        assert len(store.search_dense(query, k=20)) == 9
        assert store.search_dense(query, k=20, collections=["unknown"]) == []
        assert store.search_dense(query, k=20, collections=[]) == []

    def test_search_lexical_finds_rare_term(self, store, rng):
        items = [
            make_item("a", i, text, rng=rng, collection=coll)
            for i, (text, coll) in enumerate(
                [
                    ("The budget meeting discussed the library roof.", "hr"),
                    ("The library opens at nine on weekdays.", "hr"),
                    ("Our zyzzyva beetle collection moved to the library.", "finance"),
                    ("Budget approval is due in spring.", "finance"),
                ]
            )
        ]
        store.upsert(items)
        results = store.search_lexical(ENCODER.encode_query("zyzzyva"), k=3)
        assert [r.chunk_id for r in results] == [items[2].chunk.id]
        assert results[0].text.startswith("Our zyzzyva beetle") and results[0].score > 0

        ranked = store.search_lexical(ENCODER.encode_query("library budget"), k=4)
        assert ranked[0].chunk_id == items[0].chunk.id  # the only passage with both terms
        assert [r.score for r in ranked] == sorted((r.score for r in ranked), reverse=True)

        assert store.search_lexical(ENCODER.encode_query("zyzzyva"), k=3, collections=["hr"]) == []
        assert store.search_lexical(ENCODER.encode_query("zyzzyva"), k=3, collections=[]) == []
        assert store.search_lexical(SparseVector((), ()), k=3) == []

    def test_search_respects_k(self, store, rng):
        store.upsert(make_document("a", 10, rng))
        assert len(store.search_dense(unit_vector(rng), k=4)) == 4
        assert len(store.search_lexical(ENCODER.encode_query("passage"), k=2)) == 2

    def test_search_right_after_upsert_then_after_optimize(self, store, rng):
        """Points are searchable as soon as upsert returns (before any index is built), and
        ``optimize`` changes nothing a search returns."""
        items = make_document("a", 20, rng)
        store.upsert(items)
        before = store.search_dense(items[3].dense, k=1)
        assert before[0].chunk_id == items[3].chunk.id
        lexical = store.search_lexical(ENCODER.encode_query("a passage 7"), k=20)
        assert {r.chunk_id for r in lexical} == {item.chunk.id for item in items}
        assert store.optimize() in (True, False)
        assert store.search_dense(items[3].dense, k=1) == before
        assert store.search_lexical(ENCODER.encode_query("a passage 7"), k=20) == lexical

    def test_export_then_import_restores_every_point(self, store, rng):
        items = make_document("a", 300, rng) + make_document("b", 2, rng, collection="hr")
        store.upsert(items)
        lexical_query = ENCODER.encode_query("b passage 1")
        before = (store.search_dense(items[5].dense, k=3), store.search_lexical(lexical_query, k=3))
        exported = [point for batch in store.export_points(batch=128) for point in batch]
        assert len(exported) == 302 and len({p.id for p in exported}) == 302
        store.delete_document("a")
        store.delete_document("b")
        assert store.count() == 0
        store.import_points(exported)
        assert store.count(document_id="a") == 300 and store.count(document_id="b") == 2
        after = (store.search_dense(items[5].dense, k=3), store.search_lexical(lexical_query, k=3))
        assert [[r.chunk_id for r in half] for half in after] == [
            [r.chunk_id for r in half] for half in before
        ]
        assert after[0][0] == before[0][0]  # the payload came back whole

    def test_threads_share_one_store(self, store, rng):
        """The web threads read while the worker writes, through one store object."""
        store.upsert(make_document("seed", 10, rng))
        query = unit_vector(rng)
        errors: list[BaseException] = []
        writing = threading.Event()

        def read() -> None:
            try:
                while writing.is_set():
                    assert len(store.search_dense(query, k=5)) == 5
                    store.search_lexical(ENCODER.encode_query("passage"), k=5)
                    store.count(document_id="seed")
            except BaseException as exc:  # noqa: BLE001 - reported by the main thread
                errors.append(exc)

        writing.set()
        readers = [threading.Thread(target=read) for _ in range(3)]
        for reader in readers:
            reader.start()
        try:
            for n in range(10):
                store.upsert(make_document(f"w{n}", 20, np.random.default_rng(n)))
                store.delete_document(f"w{n}", from_index=10)
        finally:
            writing.clear()
            for reader in readers:
                reader.join()
        assert not errors, errors
        assert store.count() == 10 + 10 * 10


# ---------------------------------------------------------------------------------------------
# EdgeStore specifics: the folder, its lock, and moving a local-mode folder in
# ---------------------------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[2]


def _open_in_another_process(path: Path) -> subprocess.CompletedProcess:
    code = (
        "import sys\n"
        "from rag.store import EdgeStore, StoreLocked\n"
        f"store = EdgeStore(path={str(path)!r}, dimension={DIM})\n"
        "try:\n"
        "    print(store.count())\n"
        "except StoreLocked as exc:\n"
        "    print('locked:', exc)\n"
        "finally:\n"
        "    store.close()\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


class TestEdgeStore:
    def test_one_process_at_a_time(self, tmp_path, rng):
        path = tmp_path / "edge"
        first = EdgeStore(path=str(path), dimension=DIM)
        second = EdgeStore(path=str(path), dimension=DIM)
        try:
            first.upsert(make_document("a", 2, rng))
            with pytest.raises(StoreLocked, match="open in another process .* set QDRANT_URL"):
                second.count()
            result = _open_in_another_process(path)
            assert result.returncode == 0, result.stderr
            assert result.stdout.startswith(f"locked: the embedded vector store at {path} is open")
            first.close()
            assert second.count() == 2  # the lock goes with the first store, the data stays
            second.close()
            assert _open_in_another_process(path).stdout.strip() == "2"
        finally:
            first.close()
            second.close()

    def test_data_persists_across_reopen_and_indexes_are_kept(self, tmp_path, rng):
        path = str(tmp_path / "edge")
        store = EdgeStore(path=path, dimension=DIM)
        items = make_document("a", 3, rng)
        store.upsert(items)
        store.close()
        reopened = EdgeStore(path=path, dimension=DIM)
        try:
            reopened.ensure_collection()  # must not recreate (and empty) the shard
            assert reopened.count(document_id="a") == 3
            assert reopened.search_dense(items[1].dense, k=1)[0].chunk_id == items[1].chunk.id
            assert set(reopened.shard.info().payload_schema) == {
                "document_id",
                "collection",
                "chunk_index",
                "kind",
            }
        finally:
            reopened.close()

    def test_dimension_mismatch_with_existing_shard(self, tmp_path, rng):
        path = str(tmp_path / "edge")
        store = EdgeStore(path=path, dimension=DIM)
        store.upsert(make_document("a", 1, rng))
        store.close()
        wider = EdgeStore(path=path, dimension=DIM * 2)
        try:
            with pytest.raises(ValueError, match="holds 8-d vectors but the embedder gives 16-d"):
                wider.ensure_collection()
        finally:
            wider.close()

    def test_optimize_builds_the_index_and_search_is_unchanged(self, tmp_path, rng):
        store = EdgeStore(path=str(tmp_path / "edge"), dimension=DIM, indexing_threshold_kb=1)
        try:
            items = make_document("a", 400, rng)
            store.upsert(items)
            queries = [unit_vector(rng) for _ in range(5)]
            before = [[r.chunk_id for r in store.search_dense(q, k=3)] for q in queries]
            assert store.shard.info().indexed_vectors_count < 2 * 400
            assert store.optimize() is True
            assert store.shard.info().indexed_vectors_count >= 2 * 400  # dense and sparse
            after = [[r.chunk_id for r in store.search_dense(q, k=3)] for q in queries]
            assert after == before
            assert store.optimize() is False  # nothing new to build
        finally:
            store.close()

    @pytest.mark.parametrize(
        "kwargs, message",
        [
            ({"path": ""}, "folder path"),
            ({"path": "x", "dimension": 0}, "dimension"),
            ({"path": "x", "segments": 0}, "segments"),
        ],
    )
    def test_configuration_is_checked(self, kwargs, message):
        with pytest.raises(ValueError, match=message):
            EdgeStore(**kwargs)


def _legacy_folder(path: Path, rng) -> list[IndexedChunk]:
    """A DATA_DIR/qdrant as the local-mode default left it."""
    items = make_document("a", 300, rng) + make_document("b", 3, rng, collection="hr")
    legacy = QdrantStore(path=str(path), dimension=DIM)
    legacy.upsert(items)
    legacy.close()
    return items


class TestEdgeMigration:
    def test_a_local_mode_folder_is_copied_in_on_first_open(self, tmp_path, rng):
        items = _legacy_folder(tmp_path / "qdrant", rng)
        store = EdgeStore(
            path=str(tmp_path / "edge"), dimension=DIM, migrate_from=str(tmp_path / "qdrant")
        )
        try:
            assert store.count(document_id="a") == 300 and store.count(document_id="b") == 3
            (hit,) = store.search_dense(items[-1].dense, k=1, collections=["hr"])
            assert hit.chunk_id == items[-1].chunk.id and hit.text == "b passage 2"
            assert hit.document_name == "b.pdf" and hit.heading_path == ("Guide", "Setup")
            lexical = store.search_lexical(ENCODER.encode_query("b passage"), k=3)
            assert {r.chunk_id for r in lexical} == {item.chunk.id for item in items[-3:]}
            store.delete_document("b")
        finally:
            store.close()
        assert not (tmp_path / "edge.migrating").exists()
        assert QdrantStore(path=str(tmp_path / "qdrant"), dimension=DIM).count() == 303  # kept
        again = EdgeStore(
            path=str(tmp_path / "edge"), dimension=DIM, migrate_from=str(tmp_path / "qdrant")
        )
        try:
            assert again.count(document_id="b") == 0  # copied once, not at every start
        finally:
            again.close()

    def test_a_copy_cut_short_is_started_again(self, tmp_path, rng, monkeypatch):
        _legacy_folder(tmp_path / "qdrant", rng)
        options = {"dimension": DIM, "migrate_from": str(tmp_path / "qdrant")}
        real_import = EdgeStore.import_points
        calls = []

        def failing_import(self, points):
            calls.append(len(points))
            if len(calls) == 2:
                raise OSError("No space left on device")
            real_import(self, points)

        monkeypatch.setattr(EdgeStore, "import_points", failing_import)
        store = EdgeStore(path=str(tmp_path / "edge"), **options)
        with pytest.raises(OSError, match="No space left"):
            store.count()
        store.close()
        assert not (tmp_path / "edge").exists()  # no half-filled store is ever opened

        monkeypatch.setattr(EdgeStore, "import_points", real_import)
        store = EdgeStore(path=str(tmp_path / "edge"), **options)
        try:
            assert store.count() == 303
        finally:
            store.close()

    def test_a_held_local_mode_folder_is_reported(self, tmp_path, rng):
        _legacy_folder(tmp_path / "qdrant", rng)
        holder = QdrantStore(path=str(tmp_path / "qdrant"), dimension=DIM)
        try:
            holder.count()
            store = EdgeStore(
                path=str(tmp_path / "edge"), dimension=DIM, migrate_from=str(tmp_path / "qdrant")
            )
            with pytest.raises(StoreLocked, match="another process"):
                store.count()
            store.close()
        finally:
            holder.close()

    def test_no_local_mode_folder_means_a_new_empty_store(self, tmp_path):
        store = EdgeStore(
            path=str(tmp_path / "edge"), dimension=DIM, migrate_from=str(tmp_path / "qdrant")
        )
        try:
            assert store.count() == 0
        finally:
            store.close()
        assert not (tmp_path / "qdrant").exists()


# ---------------------------------------------------------------------------------------------
# Qdrant specifics
# ---------------------------------------------------------------------------------------------


class TestQdrantEmbedded:
    def test_second_store_on_same_folder_is_locked(self, tmp_path, rng):
        path = str(tmp_path / "q")
        first = QdrantStore(path=path, dimension=DIM)
        second = QdrantStore(path=path, dimension=DIM)
        try:
            first.upsert(make_document("a", 2, rng))
            with pytest.raises(StoreLocked, match="another process"):
                second.count()
            first.close()
            assert second.count() == 2  # the lock goes with the first store, data stays
        finally:
            first.close()
            second.close()

    def test_data_persists_across_reopen(self, tmp_path, rng):
        path = str(tmp_path / "q")
        store = QdrantStore(path=path, dimension=DIM)
        store.upsert(make_document("a", 3, rng))
        store.close()
        reopened = QdrantStore(path=path, dimension=DIM)
        try:
            reopened.ensure_collection()  # must not recreate (and empty) the collection
            assert reopened.count(document_id="a") == 3
        finally:
            reopened.close()

    def test_dimension_mismatch_with_existing_collection(self, tmp_path, rng):
        path = str(tmp_path / "q")
        store = QdrantStore(path=path, dimension=DIM)
        store.upsert(make_document("a", 1, rng))
        store.close()
        wider = QdrantStore(path=path, dimension=DIM * 2)
        try:
            with pytest.raises(ValueError, match="holds 8-d vectors but the embedder gives 16-d"):
                wider.ensure_collection()
        finally:
            wider.close()


class TestQdrantConfiguration:
    @pytest.mark.parametrize(
        "kwargs",
        [
            {"url": "http://localhost:6333", "path": "/tmp/q"},
            {},
            {"url": "", "path": ""},
            {"url": None, "path": None},
        ],
    )
    def test_needs_exactly_one_of_url_or_path(self, kwargs):
        with pytest.raises(ValueError, match="exactly one of url"):
            QdrantStore(**kwargs)

    def test_dimension_must_be_positive(self, tmp_path):
        with pytest.raises(ValueError, match="dimension"):
            QdrantStore(path=str(tmp_path / "q"), dimension=0)


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A local port that refuses connections: bound (so nobody else takes it) but not listening."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


class _ErrorHandler(BaseHTTPRequestHandler):
    def _answer(self) -> None:
        body = b'{"status": {"error": "simulated"}}'
        self.send_response(self.server.status)  # type: ignore[attr-defined]
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = _answer

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def error_server(request) -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), _ErrorHandler)
    server.status = request.param  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()
    thread.join()


def _calls(store: QdrantStore, rng: np.random.Generator) -> dict[str, Callable[[], object]]:
    return {
        "ensure_collection": store.ensure_collection,
        "count": store.count,
        "upsert": lambda: store.upsert(make_document("a", 1, rng)),
        "delete_document": lambda: store.delete_document("a"),
        "search_dense": lambda: store.search_dense(unit_vector(rng), k=3),
        "search_lexical": lambda: store.search_lexical(ENCODER.encode_query("roof"), k=3),
    }


@pytest.mark.filterwarnings("ignore:Failed to obtain server version")
class TestQdrantServerErrors:
    @pytest.mark.parametrize(
        "call",
        [
            "ensure_collection",
            "count",
            "upsert",
            "delete_document",
            "search_dense",
            "search_lexical",
        ],
    )
    def test_unreachable_server(self, closed_port, call, rng):
        store = QdrantStore(url=f"http://127.0.0.1:{closed_port}", dimension=DIM, timeout=2)
        try:
            with pytest.raises(StoreUnavailable, match="unreachable"):
                _calls(store, rng)[call]()
        finally:
            store.close()

    def test_unreachable_well_known_port(self, rng):
        store = QdrantStore(url="http://127.0.0.1:9", dimension=DIM, timeout=2)
        try:
            with pytest.raises(StoreUnavailable):
                store.count()
        finally:
            store.close()

    @pytest.mark.parametrize("error_server", [500, 503], indirect=True)
    def test_server_error_is_unavailable(self, error_server, rng):
        store = QdrantStore(url=error_server, dimension=DIM, timeout=2)
        try:
            with pytest.raises(StoreUnavailable, match=r"Qdrant answered 5\d\d"):
                store.count()
        finally:
            store.close()

    @pytest.mark.parametrize("error_server", [400, 404], indirect=True)
    def test_client_error_is_not_retryable(self, error_server, rng):
        from qdrant_client.http.exceptions import UnexpectedResponse

        store = QdrantStore(url=error_server, dimension=DIM, timeout=2)
        try:
            with pytest.raises(UnexpectedResponse) as info:
                store.count()
            assert not isinstance(info.value, StoreUnavailable)
        finally:
            store.close()


@pytest.fixture
def recording_qdrant() -> Iterator[tuple[str, list]]:
    with FakeQdrant() as server:
        yield server.url, server.requests


@pytest.mark.filterwarnings("ignore:Failed to obtain server version")
class TestQdrantCluster:
    def test_the_collection_is_created_sharded_and_replicated_with_its_indexes(
        self, recording_qdrant
    ):
        url, requests = recording_qdrant
        store = QdrantStore(
            url=url, dimension=DIM, shard_number=6, replication_factor=2, write_consistency_factor=2
        )
        try:
            store.ensure_collection()
        finally:
            store.close()
        puts = [(path, body) for method, path, body in requests if method == "PUT"]
        path, body = puts[0]
        assert path == "/collections/chunks"
        assert (body["shard_number"], body["replication_factor"]) == (6, 2)
        assert body["write_consistency_factor"] == 2
        assert body["vectors"]["dense"]["size"] == DIM
        indexes = {b["field_name"]: b["field_schema"] for p, b in puts[1:]}
        assert indexes == {
            "document_id": "keyword",
            "collection": "keyword",
            "chunk_index": "integer",
            "kind": "keyword",
        }

    def test_server_defaults_when_not_set(self, recording_qdrant):
        url, requests = recording_qdrant
        store = QdrantStore(url=url, dimension=DIM)
        try:
            store.ensure_collection()
        finally:
            store.close()
        body = next(body for method, path, body in requests if path == "/collections/chunks")
        assert "shard_number" not in body or body["shard_number"] is None

    @pytest.mark.parametrize("option", ["shard_number", "replication_factor"])
    def test_counts_must_be_positive(self, tmp_path, option):
        with pytest.raises(ValueError, match=f"{option} must be at least 1"):
            QdrantStore(path=str(tmp_path), dimension=DIM, **{option: 0})
