"""Reads for documents and collections."""

from __future__ import annotations

from django.db.models import QuerySet

from .models import Collection, Document


def document_list(*, collection: str | None = None, limit: int = 500) -> QuerySet[Document]:
    documents = Document.objects.select_related("collection")
    if collection:
        documents = documents.filter(collection__slug=collection)
    return documents[:limit]


def collection_list() -> QuerySet[Collection]:
    return Collection.objects.all()


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
        "created_at": document.created_at.isoformat(),
        "updated_at": document.updated_at.isoformat(),
    }
