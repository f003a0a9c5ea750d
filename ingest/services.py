"""Writes for documents and collections. Views, the API, commands and tasks each call one of these.

`document_ingest` is the whole pipeline and reads top to bottom:
parse -> chunk -> embed -> index -> mark ready.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import IO

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import F
from django.db.models.functions import Greatest
from django.utils import timezone
from django.utils.text import slugify

from accounts import roles
from audit.services import audit_append
from rag import injection, parsing
from rag.chunking import CHUNKER_VERSION, chunk_id_for
from rag.types import IndexedChunk

from .components import get_chunker, get_embedder, get_lexical_encoder, get_store
from .models import Collection, Document

logger = logging.getLogger(__name__)

DEFAULT_COLLECTION_SLUG = "general"
EMBED_BATCH = 64
UPSERT_BATCH = 256


# Called with a document id when its content changes (re-indexed) or it is deleted: apps that
# keep something derived from a document (the answer cache) drop it. Registered in ready().
document_changed_hooks: list = []


def _document_changed(document_id: int) -> None:
    for hook in document_changed_hooks:
        hook(document_id)


class DocumentError(Exception):
    """An admin action that cannot be done now; the message says why."""


class DocumentGone(Exception):
    """The document was deleted while it was being processed."""


# ---------------------------------------------------------------------------------------------
# Collections
# ---------------------------------------------------------------------------------------------


def collection_get_or_create(*, slug: str | None = None, name: str | None = None) -> Collection:
    """A new collection is readable by the staff group, i.e. everyone who may ask; an admin
    restricts it to other groups in the admin (Collections -> groups)."""
    slug = slugify(slug or name or DEFAULT_COLLECTION_SLUG) or DEFAULT_COLLECTION_SLUG
    collection, created = Collection.objects.get_or_create(
        slug=slug, defaults={"name": name or slug.replace("-", " ").capitalize()}
    )
    if created:
        collection.groups.add(roles.ensure_role_groups()[roles.STAFF])
    return collection


def collection_access_set(
    *, collection: Collection, groups, by: AbstractBaseUser | None = None
) -> list[str]:
    """Set which groups may read ``collection``; recorded in the audit log."""
    before = sorted(collection.groups.values_list("name", flat=True))
    with transaction.atomic():
        collection.groups.set(groups)
        after = sorted(collection.groups.values_list("name", flat=True))
        if after != before:
            audit_append(
                kind="collection.access_change",
                actor=by,
                subject=f"collection:{collection.slug}",
                payload={"collection": collection.slug, "before": before, "after": after},
            )
    return after


def collection_sensitivity_set(
    *, collection: Collection, sensitivity: str, by: AbstractBaseUser | None = None
) -> Collection:
    """Change how sensitive a collection is (it decides which models may see its passages)."""
    if sensitivity not in Collection.Sensitivity.values:
        raise DocumentError(f"unknown sensitivity {sensitivity!r}")
    before = Collection.objects.get(pk=collection.pk).sensitivity
    if before == sensitivity:
        return collection
    with transaction.atomic():
        Collection.objects.filter(pk=collection.pk).update(sensitivity=sensitivity)
        audit_append(
            kind="collection.sensitivity_change",
            actor=by,
            subject=f"collection:{collection.slug}",
            payload={"collection": collection.slug, "before": before, "after": sensitivity},
        )
    collection.sensitivity = sensitivity
    return collection


# ---------------------------------------------------------------------------------------------
# Upload, re-index, delete
# ---------------------------------------------------------------------------------------------


def document_upload(
    *,
    file: IO[bytes],
    name: str,
    collection: Collection,
    uploaded_by: AbstractBaseUser | None = None,
    size: int | None = None,
    enqueue: bool = True,
) -> Document:
    """Record an uploaded file and queue its ingestion.

    Every outcome is a Document row: over the size limit -> failed (the bytes are not kept);
    same bytes as a live document -> duplicate pointing to it; otherwise the original is stored
    under its content hash and the document is queued.
    """
    name = PurePath(name or "unnamed").name[:255] or "unnamed"
    user = uploaded_by if uploaded_by is not None and uploaded_by.is_authenticated else None
    with transaction.atomic():
        document = _upload_row(
            file=file, name=name, collection=collection, user=user, size=size, enqueue=enqueue
        )
        _audit(document, "document.upload", actor=user)
    return document


def _upload_row(
    *, file: IO[bytes], name: str, collection: Collection, user, size: int | None, enqueue: bool
) -> Document:
    limit = settings.MAX_UPLOAD_MB * 1024 * 1024
    size = size if size is not None else _size_of(file)
    base = {"name": name, "collection": collection, "uploaded_by": user, "size": size}
    if size > limit:
        return Document.objects.create(
            **base,
            status=Document.Status.FAILED,
            progress=100,
            stage="rejected",
            error=f"file is {size / 1024 / 1024:.1f} MB, over the {settings.MAX_UPLOAD_MB} MB limit "
            "(MAX_UPLOAD_MB)",
            finished_at=timezone.now(),
        )

    sha256 = _sha256_of(file)
    original = (
        Document.objects.filter(sha256=sha256)
        .exclude(status__in=(Document.Status.FAILED, Document.Status.DUPLICATE))
        .order_by("id")
        .first()
    )
    if original is not None:
        return Document.objects.create(
            **base,
            sha256=sha256,
            media_type=original.media_type,
            status=Document.Status.DUPLICATE,
            progress=100,
            stage=f"same content as document #{original.id}",
            duplicate_of=original,
            page_count=original.page_count,
            chunk_count=original.chunk_count,
            finished_at=timezone.now(),
        )

    stored_name = _store_original(file, sha256=sha256, name=name)
    document = Document.objects.create(
        **base, sha256=sha256, file=stored_name, status=Document.Status.QUEUED, stage="queued"
    )
    if enqueue:
        document_enqueue(document=document)
    return document


def _audit(document: Document, kind: str, *, actor) -> None:
    audit_append(
        kind=kind,
        actor=actor,
        subject=f"document:{document.pk}",
        payload={
            "document_id": document.pk,
            "name": document.name,
            "collection": document.collection.slug,
            "status": document.status,
            "sha256": document.sha256,
            "size": document.size,
            "error": document.error or None,
            "duplicate_of": document.duplicate_of_id,
        },
    )


def document_enqueue(*, document: Document) -> None:
    """Queue the ingestion task once the row is committed (a worker never sees a missing row)."""
    from .tasks import document_ingest_task

    document_id = document.id

    def send() -> None:
        try:
            document_ingest_task.delay(document_id)
        except Exception as exc:  # broker down: say so on the document instead of losing it
            logger.exception("could not queue document %s", document_id)
            document_fail(
                document_id=document_id,
                reason=f"could not reach the task queue ({exc}); press Re-index to try again",
            )

    transaction.on_commit(send)


def document_reindex(
    *, document: Document, by: AbstractBaseUser | None = None, enqueue: bool = True
) -> Document:
    if document.status == Document.Status.DUPLICATE:
        raise DocumentError("this is a duplicate: re-index the original document instead")
    if not document.file:
        raise DocumentError(
            "the original file was not kept (it was rejected), so it cannot be re-indexed"
        )
    if document.status in Document.IN_PROGRESS:
        raise DocumentError("the document is being processed right now")
    with transaction.atomic():
        Document.objects.filter(pk=document.pk).update(
            status=Document.Status.QUEUED,
            stage="queued for re-indexing",
            progress=0,
            error="",
            warnings=[],
            attempts=0,
            started_at=None,
            finished_at=None,
            updated_at=timezone.now(),
        )
        if enqueue:
            document_enqueue(document=document)
        document.refresh_from_db()
        _audit(document, "document.reindex", actor=by)
        _document_changed(document.pk)
    return document


def documents_reindex(
    *,
    collection: Collection | None = None,
    outdated_only: bool = False,
    by: AbstractBaseUser | None = None,
    enqueue: bool = True,
) -> list[Document]:
    """Re-index every finished document that has its original (of ``collection``, or all): what
    a new parser or chunker does to documents already indexed. ``outdated_only``: only the ready
    ones indexed by another chunker version. Duplicates follow their original; documents being
    processed are left alone. Returns the documents queued, oldest first; ``enqueue=False``
    leaves them queued for the caller to process (``manage.py ingest --reindex --sync``)."""
    documents = Document.objects.filter(
        status__in=(Document.Status.READY, Document.Status.FAILED)
    ).exclude(file="")
    if collection is not None:
        documents = documents.filter(collection=collection)
    if outdated_only:
        documents = documents.filter(status=Document.Status.READY).exclude(
            chunker_version=CHUNKER_VERSION
        )
    return [document_reindex(document=d, by=by, enqueue=enqueue) for d in documents.order_by("id")]


def document_delete(*, document: Document, by: AbstractBaseUser | None = None) -> None:
    """Remove the document's points, then its row, then its stored original if nothing else uses it.

    The store goes first: if it is unreachable, nothing is deleted and the error says why.
    """
    if document.status != Document.Status.DUPLICATE:
        get_store().delete_document(str(document.pk))
    file_name = document.file.name if document.file else ""
    with transaction.atomic():
        _audit(document, "document.delete", actor=by)
        _document_changed(document.pk)
        document.delete()
    if file_name and not Document.objects.filter(file=file_name).exists():
        document.file.storage.delete(file_name)


def documents_resume() -> int:
    """Re-queue documents that a stopped process left unfinished. Returns how many."""
    resumed = 0
    for document in Document.objects.filter(status__in=Document.UNFINISHED).order_by("id"):
        Document.objects.filter(pk=document.pk).update(
            status=Document.Status.QUEUED, stage="resumed after restart", updated_at=timezone.now()
        )
        document_enqueue(document=document)
        resumed += 1
    return resumed


# ---------------------------------------------------------------------------------------------
# The pipeline
# ---------------------------------------------------------------------------------------------


def document_ingest(*, document_id: int) -> Document:
    """parse -> chunk -> embed -> index -> ready. Idempotent: point ids come from the content hash,
    so a re-run overwrites the same points and removes any left over from a longer old version."""
    document = Document.objects.select_related("collection").get(pk=document_id)
    if document.is_finished:
        return document  # a redelivered or duplicate message: the work is done
    if (crashed := _attempt_start(document_id)) >= settings.INGEST_MAX_ATTEMPTS:
        document_fail(
            document_id=document_id,
            reason=f"stopped after {crashed} attempts (the worker died while processing it)",
        )
        document.refresh_from_db()
        return document
    progress = _Progress(document_id)
    progress.set(Document.Status.PARSING, 1, "reading the file", started=True)

    with document.file.open("rb") as handle:
        data = handle.read()
    parsed = parsing.parse(
        data,
        document.name,
        limits=parsing.ParseLimits(
            zip_max_bytes=settings.PARSE_ZIP_MAX_MB * 1024 * 1024,
            zip_max_ratio=settings.PARSE_ZIP_MAX_RATIO,
            zip_max_members=settings.PARSE_ZIP_MAX_MEMBERS,
            pdf_max_pages=settings.PARSE_PDF_MAX_PAGES,
        ),
        progress=lambda done, total: progress.set(
            Document.Status.PARSING, 1 + 19 * done // total, f"reading page {done} of {total}"
        ),
    )
    del data

    progress.set(
        Document.Status.CHUNKING, 20, "splitting into passages", media_type=parsed.media_type
    )
    chunks = get_chunker().split(parsed, doc_id=str(document.pk), doc_sha256=document.sha256)
    if not chunks:
        raise parsing.ParseError("no text to index once the document was split into passages")

    embedder = get_embedder()
    vectors = []
    for start in range(0, len(chunks), EMBED_BATCH):
        batch = chunks[start : start + EMBED_BATCH]
        vectors.extend(embedder.embed([chunk.embedding_text for chunk in batch]))
        done = start + len(batch)
        progress.set(
            Document.Status.EMBEDDING,
            25 + 65 * done // len(chunks),
            f"embedded {done} of {len(chunks)} passages",
        )

    store = get_store()
    encoder = get_lexical_encoder()
    payload = {"collection": document.collection.slug, "document_name": document.name}
    screenings = {chunk.id: injection.screen(chunk.text) for chunk in chunks}
    flagged = {cid: s for cid, s in screenings.items() if s.flagged}
    for start in range(0, len(chunks), UPSERT_BATCH):
        batch = chunks[start : start + UPSERT_BATCH]
        store.upsert(
            [
                IndexedChunk(
                    chunk=chunk,
                    dense=tuple(vectors[start + offset].tolist()),
                    sparse=encoder.encode_document(chunk.embedding_text),
                    payload={**payload, "injection": flagged[chunk.id].as_payload()}
                    if chunk.id in flagged
                    else payload,
                )
                for offset, chunk in enumerate(batch)
            ]
        )
        done = start + len(batch)
        progress.set(
            Document.Status.INDEXING,
            90 + 9 * done // len(chunks),
            f"indexed {done} of {len(chunks)} passages",
        )
    # passages a longer earlier version of this document left behind (other chunk settings)
    store.delete_trailing(lambda index: chunk_id_for(document.sha256, index), len(chunks))

    updated = Document.objects.filter(pk=document_id).update(
        status=Document.Status.READY,
        progress=100,
        stage="ready",
        media_type=parsed.media_type,
        page_count=parsed.page_count,
        chunk_count=len(chunks),
        chunker_version=CHUNKER_VERSION,
        warnings=list(parsed.warnings) + _injection_warnings(flagged),
        error="",
        finished_at=timezone.now(),
        updated_at=timezone.now(),
    )
    if not updated:  # deleted while we worked: take back the points we just wrote
        store.delete_document(str(document_id))
        raise DocumentGone(document_id)
    document.refresh_from_db()
    return document


def _injection_warnings(flagged: dict) -> list[str]:
    if not flagged:
        return []
    reasons = sorted({reason for s in flagged.values() for reason in s.reasons})
    return [
        f"{len(flagged)} passage(s) contain text that looks like instructions to the model "
        f"(possible prompt injection: {', '.join(reasons)}); they are fenced with a warning "
        "in every prompt"
    ]


def document_fail(*, document_id: int, reason: str) -> None:
    Document.objects.filter(pk=document_id).update(
        status=Document.Status.FAILED,
        stage="failed",
        progress=100,
        error=reason[:2000],
        finished_at=timezone.now(),
        updated_at=timezone.now(),
    )


def document_retry_later(*, document_id: int, reason: str, countdown: float, attempt: int) -> None:
    Document.objects.filter(pk=document_id).update(
        status=Document.Status.QUEUED,
        stage=f"retrying in {countdown:.0f}s (attempt {attempt}): {reason}"[:200],
        # this start ended, in a known way: it is not one the worker died in
        attempts=Greatest(F("attempts") - 1, 0),
        updated_at=timezone.now(),
    )


def _attempt_start(document_id: int) -> int:
    """Count a start of processing, committed before any work, and return how many earlier
    starts never ended: ``attempts`` goes up at every start and down when a start ends in a
    transient failure (a retry), while ready and failed are final. So a document already at
    INGEST_MAX_ATTEMPTS here took the worker down with it that many times."""
    with transaction.atomic():
        document = Document.objects.select_for_update().get(pk=document_id)
        earlier = document.attempts
        Document.objects.filter(pk=document_id).update(attempts=F("attempts") + 1)
    return earlier


@dataclass
class _Progress:
    """Writes status, stage and percent at most every ``interval`` seconds.

    A stage that ends sooner is never seen by the progress bar anyway, so a small document costs
    one progress write instead of one per stage; fields given in between ride along with the
    next write. The final state is written by the caller, not here."""

    document_id: int
    interval: float = 0.4
    _last_write: float = float("-inf")
    _pending: dict = field(default_factory=dict)

    def set(
        self, status: str, percent: int, stage: str, *, started: bool = False, **fields
    ) -> None:
        now = time.monotonic()
        self._pending.update(fields)
        if not started and now - self._last_write < self.interval:
            return
        values = {
            "status": status,
            "progress": min(int(percent), 99),
            "stage": stage[:200],
            **self._pending,
        }
        values["updated_at"] = timezone.now()
        if started:
            values["started_at"] = values["updated_at"]
        if not Document.objects.filter(pk=self.document_id).update(**values):
            raise DocumentGone(self.document_id)
        self._last_write = now
        self._pending = {}


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------


def _size_of(file: IO[bytes]) -> int:
    position = file.tell()
    file.seek(0, 2)
    size = file.tell()
    file.seek(position)
    return size


def _sha256_of(file: IO[bytes]) -> str:
    digest = hashlib.sha256()
    file.seek(0)
    for block in iter(lambda: file.read(1024 * 1024), b""):
        digest.update(block)
    file.seek(0)
    return digest.hexdigest()


def _store_original(file: IO[bytes], *, sha256: str, name: str) -> str:
    """Content-addressed: the same bytes are stored once, whatever they were called."""
    from django.core.files import File
    from django.core.files.storage import default_storage as storage

    suffix = PurePath(name).suffix.lower()[:10]
    stored = f"{sha256[:2]}/{sha256}{suffix}"
    if not storage.exists(stored):
        file.seek(0)
        stored = storage.save(stored, File(file, name=stored))
    return stored
