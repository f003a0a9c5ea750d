"""The ingestion pipeline end to end in one process: real parser, model, Qdrant (local) and Postgres."""

import threading
import time
import tracemalloc

import pytest

from core.components import get_retriever
from ingest import services
from ingest.models import Document
from tests.docs import (
    make_docx,
    make_encrypted_pdf,
    make_many_page_pdf,
    make_pdf,
    make_png,
    make_scanned_pdf,
)

from .helpers import ingest, upload

pytestmark = pytest.mark.django_db

HANDBOOK = [
    "Employee handbook\nWelcome to the company. This handbook explains our policies.",
    "Travel policy\nEconomy class is required for flights shorter than six hours.\n"
    "Receipts must be submitted within thirty days of travel.",
    "Security policy\nLaptops must use full disk encryption and a screen lock after five minutes.",
]


def test_pdf_becomes_searchable_with_physical_pages(collection, store):
    document = ingest(make_pdf(HANDBOOK), "handbook.pdf", collection)

    assert document.status == Document.Status.READY, document.error
    assert (document.page_count, document.progress, document.media_type) == (
        3,
        100,
        "application/pdf",
    )
    assert document.chunk_count == store.count(document_id=str(document.pk)) >= 3

    hits = get_retriever().search("how long do I have to hand in travel receipts?", k=3)
    assert hits[0].document_id == str(document.pk)
    assert hits[0].page == 2
    assert "thirty days" in hits[0].text
    assert hits[0].document_name == "handbook.pdf"
    assert hits[0].collection == "general"


@pytest.mark.parametrize(
    ("name", "data", "media_type", "heading"),
    [
        (
            "guide.md",
            b"# Guide\n\n## Backups\n\nBackups run nightly at two in the morning.\n",
            "text/markdown",
            "Backups",
        ),
        (
            "guide.html",
            b"<html><head><script>alert(1)</script></head><body><h1>Guide</h1><h2>Backups</h2>"
            b"<p>Backups run nightly at two in the morning.</p></body></html>",
            "text/html",
            "Backups",
        ),
        (
            "guide.docx",
            make_docx(
                [
                    ("h1", "Guide"),
                    ("h2", "Backups"),
                    ("p", "Backups run nightly at two in the morning."),
                ]
            ),
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            "Backups",
        ),
        (
            "guide.txt",
            "Backups run nightly at two in the morning. Café ñ.".encode("cp1252"),
            "text/plain",
            None,
        ),
    ],
)
def test_each_format_is_ingested_with_its_structure(collection, name, data, media_type, heading):
    document = ingest(data, name, collection)

    assert document.status == Document.Status.READY, document.error
    assert document.media_type == media_type
    assert document.page_count is None
    hit = get_retriever().search("when do backups run?", k=1)[0]
    assert "nightly" in hit.text and hit.page is None
    if heading:
        assert hit.heading_path == ("Guide", heading)
    assert "alert" not in hit.text


BAD_INPUTS = [
    ("empty.pdf", b"", "empty file (0 bytes)"),
    ("truncated.pdf", make_pdf(HANDBOOK)[:400], "corrupt or truncated PDF"),
    ("locked.pdf", make_encrypted_pdf(["secret plans"]), "encrypted PDF"),
    ("scan.pdf", make_scanned_pdf(3), "no extractable text — scanned PDF?"),
    ("photo.pdf", make_png(), "named .pdf but the content is image/png"),
    ("archive.zip", b"PK\x03\x04" + b"\x00" * 100, "a ZIP archive"),
    ("program.exe", b"MZ\x90\x00\x03\x00\x00\x00" + b"\x00" * 200, "unsupported file type"),
    ("blank.html", b"<html><body><script>x()</script></body></html>", "no extractable text"),
]


@pytest.mark.parametrize(("name", "data", "reason"), BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_bad_input_fails_with_a_reason_and_keeps_the_original(
    collection, store, name, data, reason
):
    document = ingest(data, name, collection)

    assert document.status == Document.Status.FAILED
    assert reason in document.error
    assert document.progress == 100 and document.finished_at is not None
    assert document.attempts == 1  # one start, never retried
    assert store.count(document_id=str(document.pk)) == 0
    if data:  # what the user gave us is kept, so it can be downloaded or re-indexed
        with document.file.open("rb") as handle:
            assert handle.read() == data


def test_a_batch_with_bad_files_still_ingests_the_good_ones(collection):
    results = [ingest(data, name, collection) for name, data, _ in BAD_INPUTS[:5]]
    results.append(ingest(make_pdf(HANDBOOK), "handbook.pdf", collection))
    results.append(
        ingest(b"Plain notes about the fire drill on Friday.\n", "notes.txt", collection)
    )

    assert [d.status for d in results] == ["failed"] * 5 + ["ready", "ready"]


def test_one_enormous_line_and_non_utf8_text(collection, store):
    line = ("word " * 400_000).encode()  # 2 MB, one line, no punctuation
    document = ingest(line, "huge-line.txt", collection)
    assert document.status == Document.Status.READY, document.error
    assert document.chunk_count > 1000

    latin = "Le café de l'été coûte deux euros à Genève.\n".encode("latin-1")
    document = ingest(latin, "latin.txt", collection)
    assert document.status == Document.Status.READY
    assert "Genève" in get_retriever().search("prix du café", k=1)[0].text


def test_file_over_the_size_limit_is_recorded_not_stored(collection, settings):
    settings.MAX_UPLOAD_MB = 1
    document = upload(b"x" * (1024 * 1024 + 1), "big.txt", collection)

    assert document.status == Document.Status.FAILED
    assert "over the 1 MB limit" in document.error
    assert not document.file
    with pytest.raises(services.DocumentError, match="not kept"):
        services.document_reindex(document=document)


def test_same_bytes_twice_is_a_duplicate_without_new_points(collection, store):
    data = make_pdf(HANDBOOK)
    original = ingest(data, "handbook.pdf", collection)
    before = store.count()

    again = ingest(data, "handbook-copy.pdf", collection)

    assert again.status == Document.Status.DUPLICATE
    assert again.duplicate_of == original
    assert again.chunk_count == original.chunk_count and again.page_count == 3
    assert store.count() == before
    assert again.file.name == ""  # no second copy of the bytes


def test_rerun_is_idempotent_and_reindex_drops_stale_points(collection, store, settings):
    settings.CHUNK_TOKENS = 32
    text = "\n\n".join(
        f"Paragraph {n} talks about topic number {n} in some detail here." for n in range(60)
    )
    document = ingest(text.encode(), "topics.txt", collection)
    many = document.chunk_count
    assert store.count(document_id=str(document.pk)) == many

    # the same work again (a redelivered task) writes the same ids: no duplicates
    Document.objects.filter(pk=document.pk).update(status=Document.Status.QUEUED)
    services.document_ingest(document_id=document.pk)
    assert store.count(document_id=str(document.pk)) == many

    settings.CHUNK_TOKENS = 256
    services.document_reindex(document=document)
    services.document_ingest(document_id=document.pk)
    document.refresh_from_db()
    assert document.chunk_count < many
    assert store.count(document_id=str(document.pk)) == document.chunk_count


def test_delete_removes_points_and_the_stored_file(collection, store):
    document = ingest(make_pdf(HANDBOOK), "handbook.pdf", collection)
    path = document.file.path
    other = ingest(b"Unrelated memo about parking.", "memo.txt", collection)

    services.document_delete(document=document)

    assert not Document.objects.filter(pk=document.pk).exists()
    assert store.count(document_id=str(document.pk)) == 0
    assert store.count(document_id=str(other.pk)) == other.chunk_count
    import os

    assert not os.path.exists(path)


def test_deleting_a_document_while_it_is_processed_leaves_no_points(collection, store):
    document = upload(make_pdf(HANDBOOK), "handbook.pdf", collection)
    Document.objects.filter(
        pk=document.pk
    ).delete()  # deleted after queueing, before the worker ran

    from ingest.tasks import document_ingest_task

    document_ingest_task.apply(args=[document.pk])
    assert store.count(document_id=str(document.pk)) == 0


@pytest.mark.django_db(transaction=True)
def test_thousand_page_pdf_reports_progress_with_bounded_memory(collection, store):
    document = upload(make_many_page_pdf(1000), "long-report.pdf", collection)
    seen: list[tuple[str, int]] = []
    done = threading.Event()

    def watch() -> None:  # what the progress bar would see, read from the database
        while not done.is_set():
            seen.append(Document.objects.values_list("status", "progress").get(pk=document.pk))
            time.sleep(0.05)

    watcher = threading.Thread(target=watch)
    watcher.start()
    tracemalloc.start()
    try:
        services.document_ingest(document_id=document.pk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        done.set()
        watcher.join()

    document.refresh_from_db()
    assert document.status == Document.Status.READY and document.page_count == 1000
    statuses = {status for status, _ in seen}
    assert {"parsing", "embedding", "indexing"} <= statuses
    parsing = sorted({p for s, p in seen if s == "parsing"})
    embedding = sorted({p for s, p in seen if s == "embedding"})
    assert len(parsing) >= 3 and len(embedding) >= 3, seen  # the bar moves inside long stages
    progress = [p for _, p in seen]
    assert progress == sorted(progress)  # never goes backwards
    assert peak < 150 * 1024 * 1024  # Python-side peak for a 1,000-page document

    hit = get_retriever().search("physical page 734 of the long report", k=3)
    assert 734 in [h.page for h in hit]
