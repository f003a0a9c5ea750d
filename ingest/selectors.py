"""Reads for documents and collections."""

from __future__ import annotations

import time

from django.db.models import QuerySet

from accounts import roles
from core.components import get_retriever
from rag.chunking import CHUNKER_VERSION

from .models import Collection, Document


def document_list(
    *, collection: str | None = None, user=None, limit: int = 500
) -> QuerySet[Document]:
    documents = Document.objects.select_related("collection", "duplicate_of")
    if collection:
        documents = documents.filter(collection__slug=collection)
    readable = readable_collection_slugs(user) if user is not None else None
    if readable is not None:
        documents = documents.filter(collection__slug__in=readable)
    return documents[:limit]


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


def document_json(document: Document) -> dict:
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
