"""JSON API for documents and passage search (a django-ninja router mounted by config/api.py
under /api/v1/): GET/POST documents, POST documents/bulk, POST documents/reindex-outdated,
GET/DELETE documents/<id>, POST documents/<id>/reindex; POST search.

Reading needs any role, changing needs the admin role ("only admins may change documents"),
searching the role that may ask. Errors are ``{"error": "..."}`` (config/api.py)."""

from __future__ import annotations

from typing import Annotated, Any

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from ninja import Field, File, Form, Query, Router, Schema, Status
from ninja.errors import HttpError
from ninja.files import UploadedFile
from pydantic import StrictInt, StrictStr, WithJsonSchema

from accounts import roles
from config.api import ERRORS, MAX_ID, ErrorOut, OpenShape, any_role, requires
from rag.store import StoreLocked, StoreUnavailable

from . import selectors, services
from .models import Collection, Document

router = Router()

SEARCH_MAX_K = 1000


def _admin(user) -> bool:
    """Changing documents: the admin role. A user with no role at all is refused in the words
    every operation uses for them, before the admins-only refusal."""
    if not any_role(user):
        raise HttpError(403, "your role does not allow this")
    return roles.can_manage(user)


READ = requires(any_role, "this")
CHANGE = requires(_admin, refusal="only admins may change documents")
SEARCH = requires(roles.can_ask, "searching")


def _readable_document(request: HttpRequest, document_id: int) -> Document:
    """404, not 403, for a document the user may not read: its existence is not theirs to know."""
    document = get_object_or_404(Document.objects.select_related("collection"), pk=document_id)
    if not selectors.document_readable(user=request.user, document=document):
        raise Http404("no such document")
    return document


# --- shapes ---------------------------------------------------------------------------------


class DocumentOut(OpenShape):
    id: int
    name: str = Field(description="the file's name as uploaded")
    collection: str = Field(description="the collection's slug")
    status: str = Field(description=" | ".join(Document.Status.values))
    stage: str = Field(description="what the worker is doing, in words")
    progress: int = Field(description="0 to 100")
    pages: int | None = Field(description="physical pages (null: a format without pages)")
    chunks: int | None = Field(description="passages indexed")
    error: str | None = Field(description="why it failed (null: it did not)")
    warnings: list[Any] = Field(description="what the parser noticed, the document still indexed")
    media_type: str = Field(description="the type found from its bytes")
    size: int = Field(description="bytes")
    sha256: str
    duplicate_of: int | None = Field(description="the original's id, for a duplicate")
    attempts: int
    outdated: bool = Field(
        description="ready, but indexed by an older parser/chunker: a re-index updates it"
    )
    created_at: str = Field(description="ISO 8601")
    updated_at: str = Field(description="ISO 8601")
    uploaded_by: str | None = Field(description="the uploader's user name")
    queue_position: int | None = Field(description="its place in the queue (paged lists only)")
    estimate_seconds: int | None = Field(
        description="when it should be done, from the measured throughput (paged lists only)"
    )


class DocumentsOut(OpenShape):
    documents: list[DocumentOut]


class DocumentPageOut(DocumentsOut):
    """Without ?page or ?page_size: {"documents"} alone, the 500 newest."""

    total: int | None = Field(None, description="documents matching the filters (paged only)")
    page: int | None = Field(None, description="the page shown (paged only)")
    page_size: int | None = Field(None, description="documents per page (paged only)")


# Query parameters read as strings (their 400s keep the API's own words), documented as what
# they must be.
PageNumber = Annotated[str | None, WithJsonSchema({"type": "integer", "minimum": 1})]
PageSize = Annotated[
    str | None,
    WithJsonSchema({"type": "integer", "minimum": 1, "maximum": selectors.PAGE_SIZE_MAX}),
]
StatusFilter = Annotated[
    str | None, WithJsonSchema({"type": "string", "enum": list(selectors.STATUS_FILTERS)})
]


class DocumentFilters(Schema):
    collection: str | None = Field(None, description="a collection slug")
    status: StatusFilter = Field(None, description="one of " + ", ".join(selectors.STATUS_FILTERS))
    q: str | None = Field(None, description="a part of the name")
    page: PageNumber = Field(
        None, description="a positive integer: the page (the answer adds total/page/page_size)"
    )
    page_size: PageSize = Field(
        None,
        description=f"from 1 to {selectors.PAGE_SIZE_MAX}: documents per page "
        f"(default {selectors.PAGE_SIZE})",
    )


class BulkIn(Schema):
    action: StrictStr | None = Field(
        None,
        description='"reindex" or "delete"',
        json_schema_extra={"enum": list(services.BULK_ACTIONS)},
    )
    ids: list[Annotated[StrictInt, Field(ge=-MAX_ID, le=MAX_ID)]] = Field(
        min_length=1, description="a non-empty list of document ids"
    )


class BulkResultOut(OpenShape):
    id: int
    ok: bool
    status: str | None = Field(None, description="when ok: the document's status now")
    error: str | None = Field(None, description="when not ok: why")


class BulkOut(OpenShape):
    results: list[BulkResultOut] = Field(description="one per id, in the order sent")


class SearchIn(Schema):
    query: StrictStr = Field(description="a string")
    # left out: settings.SEARCH_TOP_K; null is refused, as any other non-integer
    k: StrictInt = Field(
        None,  # type: ignore[assignment]  (a default is not validated)
        ge=1,
        le=SEARCH_MAX_K,
        description=f"an integer from 1 to {SEARCH_MAX_K}",
    )
    collection: StrictStr | None = Field(None, description="a collection slug")
    collections: list[StrictStr] | None = Field(None, description="a list of collection slugs")


class SearchResultOut(OpenShape):
    rank: int = Field(description="1-based")
    chunk_id: str
    document_id: int | str
    document: str = Field(description="the document's name")
    page: int | None = Field(description="1-based physical page (a PDF's #page=N); null: none")
    score: float
    text: str
    section: list[str] = Field(description="the heading path, may be empty")


class SearchOut(OpenShape):
    results: list[SearchResultOut]
    latency_ms: float


# --- /api/v1/documents ----------------------------------------------------------------------


@router.get(
    "/documents",
    auth=READ,
    response={200: DocumentPageOut, **ERRORS},
    exclude_unset=True,
    summary="List the documents you may read",
    description="Filtered by ?collection, ?status and ?q (a part of the name). With ?page or "
    "?page_size one page of them with total/page/page_size (and each queued document's place "
    'and estimate); without, the 500 newest as {"documents"} alone.',
    url_name="api-documents",
)
def documents_list(request: HttpRequest, filters: Query[DocumentFilters]):
    status = filters.status or None
    if status is not None and status not in selectors.STATUS_FILTERS:
        raise HttpError(400, f'"status" must be one of {", ".join(selectors.STATUS_FILTERS)}')
    chosen = {
        "collection": filters.collection or None,
        "status": status,
        "name": filters.q or None,
    }
    if filters.page is None and filters.page_size is None:
        listed = selectors.document_list(**chosen, user=request.user)
        return {"documents": [selectors.document_json(d) for d in listed]}
    page = filters.page if filters.page is not None else "1"
    size = filters.page_size if filters.page_size is not None else str(selectors.PAGE_SIZE)
    if not (page.isdigit() and size.isdigit() and int(page) > 0):
        raise HttpError(400, '"page" and "page_size" must be positive integers')
    if not 0 < int(size) <= selectors.PAGE_SIZE_MAX:
        raise HttpError(400, f'"page_size" must be from 1 to {selectors.PAGE_SIZE_MAX}')
    shown = selectors.document_page(
        **chosen, user=request.user, page=int(page), page_size=int(size)
    )
    return {
        "documents": [
            selectors.document_json(d, queue=shown.queue.get(d.pk)) for d in shown.documents
        ],
        "total": shown.total,
        "page": shown.page,
        "page_size": shown.page_size,
    }


@router.post(
    "/documents",
    auth=CHANGE,
    response={202: DocumentsOut, **ERRORS, 413: ErrorOut},
    summary="Upload documents (multipart/form-data)",
    description="One or more `file` fields (or `files`), and the `collection` slug (default: "
    "general). Each file gets a row at once, queued (or a duplicate of what is stored); the "
    "worker indexes it. A file over MAX_UPLOAD_MB refuses the whole request with a 413 and "
    "nothing is stored.",
    url_name="api-documents-upload",
)
def documents_upload(
    request: HttpRequest,
    file: Annotated[
        list[UploadedFile] | None, File(None, description="a file to index (one field per file)")
    ] = None,
    files: Annotated[list[UploadedFile] | None, File(None, description="the same as file")] = None,
    collection: Annotated[
        str | None, Form(None, description="a collection slug (default: general)")
    ] = None,
):
    uploads = file or files
    if not uploads:
        raise HttpError(400, "no file: send multipart/form-data with one or more 'file' fields")
    slug = collection or services.DEFAULT_COLLECTION_SLUG
    target = Collection.objects.filter(slug=slug).first()
    if target is None:
        if slug != services.DEFAULT_COLLECTION_SLUG:
            raise HttpError(400, f"unknown collection {slug!r}")
        target = services.collection_get_or_create(slug=slug)
    created = [
        services.document_upload(
            file=upload,
            name=upload.name,
            size=upload.size,
            collection=target,
            uploaded_by=request.user,
        )
        for upload in uploads
    ]
    return Status(202, {"documents": [selectors.document_json(d) for d in created]})


@router.post(
    "/documents/bulk",
    auth=CHANGE,
    response={200: BulkOut, **ERRORS},
    exclude_unset=True,
    summary="Re-index or delete several documents",
    description='Each id is done as its own single request; a result per id says "status" '
    'when ok, "error" when not (one failing does not stop the others).',
    url_name="api-documents-bulk",
)
def documents_bulk(request: HttpRequest, payload: BulkIn):
    try:
        outcomes = services.documents_bulk_apply(
            action=payload.action, ids=payload.ids, by=request.user
        )
    except services.DocumentError as exc:
        raise HttpError(400, str(exc)) from exc
    return {
        "results": [
            {"id": o.id, "ok": o.ok} | ({"status": o.status} if o.ok else {"error": o.error})
            for o in outcomes
        ]
    }


@router.post(
    "/documents/reindex-outdated",
    auth=CHANGE,
    response={202: DocumentsOut, **ERRORS},
    summary="Re-index every document indexed by an older parser/chunker",
    url_name="api-documents-reindex-outdated",
)
def documents_reindex_outdated(request: HttpRequest):
    queued = services.documents_reindex(outdated_only=True, by=request.user)
    return Status(202, {"documents": [selectors.document_json(d) for d in queued]})


@router.get(
    "/documents/{int:document_id}",
    auth=READ,
    response={200: DocumentOut, **ERRORS},
    summary="One document and its indexing progress",
    url_name="api-document",
)
def document_get(request: HttpRequest, document_id: int):
    return selectors.document_json(_readable_document(request, document_id))


@router.delete(
    "/documents/{int:document_id}",
    auth=CHANGE,  # before the lookup: a refusal must not tell which ids exist
    response={204: None, **ERRORS, 503: ErrorOut},
    summary="Delete a document: its row, passages and original",
    url_name="api-document-delete",
)
def document_delete(request: HttpRequest, document_id: int):
    document = _readable_document(request, document_id)
    try:
        services.document_delete(document=document, by=request.user)
    except (StoreUnavailable, StoreLocked) as exc:
        raise HttpError(503, f"not deleted: the vector store is unavailable ({exc})") from exc
    return HttpResponse(status=204)


@router.post(
    "/documents/{int:document_id}/reindex",
    auth=CHANGE,
    response={202: DocumentOut, **ERRORS, 409: ErrorOut},
    summary="Queue a document to be indexed again",
    url_name="api-document-reindex",
)
def document_reindex(request: HttpRequest, document_id: int):
    document = get_object_or_404(Document.objects.select_related("collection"), pk=document_id)
    try:
        document = services.document_reindex(document=document, by=request.user)
    except services.DocumentError as exc:
        raise HttpError(409, str(exc)) from exc
    return Status(202, selectors.document_json(document))


# --- /api/v1/search -------------------------------------------------------------------------


@router.post(
    "/search",
    auth=SEARCH,
    response={200: SearchOut, **ERRORS, 503: ErrorOut},
    summary="Search passages",
    description="The shape of `manage.py search --json`. Only collections you may read are "
    "searched; `k` defaults to SEARCH_TOP_K.",
    url_name="api-search",
)
def search(request: HttpRequest, payload: SearchIn):
    k = payload.k if payload.k is not None else settings.SEARCH_TOP_K
    collections = payload.collections or ([payload.collection] if payload.collection else None)
    wanted = selectors.searchable_collections(request.user, collections)
    try:
        return selectors.passages_search(query=payload.query, k=k, collections=wanted)
    except (StoreUnavailable, StoreLocked) as exc:
        raise HttpError(503, f"search is unavailable: {exc}") from exc
