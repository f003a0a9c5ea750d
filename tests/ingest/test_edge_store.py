"""The embedded store in the app: a DATA_DIR from the local-mode days moves into it at start-up,
and the worker builds its indexes after a document (never a web request)."""

from __future__ import annotations

import pytest

from core.components import get_retriever, get_store, reset_components
from ingest import services
from rag.store import EdgeStore
from tests.docs import make_pdf
from tests.ingest.helpers import ingest

HANDBOOK = [
    "Travel policy\nEconomy class is required for flights shorter than six hours.",
    "Expenses\nTaxi receipts must be submitted within thirty days of the trip.",
]
MEMO = "Visitors sign in at reception and wear a badge at all times."


@pytest.mark.django_db
def test_a_local_mode_data_dir_is_moved_into_the_embedded_store_at_start_up(
    settings, tmp_path, collection
):
    # the app as it was: qdrant-client's local mode in DATA_DIR/qdrant
    settings.RAG_VECTOR_STORE = {
        "BACKEND": "rag.store.QdrantStore",
        "OPTIONS": {"path": str(tmp_path / "qdrant")},
    }
    handbook = ingest(make_pdf(HANDBOOK), "handbook.pdf", collection)
    hr = services.collection_get_or_create(slug="hr")
    memo = ingest(MEMO.encode(), "memo.txt", hr)
    assert (handbook.status, memo.status) == ("ready", "ready")
    before = {
        query: [(hit.chunk_id, hit.document_id, hit.page) for hit in get_retriever().search(query)]
        for query in ("deadline for taxi receipts", "where do visitors sign in")
    }
    reset_components()  # the old app stops

    # the new default, as config/settings/base.py builds it for this DATA_DIR
    settings.RAG_VECTOR_STORE = {
        "BACKEND": "rag.store.EdgeStore",
        "OPTIONS": {"path": str(tmp_path / "edge"), "migrate_from": str(tmp_path / "qdrant")},
    }
    get_store().ensure_collection()  # what `manage.py serve` does first

    store = get_store()
    assert isinstance(store, EdgeStore)
    assert store.count(document_id=str(handbook.pk)) == handbook.chunk_count
    assert store.count(document_id=str(memo.pk)) == memo.chunk_count
    (hit, *_) = get_retriever().search("deadline for taxi receipts", collections=["general"])
    assert (hit.document_name, hit.page) == ("handbook.pdf", 2)
    (hit, *_) = get_retriever().search("where do visitors sign in", collections=["hr"])
    assert hit.document_id == str(memo.pk) and "reception" in hit.text
    after = {
        query: [(hit.chunk_id, hit.document_id, hit.page) for hit in get_retriever().search(query)]
        for query in before
    }
    assert after == before  # the same passages in the same order: nothing lost or re-embedded

    # and the moved store goes on like any other: delete, re-index
    services.document_delete(document=memo)
    assert get_store().count(document_id=str(memo.pk)) == 0


@pytest.mark.django_db
def test_the_worker_builds_the_index_after_a_document(collection, monkeypatch):
    store = get_store()
    built = []
    real_optimize = store.optimize
    monkeypatch.setattr(
        store,
        "optimize",
        lambda: built.append(store.count()) or real_optimize(),
    )

    document = ingest(make_pdf(HANDBOOK), "handbook.pdf", collection)

    assert document.status == "ready"
    assert built == [document.chunk_count]  # once, with the document's points written
    (hit, *_) = get_retriever().search("deadline for taxi receipts")
    assert hit.document_id == str(document.pk)


CRASH_AFTER_WRITING = """
import os, sys
from rag.chunking import chunk_id_for
from rag.store import EdgeStore
from rag.types import Chunk, IndexedChunk, SparseVector

store = EdgeStore(path=sys.argv[1], dimension=4)
store.upsert([
    IndexedChunk(
        chunk=Chunk(id=chunk_id_for("sha", i), doc_id="d", index=i, page=1, start=0, end=1,
                    text="x", content_hash="h"),
        dense=(1.0, 0.0, 0.0, float(i)), sparse=SparseVector((1,), (1.0,)),
        payload={"collection": "c", "document_name": "d.txt"},
    )
    for i in range(50)
])
store.optimize()  # below the indexing threshold and within FLUSH_INTERVAL: no flush
os._exit(0)  # the worker dies: no close, no flush
"""


def test_points_written_but_not_flushed_survive_a_crash(tmp_path):
    """optimize() flushes segments only now and then: the engine's write-ahead log holds every
    acknowledged write and is replayed at the next load."""
    import subprocess
    import sys
    from pathlib import Path

    folder = tmp_path / "edge"
    root = Path(__file__).resolve().parents[2]
    subprocess.run(
        [sys.executable, "-c", CRASH_AFTER_WRITING, str(folder)], cwd=root, check=True, timeout=120
    )
    store = EdgeStore(path=str(folder), dimension=4)
    try:
        assert store.count() == 50
        assert store.count(document_id="d") == 50
    finally:
        store.close()
