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
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.db.models.functions import Greatest
from django.utils import timezone
from django.utils.text import slugify

from accounts import roles
from audit.services import audit_append
from core.components import get_chunker, get_embedder, get_lexical_encoder, get_store
from rag import injection, parsing
from rag.chunking import CHUNKER_VERSION, chunk_id_for
from rag.store import StoreLocked, StoreUnavailable
from rag.types import IndexedChunk

from .models import Collection, Document, collection_chunk_key
from .selectors import documents_reindexable

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


class DocumentTimeLimit(Exception):
    """The document took longer than INGEST_SOFT_TIME_LIMIT; raised at the next checkpoint."""


def time_limit_reason() -> str:
    return (
        f"ingestion took longer than {settings.INGEST_SOFT_TIME_LIMIT} s "
        "(INGEST_SOFT_TIME_LIMIT); split the document or raise the limit"
    )


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
    same bytes as a live document of the same collection -> duplicate pointing to it; otherwise
    the original is stored under its content hash (shared by every collection) and the document
    is queued.
    """
    name = clean_upload_name(name)
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
    _content_lock(sha256)
    # Deduplication is per collection: the same bytes in another collection are indexed there
    # too (under that collection's access), sharing only the stored file.
    original = _live_original(collection_id=collection.pk, sha256=sha256)
    if original is None:
        try:
            with transaction.atomic():  # a savepoint: losing the race below is not an error
                document = Document.objects.create(
                    **base,
                    sha256=sha256,
                    file=_stored_name(sha256=sha256, name=name),
                    chunk_key=collection_chunk_key(sha256=sha256, collection_id=collection.pk),
                    status=Document.Status.QUEUED,
                    stage="queued",
                )
        except IntegrityError:
            # Another upload of the same bytes into this collection committed between our look
            # and our insert (the one-live-original constraint): this one is its duplicate.
            original = _live_original(collection_id=collection.pk, sha256=sha256)
            if original is None:
                raise
        else:
            # The row goes first, then the bytes: a delete of the last other reference to this
            # file cannot slip in between and remove it from under the new row.
            stored = _store_original(file, name=document.file.name)
            if stored != document.file.name:
                Document.objects.filter(pk=document.pk).update(file=stored)
                document.file.name = stored
            if enqueue:
                document_enqueue(document=document)
            return document
    return Document.objects.create(
        **base, sha256=sha256, **_duplicate_fields(original), finished_at=timezone.now()
    )


def _live_original(*, collection_id: int, sha256: str, exclude_pk: int | None = None):
    """The document of this collection that holds these bytes and is (being) indexed, if any."""
    originals = Document.objects.filter(collection_id=collection_id, sha256=sha256).exclude(
        status__in=(Document.Status.FAILED, Document.Status.DUPLICATE)
    )
    if exclude_pk is not None:
        originals = originals.exclude(pk=exclude_pk)
    return originals.order_by("id").first()


def _duplicate_fields(original: Document) -> dict:
    """What a document records when it has the same bytes as ``original`` (same collection)."""
    return {
        "status": Document.Status.DUPLICATE,
        "duplicate_of": original,
        "stage": f"same content as document #{original.pk}",
        "progress": 100,
        "error": "",
        "media_type": original.media_type,
        "page_count": original.page_count,
        "chunk_count": original.chunk_count,
    }


def _content_lock(sha256: str) -> None:
    """Serialise, until the transaction ends, what depends on who else holds the same bytes:
    whether an upload is a duplicate, and whether a delete may remove the shared stored file.
    PostgreSQL only: SQLite (the embedded default) already has one writer at a time, and the
    one-live-original constraint backs the duplicate decision on every database."""
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        # an advisory lock keyed by the first 60 bits of the hash (fits a signed bigint)
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [int(sha256[:15], 16)])


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
        _content_lock(document.sha256)
        # A failed document whose bytes were uploaded again into its collection meanwhile: the
        # collection has them indexed already, so this one becomes a duplicate of that one.
        original = _live_original(
            collection_id=document.collection_id, sha256=document.sha256, exclude_pk=document.pk
        )
        if original is None:
            try:
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
            except IntegrityError:  # that upload committed between our look and our update
                original = _live_original(
                    collection_id=document.collection_id,
                    sha256=document.sha256,
                    exclude_pk=document.pk,
                )
                if original is None:
                    raise
            else:
                if enqueue:
                    document_enqueue(document=document)
        if original is not None:
            Document.objects.filter(pk=document.pk).update(
                **_duplicate_fields(original), finished_at=timezone.now(), updated_at=timezone.now()
            )
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
    documents = documents_reindexable(collection=collection, outdated_only=outdated_only)
    return [document_reindex(document=d, by=by, enqueue=enqueue) for d in documents]


def document_delete(*, document: Document, by: AbstractBaseUser | None = None) -> None:
    """Remove the document's points, then its row, then its stored original if nothing else uses it.

    The store goes first: if it is unreachable, nothing is deleted and the error says why.
    Its duplicates are not orphaned: they follow the collection's other live copy of the bytes
    if there is one, else the oldest is promoted to original (re-queued, so it is indexed in
    the deleted one's place) and the rest point to it.
    """
    if document.status != Document.Status.DUPLICATE:
        get_store().delete_document(str(document.pk))
    file_name = document.file.name if document.file else ""
    storage = document.file.storage
    with transaction.atomic():
        if document.sha256:
            _content_lock(document.sha256)
        _audit(document, "document.delete", actor=by)
        _document_changed(document.pk)
        duplicates = list(Document.objects.filter(duplicate_of=document).order_by("id"))
        document.delete()
        if duplicates:
            _duplicates_rehome(duplicates, deleted=document, file_name=file_name, by=by)
        # Under the content lock and before commit: an upload of the same bytes (into any
        # collection) either is already a reference here or waits and stores the file anew.
        if file_name and not Document.objects.filter(file=file_name).exists():
            storage.delete(file_name)


def _duplicates_rehome(
    duplicates: list[Document], *, deleted: Document, file_name: str, by
) -> None:
    heir = _live_original(collection_id=deleted.collection_id, sha256=deleted.sha256)
    if heir is None:
        # Re-queued rather than handed the deleted one's points: the points carry the document
        # id (deletes, citations, sources go by it), and ingestion is the one path that writes
        # them; the same bytes and collection give the same point ids.
        heir, *duplicates = duplicates
        Document.objects.filter(pk=heir.pk).update(
            status=Document.Status.QUEUED,
            duplicate_of=None,
            file=heir.file.name or file_name,
            chunk_key=collection_chunk_key(sha256=heir.sha256, collection_id=heir.collection_id),
            stage=f"queued: indexed in place of deleted document #{deleted.pk}",
            progress=0,
            error="",
            warnings=[],
            attempts=0,
            page_count=None,
            chunk_count=None,
            chunker_version="",
            started_at=None,
            finished_at=None,
            updated_at=timezone.now(),
        )
        heir.refresh_from_db()
        _audit(heir, "document.promote", actor=by)
        document_enqueue(document=heir)
    Document.objects.filter(pk__in=[d.pk for d in duplicates]).update(
        duplicate_of=heir, stage=f"same content as document #{heir.pk}", updated_at=timezone.now()
    )


BULK_ACTIONS = ("reindex", "delete")
BULK_MAX = 500


@dataclass(frozen=True)
class BulkOutcome:
    """What a bulk action did to one document: ``status`` after it ("deleted" once gone), or
    ``error`` saying why it was not done (``code``: the HTTP status its single request gets)."""

    id: int
    ok: bool
    status: str | None = None
    error: str | None = None
    code: int = 200


def documents_bulk_apply(
    *, action: str, ids: list[int], by: AbstractBaseUser | None = None
) -> list[BulkOutcome]:
    """Re-index or delete each of ``ids`` through the single-document service (each audited
    and committed on its own, as if asked one by one), and say per id what happened: one that
    cannot be done (a duplicate to re-index, the store down) does not stop the others.

    Duplicates are deleted before originals, so deleting both never promotes a duplicate that
    is about to go (re-queued, then deleted mid-way). A document already queued is not queued
    twice."""
    if action not in BULK_ACTIONS:
        raise DocumentError(f"unknown action {action!r}: one of {', '.join(BULK_ACTIONS)}")
    if len(ids) > BULK_MAX:
        raise DocumentError(f"at most {BULK_MAX} documents at a time, not {len(ids)}")
    wanted = list(dict.fromkeys(ids))
    statuses = dict(Document.objects.filter(pk__in=wanted).values_list("pk", "status"))
    if action == "delete":
        wanted.sort(key=lambda pk: statuses.get(pk) != Document.Status.DUPLICATE)
    outcomes = {}
    for pk in wanted:
        # read afresh: an earlier one of the batch may have changed it (a duplicate re-homed)
        document = Document.objects.select_related("collection").filter(pk=pk).first()
        if document is None:
            outcomes[pk] = BulkOutcome(id=pk, ok=False, error="no such document", code=404)
            continue
        try:
            if action == "delete":
                document_delete(document=document, by=by)
                outcomes[pk] = BulkOutcome(id=pk, ok=True, status="deleted")
            elif document.status == Document.Status.QUEUED:
                outcomes[pk] = BulkOutcome(id=pk, ok=False, error="already queued", code=409)
            else:
                document = document_reindex(document=document, by=by)
                outcomes[pk] = BulkOutcome(id=pk, ok=True, status=document.status)
        except DocumentError as exc:
            outcomes[pk] = BulkOutcome(id=pk, ok=False, error=str(exc), code=409)
        except (StoreUnavailable, StoreLocked) as exc:
            outcomes[pk] = BulkOutcome(
                id=pk, ok=False, error=f"the vector store is unavailable ({exc})", code=503
            )
    return [outcomes[pk] for pk in dict.fromkeys(ids)]


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
    so a re-run overwrites the same points and removes any left over from a longer old version.

    Every progress report (each PDF page, each embedding and upsert batch) is also a checkpoint
    of INGEST_SOFT_TIME_LIMIT: past it, DocumentTimeLimit. The embedded worker is a thread,
    where Celery's time limits (signals of the prefork pool) cannot reach, and ``--sync`` has no
    pool at all; so the pipeline keeps its own clock, the same in every way it runs."""
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
    progress = _Progress(document_id, deadline=time.monotonic() + settings.INGEST_SOFT_TIME_LIMIT)
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
            pdf_max_stream_bytes=settings.PARSE_PDF_MAX_STREAM_MB * 1024 * 1024,
            html_max_bytes=settings.PARSE_HTML_MAX_MB * 1024 * 1024,
            html_max_depth=settings.PARSE_HTML_MAX_DEPTH,
            html_max_elements=settings.PARSE_HTML_MAX_ELEMENTS,
        ),
        progress=lambda done, total: progress.set(
            Document.Status.PARSING, 1 + 19 * done // total, f"reading page {done} of {total}"
        ),
    )
    del data

    progress.set(
        Document.Status.CHUNKING, 20, "splitting into passages", media_type=parsed.media_type
    )
    key = document.chunk_key or document.sha256  # blank: indexed before keys were per collection
    chunks = get_chunker().split(parsed, doc_id=str(document.pk), doc_sha256=key)
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
    store.delete_trailing(lambda index: chunk_id_for(key, index), len(chunks))

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
    store.optimize()  # the embedded store's HNSW build, here in the worker, never in a request
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


def document_fail(*, document_id: int, reason: str, remove_points: bool = False) -> None:
    """Mark the document failed with ``reason``. ``remove_points``: it was stopped mid-way
    (a time limit), so the passages it had indexed are taken back: a failed document is never
    half searchable."""
    if remove_points:
        try:
            get_store().delete_document(str(document_id))
        except Exception as exc:  # the store is down: the failure still gets recorded
            logger.warning("document %s: its points could not be removed: %s", document_id, exc)
            reason += f" (its passages could not be removed from the index: {exc})"
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
    next write. The final state is written by the caller, not here.

    Each call is also the pipeline's time-limit checkpoint: at or past ``deadline`` (a
    ``time.monotonic()`` value) it raises DocumentTimeLimit instead of writing."""

    document_id: int
    deadline: float = float("inf")
    interval: float = 0.4
    _last_write: float = float("-inf")
    _pending: dict = field(default_factory=dict)

    def set(
        self, status: str, percent: int, stage: str, *, started: bool = False, **fields
    ) -> None:
        now = time.monotonic()
        if now >= self.deadline:
            raise DocumentTimeLimit(self.document_id)
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


NAME_MAX = Document._meta.get_field("name").max_length


def clean_upload_name(name: str | None) -> str:
    """The file name as a user would recognise it, safe to store and show.

    The last path part only (either slash), no control characters (a NUL would break the
    database insert), and cut to the column's length in the stem, so a long name keeps its
    extension: the type is still shown and still detected.
    """
    name = "".join(ch for ch in (name or "") if ch.isprintable() or ch == " ")
    name = name.replace("\\", "/").rsplit("/", 1)[-1].strip()
    if name in {"", ".", ".."}:
        return "unnamed"
    if len(name) <= NAME_MAX:
        return name
    suffix = PurePath(name).suffix
    if not 1 < len(suffix) <= 16:
        return name[:NAME_MAX]
    return name[: NAME_MAX - len(suffix)] + suffix  # as Django cuts an uploaded file's name


def _stored_name(*, sha256: str, name: str) -> str:
    """Content-addressed: the same bytes are stored once, whatever they were called."""
    return f"{sha256[:2]}/{sha256}{PurePath(name).suffix.lower()[:10]}"


def _store_original(file: IO[bytes], *, name: str) -> str:
    """Store the bytes under ``name`` unless they are there already; returns the name used."""
    from django.core.files import File
    from django.core.files.storage import default_storage as storage

    if storage.exists(name):
        return name
    file.seek(0)
    return storage.save(name, File(file, name=name))
