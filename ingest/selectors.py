"""Reads for documents and collections."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from django.db.models import Count, Q, QuerySet

from accounts import roles
from core.components import get_retriever, get_store
from rag.chunking import CHUNKER_VERSION
from rag.store import StoreLocked, StoreUnavailable

from .models import Collection, Document


def document_list(
    *,
    collection: str | None = None,
    user=None,
    limit: int = 500,
    status: str | None = None,
    name: str | None = None,
) -> QuerySet[Document]:
    return documents_filtered(collection=collection, user=user, status=status, name=name)[:limit]


def documents_filtered(
    *,
    collection: str | None = None,
    user=None,
    status: str | None = None,
    name: str | None = None,
) -> QuerySet[Document]:
    """The newest documents first (of ``collection``, with a ``status`` of STATUS_FILTERS,
    whose name contains ``name``; only those ``user`` may read), with what document_json
    reads joined in: one query, however many rows."""
    documents = Document.objects.select_related("collection", "duplicate_of", "uploaded_by")
    if collection:
        documents = documents.filter(collection__slug=collection)
    if status:
        documents = documents.filter(status__in=STATUS_FILTERS.get(status, (status,)))
    if name:
        documents = documents.filter(name__icontains=name)
    readable = readable_collection_slugs(user) if user is not None else None
    if readable is not None:
        documents = documents.filter(collection__slug__in=readable)
    return documents


# What the status filter offers: each status, and "processing" for any stage of the pipeline.
STATUS_FILTERS = {
    Document.Status.QUEUED.value: (Document.Status.QUEUED,),
    "processing": Document.IN_PROGRESS,
    Document.Status.READY.value: (Document.Status.READY,),
    Document.Status.FAILED.value: (Document.Status.FAILED,),
    Document.Status.DUPLICATE.value: (Document.Status.DUPLICATE,),
}
PAGE_SIZE = 50
PAGE_SIZE_MAX = 200


@dataclass(frozen=True)
class QueuePlace:
    """Where a queued document stands: ``position`` 1 is next; ``seconds`` until it is
    processed, estimated from measured throughput (None: nothing measured yet)."""

    position: int
    seconds: float | None


@dataclass(frozen=True)
class DocumentPage:
    documents: list[Document]
    total: int
    page: int
    page_size: int
    queue: dict[int, QueuePlace]

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.page_size))


def document_page(
    *,
    user=None,
    collection: str | None = None,
    status: str | None = None,
    name: str | None = None,
    page: int = 1,
    page_size: int = PAGE_SIZE,
) -> DocumentPage:
    """One page of document_list, with the total it is a page of and the queue places of its
    queued documents: the rows in one query and the total in another (none when the first
    page is not full), so a page of ten thousand documents costs the queries a page of ten
    does; the queue adds two when the page shows queued documents.

    Not a window count on the rows' query: that sorts every matching row with all its columns
    (measured on SQLite at 10,000 documents: 109 ms against 28 + 0.3 ms for the two)."""
    page, page_size = max(1, page), min(max(1, page_size), PAGE_SIZE_MAX)
    filtered = documents_filtered(collection=collection, user=user, status=status, name=name)
    start = (page - 1) * page_size
    rows = list(filtered[start : start + page_size])
    total = len(rows) if page == 1 and len(rows) < page_size else filtered.count()
    queued = [d.pk for d in rows if d.status == Document.Status.QUEUED]
    return DocumentPage(
        documents=rows,
        total=total,
        page=page,
        page_size=page_size,
        queue=queue_places(queued) if queued else {},
    )


# How many recently finished documents the throughput is measured over.
THROUGHPUT_WINDOW = 50


def ingest_throughput() -> float | None:
    """Bytes per second one worker processes, measured over the last THROUGHPUT_WINDOW
    documents indexed (from starting to read to ready); None before any was.

    A ratio of sums, not a median of per-document rates: a small file's fixed cost (loading,
    the index build) dominates its own rate, and a few of them would make every large file
    look hours long; summed, each document weighs what it cost."""
    finished = (
        Document.objects.filter(
            status=Document.Status.READY,
            started_at__isnull=False,
            finished_at__isnull=False,
            size__gt=0,
        )
        .order_by("-finished_at")
        .values_list("size", "started_at", "finished_at")[:THROUGHPUT_WINDOW]
    )
    size = seconds = 0.0
    for nbytes, started, ended in finished:
        size += nbytes
        seconds += max((ended - started).total_seconds(), 0.0)
    return size / seconds if seconds > 0 else None


def queue_places(document_ids: list[int]) -> dict[int, QueuePlace]:
    """The queue places of those of ``document_ids`` that are queued.

    Workers take documents in the order they were queued (an upload, a re-index, a resume or
    a retry each set ``updated_at``; a queued row changes no other way). Each waits for what
    is ahead of it: the rest of the documents being processed and the queued ones before it,
    shared among as many workers as are busy now (at least one)."""
    unfinished = (
        Document.objects.filter(status__in=Document.UNFINISHED)
        .order_by("updated_at", "id")
        .values_list("pk", "status", "size", "progress")
    )
    rate = ingest_throughput()
    wanted = set(document_ids)
    ahead, workers, places, queued = 0.0, 0, {}, []
    for pk, status, size, progress in unfinished:
        if status == Document.Status.QUEUED:
            queued.append((pk, size))
        else:
            workers += 1
            ahead += size * (100 - progress) / 100
    for position, (pk, size) in enumerate(queued, 1):
        ahead += size
        if pk in wanted:
            seconds = ahead / rate / max(workers, 1) if rate else None
            places[pk] = QueuePlace(position=position, seconds=seconds)
    return places


def collection_list(*, user=None) -> QuerySet[Collection]:
    """Every collection, or only those ``user`` may read."""
    collections = Collection.objects.all()
    readable = readable_collection_slugs(user) if user is not None else None
    return collections if readable is None else collections.filter(slug__in=readable)


def readable_collection_slugs(user) -> list[str] | None:
    """The collections ``user`` may read: None means all of them (admins, auditors).

    This one rule guards retrieval (passed into the Qdrant query as a payload filter), the
    source panel, original files and the API.
    """
    if roles.can_manage(user) or roles.can_audit(user):
        return None
    if not user.is_authenticated:
        return []
    return sorted(
        Collection.objects.filter(groups__user=user).values_list("slug", flat=True).distinct()
    )


def searchable_collections(user, requested: list[str] | None) -> list[str] | None:
    """What a search by ``user`` covers: the requested collections within those they may read
    (None: all). A collection they may not read is silently left out, as if it were empty."""
    readable = readable_collection_slugs(user)
    wanted = requested or readable
    if readable is not None and wanted is not None:
        wanted = [slug for slug in wanted if slug in readable]
    return wanted


def document_readable(*, user, document: Document) -> bool:
    readable = readable_collection_slugs(user)
    return readable is None or document.collection.slug in readable


def documents_reindexable(
    *, collection: Collection | None = None, outdated_only: bool = False
) -> QuerySet[Document]:
    """The finished documents that have their original (of ``collection``, or all), oldest
    first; ``outdated_only``: the ready ones indexed by another chunker version."""
    documents = Document.objects.filter(
        status__in=(Document.Status.READY, Document.Status.FAILED)
    ).exclude(file="")
    if collection is not None:
        documents = documents.filter(collection=collection)
    if outdated_only:
        documents = documents.filter(status=Document.Status.READY).exclude(
            chunker_version=CHUNKER_VERSION
        )
    return documents.order_by("id")


def document_names(ids: set[str]) -> dict[str, str]:
    numeric = [int(i) for i in ids if i.isdigit()]
    return {
        str(pk): name
        for pk, name in Document.objects.filter(pk__in=numeric).values_list("pk", "name")
    }


def duplicate_of_shown(document: Document) -> int | None:
    """The id of the original a duplicate points to, only when it is in the duplicate's own
    collection (whoever may read the duplicate may read it): never another collection's id."""
    original = document.duplicate_of if document.duplicate_of_id else None
    if original is None or original.collection_id != document.collection_id:
        return None
    return original.pk


def document_json(document: Document, *, queue: QueuePlace | None = None) -> dict:
    """A document as the API shows it; ``queue``: its place in the queue (document_page)."""
    duplicate_of = duplicate_of_shown(document)
    # its stage names the original ("same content as document #N"): not when that is hidden
    hides_original = document.status == Document.Status.DUPLICATE
    return {
        "id": document.pk,
        "name": document.name,
        "collection": document.collection.slug,
        "status": document.status,
        "stage": document.stage if duplicate_of or not hides_original else "duplicate",
        "progress": document.progress,
        "pages": document.page_count,
        "chunks": document.chunk_count,
        "error": document.error or None,
        "warnings": document.warnings,
        "media_type": document.media_type,
        "size": document.size,
        "sha256": document.sha256,
        "duplicate_of": duplicate_of,
        "attempts": document.attempts,
        # indexed by an older parser/chunker: a re-index brings it up to date
        "outdated": document.status == Document.Status.READY
        and document.chunker_version != CHUNKER_VERSION,
        "created_at": document.created_at.isoformat(),
        "updated_at": document.updated_at.isoformat(),
        "uploaded_by": document.uploaded_by.get_username() if document.uploaded_by_id else None,
        "queue_position": queue.position if queue else None,
        "estimate_seconds": round(queue.seconds) if queue and queue.seconds is not None else None,
    }


def passages_search(*, query: str, k: int, collections: list[str] | None) -> dict:
    """The passages found for ``query`` in ``collections`` (None: all), timed: the JSON of
    `manage.py search --json` and `POST /api/v1/search`, {"results": [...], "latency_ms"}."""
    started = time.perf_counter()
    hits = get_retriever().search(query, k=k, collections=collections)
    latency_ms = round((time.perf_counter() - started) * 1000, 1)
    return {
        "results": [search_result_json(rank, hit) for rank, hit in enumerate(hits, 1)],
        "latency_ms": latency_ms,
    }


def search_result_json(rank: int, hit) -> dict:
    """One passage found, as `manage.py search` and `POST /api/v1/search` print it."""
    return {
        "rank": rank,
        "chunk_id": hit.chunk_id,
        "document_id": int(hit.document_id) if hit.document_id.isdigit() else hit.document_id,
        "document": hit.document_name,
        "page": hit.page,
        "score": round(hit.score, 6),
        "text": hit.text,
        "section": list(hit.heading_path),
        "kind": hit.kind,
    }


@dataclass(frozen=True)
class CollectionOverview:
    """A collection as the empty chat presents it: what may be asked about, and how much."""

    slug: str
    name: str
    ready: int


def collections_overview(*, user) -> list[CollectionOverview]:
    """The collections ``user`` may read with their count of ready documents: one query."""
    rows = (
        collection_list(user=user)
        .annotate(ready=Count("documents", filter=Q(documents__status=Document.Status.READY)))
        .order_by("name")
        .values_list("slug", "name", "ready")
    )
    return [CollectionOverview(slug=slug, name=name, ready=ready) for slug, name, ready in rows]


EXAMPLE_SAMPLE = 256  # passages looked at for example questions: the store's first page


def example_questions(*, collections: list[str], limit: int = 3) -> list[str]:
    """Up to ``limit`` questions a newcomer could ask, made from the section headings of indexed
    passages in ``collections``. The headings live with the passages in the vector store, not in
    the database, so this reads one page of it (bounded, whatever the corpus size); an
    unavailable store just means no examples."""
    wanted = set(collections)
    questions: list[str] = []
    seen: set[str] = set()
    try:
        first_page = next(get_store().export_points(batch=EXAMPLE_SAMPLE), [])
    except (StoreUnavailable, StoreLocked):
        return []
    for point in first_page:
        payload = point.payload
        headings = [h for h in payload.get("heading_path") or () if h.strip()]
        if payload.get("collection") not in wanted or payload.get("kind") == "navigation":
            continue
        topic = _topic(headings[-1]) if headings else ""
        if len(topic) < 4 or topic.casefold() in seen:
            continue
        seen.add(topic.casefold())
        document = payload.get("document_name") or "the documents"
        questions.append(f"What does {document} say about {topic}?")
        if len(questions) == limit:
            break
    return questions


def _topic(heading: str) -> str:
    """'3.1 Meal allowance' -> 'meal allowance' (an acronym such as 'VPN setup' keeps its case)."""
    topic = re.sub(r"^\s*\d+(?:\.\d+)*[.)]?\s+", "", heading).strip().rstrip(":.")
    if len(topic) > 1 and topic[0].isupper() and not topic[1].isupper():
        topic = topic[0].lower() + topic[1:]
    return topic[:80]
