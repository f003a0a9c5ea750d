"""tests.qdrant_standin: the Qdrant server stand-in that multi-process tests share a vector store
through. ``QdrantStore`` runs unchanged against it (the store contract), its answers are the
embedded engine's (scores, IDF, filters, fusion), the app searches through it, and separate
processes see the same points."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import UnexpectedResponse

from core.components import get_retriever, get_store
from ingest import services
from rag.store import EdgeStore, QdrantStore, StoreUnavailable, VectorStore
from tests.docs import make_pdf
from tests.ingest.helpers import ingest
from tests.qdrant_standin import QdrantStandin
from tests.rag.test_store import DIM, ENCODER, make_document, make_item, unit_vector
from tests.rag.test_store import TestVectorStoreContract as _Contract

ROOT = Path(__file__).resolve().parents[2]

# qdrant-client checks the server's version in a background thread, which may still be asking
# when a short test has stopped its stand-in
pytestmark = pytest.mark.filterwarnings("ignore:Failed to obtain server version")


@pytest.fixture
def standin(tmp_path) -> Iterator[QdrantStandin]:
    with QdrantStandin(path=tmp_path / "standin") as server:
        yield server


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


@pytest.fixture
def store_factory(standin) -> Iterator[Callable[[], VectorStore]]:
    opened: list[VectorStore] = []

    def factory() -> VectorStore:
        store = QdrantStore(url=standin.url, dimension=DIM)
        opened.append(store)
        return store

    yield factory
    for store in opened:
        store.close()


@pytest.fixture
def store(store_factory) -> VectorStore:
    store = store_factory()
    store.ensure_collection()
    return store


class TestContractOverTheStandin(_Contract):
    """Every test of the VectorStore contract, QdrantStore over HTTP to the stand-in."""


def _client(url: str) -> QdrantClient:
    return QdrantClient(url=url, timeout=10)


def _corpus(rng: np.random.Generator):
    items = [
        make_item("alpha", 0, "the quarterly budget review is due in march", rng=rng),
        make_item("alpha", 1, "budget lines for travel and training", rng=rng),
        make_item("beta", 0, "visitors sign in at reception", collection="hr", rng=rng),
        make_item("beta", 1, "badges are worn at all times by visitors", collection="hr", rng=rng),
        make_item("gamma", 0, "laptops use full disk encryption", collection="it", rng=rng),
    ]
    items += make_document("delta", 6, rng, collection="it")
    return items


@pytest.fixture
def twins(standin, tmp_path, rng) -> Iterator[tuple[QdrantStore, EdgeStore]]:
    """The same points in the stand-in (over HTTP) and in an embedded EdgeStore."""
    remote = QdrantStore(url=standin.url, dimension=DIM)
    edge = EdgeStore(path=str(tmp_path / "edge-twin"), dimension=DIM)
    items = _corpus(rng)
    remote.upsert(items)
    edge.upsert(items)
    yield remote, edge
    remote.close()
    edge.close()


def _scored(results) -> list[tuple[str, float]]:
    return [(r.chunk_id, round(r.score, 5)) for r in results]


class TestAnswersAreTheEngines:
    """The stand-in's answers are the embedded engine's, score for score."""

    def test_dense_and_lexical_search_give_the_same_hits_and_scores(self, twins, rng):
        remote, edge = twins
        for collections in (None, ["hr"], ["it", "handbook"]):
            query = unit_vector(rng)
            assert _scored(remote.search_dense(query, k=4, collections=collections)) == _scored(
                edge.search_dense(query, k=4, collections=collections)
            )
        for text in ("budget", "visitors reception", "passage encryption"):
            sparse = ENCODER.encode_query(text)
            hits = remote.search_lexical(sparse, k=20)  # every match: ties may come in any order
            assert sorted(_scored(hits)) == sorted(_scored(edge.search_lexical(sparse, k=20)))
            assert hits  # IDF-weighted BM25, computed by the engine at query time
        top, *_ = remote.search_lexical(ENCODER.encode_query("reception"), k=3)
        assert (top.document_id, top.collection) == ("beta", "hr")

    @pytest.mark.parametrize("fusion", ["rrf", "dbsf"])
    def test_prefetch_and_fusion(self, twins, standin, rng, fusion):
        from qdrant_edge import Fusion, Prefetch, Query, QueryRequest
        from qdrant_edge import SparseVector as EdgeSparse

        remote, edge = twins
        dense = list(unit_vector(rng))
        sparse = ENCODER.encode_query("visitors budget")
        client = _client(standin.url)
        try:
            response = client.query_points(
                "chunks",
                prefetch=[
                    models.Prefetch(query=dense, using="dense", limit=20),
                    models.Prefetch(
                        query=models.SparseVector(
                            indices=list(sparse.indices), values=list(sparse.values)
                        ),
                        using="lexical",
                        limit=20,
                    ),
                ],
                query=models.FusionQuery(fusion=getattr(models.Fusion, fusion.upper())),
                query_filter=models.Filter(
                    must_not=[
                        models.FieldCondition(key="collection", match=models.MatchValue(value="it"))
                    ]
                ),
                limit=20,
                with_payload=True,
            )
        finally:
            client.close()
        expected = edge.shard.query(
            QueryRequest(
                limit=20,
                prefetches=[
                    Prefetch(limit=20, query=Query.Nearest(dense, using="dense")),
                    Prefetch(
                        limit=20,
                        query=Query.Nearest(
                            EdgeSparse(list(sparse.indices), list(sparse.values)), using="lexical"
                        ),
                    ),
                ],
                query=Fusion.Rrf(k=2) if fusion == "rrf" else Fusion.Dbsf(),
                filter=_edge_not_it(),
                with_payload=True,
            )
        )
        got = [(str(p.id), round(p.score, 5)) for p in response.points]
        # every candidate in (the corpus is smaller than the limits), so ties cannot change who
        # is in; tied points may come in either order
        assert sorted(got) == sorted((str(p.id), round(p.score, 5)) for p in expected)
        assert [score for _, score in got] == sorted((score for _, score in got), reverse=True)
        assert got and all(p.payload["collection"] != "it" for p in response.points)

    def test_filters(self, twins, standin):
        client = _client(standin.url)

        def count(**filter_) -> int:
            return client.count("chunks", count_filter=models.Filter(**filter_), exact=True).count

        key = models.FieldCondition
        try:
            assert count(must=[key(key="collection", match=models.MatchValue(value="it"))]) == 7
            assert count(must_not=[key(key="collection", match=models.MatchAny(any=["it"]))]) == 4
            assert (
                count(
                    should=[
                        key(key="document_id", match=models.MatchValue(value="alpha")),
                        key(key="document_id", match=models.MatchValue(value="beta")),
                    ]
                )
                == 4
            )
            assert count(must=[key(key="chunk_index", range=models.Range(gte=1, lt=3))]) == 4
            assert (
                count(
                    must=[
                        key(key="collection", match=models.MatchExcept(**{"except": ["it", "hr"]}))
                    ]
                )
                == 2
            )
            records, _ = client.scroll(
                "chunks",
                scroll_filter=models.Filter(
                    must=[key(key="document_id", match=models.MatchValue(value="delta"))]
                ),
                limit=100,
            )
            some = [str(record.id) for record in records[:2]]
            assert count(must=[models.HasIdCondition(has_id=some)]) == 2
        finally:
            client.close()


def _edge_not_it():
    from qdrant_edge import FieldCondition, Filter, MatchValue

    return Filter(must_not=[FieldCondition(key="collection", match=MatchValue("it"))])


class TestTheService:
    def test_the_collection_reports_its_configuration_and_indexes(self, standin):
        store = QdrantStore(url=standin.url, dimension=DIM, shard_number=3, replication_factor=2)
        client = _client(standin.url)
        try:
            store.ensure_collection()
            info = client.get_collection("chunks")
            assert info.config.params.vectors["dense"].size == DIM
            assert info.config.params.sparse_vectors["lexical"].modifier == models.Modifier.IDF
            assert (info.config.params.shard_number, info.config.params.replication_factor) == (
                3,
                2,
            )
            assert {
                field: index.data_type.value for field, index in info.payload_schema.items()
            } == {
                "document_id": "keyword",
                "collection": "keyword",
                "chunk_index": "integer",
                "kind": "keyword",
            }
            assert [c.name for c in client.get_collections().collections] == ["chunks"]
        finally:
            store.close()
            client.close()

    def test_a_store_of_another_dimension_is_refused(self, standin):
        first = QdrantStore(url=standin.url, dimension=DIM)
        wider = QdrantStore(url=standin.url, dimension=DIM * 2)
        try:
            first.ensure_collection()
            with pytest.raises(ValueError, match=f"holds {DIM}-d vectors"):
                wider.ensure_collection()
        finally:
            first.close()
            wider.close()

    def test_a_missing_collection_is_a_404_not_an_outage(self, standin):
        client = _client(standin.url)
        try:
            with pytest.raises(UnexpectedResponse) as info:
                client.count("nothing-here")
            assert info.value.status_code == 404
            assert not isinstance(info.value, StoreUnavailable)
            assert not client.collection_exists("nothing-here")
        finally:
            client.close()

    def test_points_outlive_a_restart(self, tmp_path, rng):
        items = make_document("kept", 5, rng)
        with QdrantStandin(path=tmp_path / "s") as server:
            store = QdrantStore(url=server.url, dimension=DIM)
            store.upsert(items)
            store.close()
        with QdrantStandin(path=tmp_path / "s") as server:
            store = QdrantStore(url=server.url, dimension=DIM)
            try:
                assert store.count(document_id="kept") == 5
                (hit, *_) = store.search_dense(items[3].dense, k=1)
                assert hit.chunk_id == items[3].chunk.id
            finally:
                store.close()


# ---------------------------------------------------------------------------------------------
# Several processes, one store
# ---------------------------------------------------------------------------------------------

CHILD = """
import sys
import numpy as np
from rag.store import QdrantStore
from tests.rag.test_store import DIM, make_document
store = QdrantStore(url=sys.argv[1], dimension=DIM)
print(store.count(), store.count(document_id="parent"), flush=True)
store.upsert(make_document("child", 3, np.random.default_rng(7), collection="hr"))
(hit,) = store.search_dense(make_document("parent", 4, np.random.default_rng(1))[2].dense, k=1)
print(hit.chunk_id, flush=True)
store.close()
"""


def _python(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        **kwargs,
    )


class TestSeveralProcesses:
    def test_a_subprocess_sees_and_writes_the_same_points(self, standin):
        parent = make_document("parent", 4, np.random.default_rng(1))
        store = QdrantStore(url=standin.url, dimension=DIM)
        try:
            store.upsert(parent)
            done = _python("-c", CHILD, standin.url)
            assert done.returncode == 0, done.stderr
            counts, hit = done.stdout.split("\n")[:2]
            assert counts == "4 4"  # the parent's points, seen from the other process
            assert hit == parent[2].chunk.id
            assert store.count(document_id="child") == 3  # and the child's, seen from here
            assert {
                r.document_id
                for r in store.search_dense(
                    unit_vector(np.random.default_rng()), k=10, collections=["hr"]
                )
            } == {"child"}
        finally:
            store.close()

    def test_the_standin_as_its_own_process(self, tmp_path):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        url = f"http://127.0.0.1:{port}"
        command = [sys.executable, "-m", "tests.qdrant_standin", "--port", str(port)]
        command += ["--path", str(tmp_path / "served")]

        def serve() -> subprocess.Popen:
            server = subprocess.Popen(
                command,
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
            )
            assert "listening on" in server.stdout.readline()
            return server

        server = serve()
        try:
            store = QdrantStore(url=url, dimension=DIM)
            store.upsert(make_document("parent", 4, np.random.default_rng(1)))
            store.close()
            server.send_signal(signal.SIGTERM)  # closes the shard, then exits
            assert server.wait(timeout=30) == 0, server.stderr.read()
            server = serve()
            done = _python("-c", CHILD, url)
            assert done.returncode == 0, done.stderr
            assert done.stdout.startswith("4 4\n")
        finally:
            if server.poll() is None:
                server.send_signal(signal.SIGTERM)
                server.wait(timeout=30)
            for stream in (server.stdout, server.stderr):
                stream.close()


# ---------------------------------------------------------------------------------------------
# The app through the stand-in
# ---------------------------------------------------------------------------------------------

HANDBOOK = [
    "Travel policy\nEconomy class is required for flights shorter than six hours.",
    "Expenses\nTaxi receipts must be submitted within thirty days of the trip.",
]
MEMO = "Visitors sign in at reception and wear a badge at all times."


@pytest.mark.django_db
def test_the_app_ingests_searches_and_deletes_through_the_standin(qdrant_standin, collection):
    handbook = ingest(make_pdf(HANDBOOK), "handbook.pdf", collection)
    hr = services.collection_get_or_create(slug="hr")
    memo = ingest(MEMO.encode(), "memo.txt", hr)
    assert (handbook.status, memo.status) == ("ready", "ready")
    store = get_store()
    assert isinstance(store, QdrantStore) and store.url == qdrant_standin.url
    assert store.count(document_id=str(handbook.pk)) == handbook.chunk_count > 0
    assert store.count() == handbook.chunk_count + memo.chunk_count

    (hit, *_) = get_retriever().search("deadline for taxi receipts", collections=["general"])
    assert (hit.document_name, hit.page) == ("handbook.pdf", 2)
    (hit, *_) = get_retriever().search("where do visitors sign in", collections=["hr"])
    assert hit.document_id == str(memo.pk) and "reception" in hit.text
    hits = get_retriever().search("where do visitors sign in", collections=["general"])
    assert all(h.collection == "general" for h in hits)  # the access filter runs in the engine

    services.document_delete(document=memo)
    assert store.count(document_id=str(memo.pk)) == 0
    assert store.count() == handbook.chunk_count
    assert not get_retriever().search("where do visitors sign in", collections=["hr"])
