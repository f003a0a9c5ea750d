"""Reads for documents and collections."""

from __future__ import annotations

from django.db.models import QuerySet

from accounts import roles
from rag.chunking import CHUNKER_VERSION

from .models import Collection, Document


def document_list(
    *, collection: str | None = None, user=None, limit: int = 500
) -> QuerySet[Document]:
    documents = Document.objects.select_related("collection")
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


def document_readable(*, user, document: Document) -> bool:
    readable = readable_collection_slugs(user)
    return readable is None or document.collection.slug in readable


def document_names(ids: set[str]) -> dict[str, str]:
    numeric = [int(i) for i in ids if i.isdigit()]
    return {
        str(pk): name
        for pk, name in Document.objects.filter(pk__in=numeric).values_list("pk", "name")
    }


def document_json(document: Document) -> dict:
    return {
        "id": document.pk,
        "name": document.name,
        "collection": document.collection.slug,
        "status": document.status,
        "stage": document.stage,
        "progress": document.progress,
        "pages": document.page_count,
        "chunks": document.chunk_count,
        "error": document.error or None,
        "warnings": document.warnings,
        "media_type": document.media_type,
        "size": document.size,
        "sha256": document.sha256,
        "duplicate_of": document.duplicate_of_id,
        "attempts": document.attempts,
        # indexed by an older parser/chunker: a re-index brings it up to date
        "outdated": document.status == Document.Status.READY
        and document.chunker_version != CHUNKER_VERSION,
        "created_at": document.created_at.isoformat(),
        "updated_at": document.updated_at.isoformat(),
    }
