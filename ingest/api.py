"""JSON API for documents: POST/GET /api/v1/documents, GET/DELETE /api/v1/documents/<id>,
POST /api/v1/documents/<id>/reindex and /api/v1/documents/reindex-outdated; passage search:
POST /api/v1/search."""

from __future__ import annotations

import json

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404
from django.views.decorators.http import require_http_methods, require_POST

from accounts import roles
from rag.store import StoreLocked, StoreUnavailable

from . import selectors, services
from .models import Collection, Document


def _error(status: int, message: str) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


def api_login_required(view):
    """Any role at all: reading the documents one may read."""
    return roles.api_requires(lambda user: bool(roles.roles_of(user)), "this")(view)


def _require_admin(request: HttpRequest) -> JsonResponse | None:
    if not roles.can_manage(request.user):
        return _error(403, "only admins may change documents")
    return None


def _readable_document(request: HttpRequest, document_id: int) -> Document:
    """404, not 403, for a document the user may not read: its existence is not theirs to know."""
    document = get_object_or_404(Document.objects.select_related("collection"), pk=document_id)
    if not selectors.document_readable(user=request.user, document=document):
        raise Http404("no such document")
    return document


@api_login_required
@require_http_methods(["GET", "POST"])
def documents(request: HttpRequest) -> JsonResponse:
    if request.method == "GET":
        return _documents_list(request)

    if denied := _require_admin(request):
        return denied
    files = request.FILES.getlist("file") or request.FILES.getlist("files")
    if not files:
        return _error(400, "no file: send multipart/form-data with one or more 'file' fields")
    slug = request.POST.get("collection") or services.DEFAULT_COLLECTION_SLUG
    collection = Collection.objects.filter(slug=slug).first()
    if collection is None:
        if slug != services.DEFAULT_COLLECTION_SLUG:
            return _error(400, f"unknown collection {slug!r}")
        collection = services.collection_get_or_create(slug=slug)
    created = [
        services.document_upload(
            file=upload,
            name=upload.name,
            size=upload.size,
            collection=collection,
            uploaded_by=request.user,
        )
        for upload in files
    ]
    return JsonResponse({"documents": [selectors.document_json(d) for d in created]}, status=202)


def _documents_list(request: HttpRequest) -> JsonResponse:
    """?collection=&status=&q= filter; ?page=&page_size= page, adding total/page/page_size.
    Without page or page_size: the 500 newest, as {"documents"} alone (what scripts read)."""
    params = request.GET
    status = params.get("status") or None
    if status is not None and status not in selectors.STATUS_FILTERS:
        return _error(400, f'"status" must be one of {", ".join(selectors.STATUS_FILTERS)}')
    filters = {
        "collection": params.get("collection") or None,
        "status": status,
        "name": params.get("q") or None,
    }
    if "page" not in params and "page_size" not in params:
        listed = selectors.document_list(**filters, user=request.user)
        return JsonResponse({"documents": [selectors.document_json(d) for d in listed]})
    page, size = params.get("page", "1"), params.get("page_size", str(selectors.PAGE_SIZE))
    if not (page.isdigit() and size.isdigit() and int(page) > 0):
        return _error(400, '"page" and "page_size" must be positive integers')
    if not 0 < int(size) <= selectors.PAGE_SIZE_MAX:
        return _error(400, f'"page_size" must be from 1 to {selectors.PAGE_SIZE_MAX}')
    shown = selectors.document_page(
        **filters, user=request.user, page=int(page), page_size=int(size)
    )
    return JsonResponse(
        {
            "documents": [
                selectors.document_json(d, queue=shown.queue.get(d.pk)) for d in shown.documents
            ],
            "total": shown.total,
            "page": shown.page,
            "page_size": shown.page_size,
        }
    )


@api_login_required
@require_POST
def documents_bulk(request: HttpRequest) -> JsonResponse:
    """POST {"action": "reindex"|"delete", "ids": [...]} -> {"results": [{"id", "ok",
    "status"?, "error"?}]}, one per id in the order sent; each done as its single request."""
    if denied := _require_admin(request):
        return denied
    try:
        body = json.loads(request.body or b"{}")
    except (ValueError, UnicodeDecodeError):
        return _error(400, "the body must be JSON")
    ids = body.get("ids") if isinstance(body, dict) else None
    if not (isinstance(ids, list) and ids and all(type(i) is int for i in ids)):
        return _error(400, '"ids" must be a non-empty list of document ids')
    try:
        outcomes = services.documents_bulk_apply(
            action=body.get("action"), ids=ids, by=request.user
        )
    except services.DocumentError as exc:
        return _error(400, str(exc))
    return JsonResponse(
        {
            "results": [
                {"id": o.id, "ok": o.ok} | ({"status": o.status} if o.ok else {"error": o.error})
                for o in outcomes
            ]
        }
    )


@api_login_required
@require_http_methods(["GET", "DELETE"])
def document_detail(request: HttpRequest, document_id: int) -> HttpResponse:
    if request.method == "DELETE" and (denied := _require_admin(request)):
        return denied  # before the lookup: a refusal must not tell which ids exist
    document = _readable_document(request, document_id)
    if request.method == "GET":
        return JsonResponse(selectors.document_json(document))
    try:
        services.document_delete(document=document, by=request.user)
    except (StoreUnavailable, StoreLocked) as exc:
        return _error(503, f"not deleted: the vector store is unavailable ({exc})")
    return HttpResponse(status=204)


@api_login_required
@require_http_methods(["POST"])
def document_reindex(request: HttpRequest, document_id: int) -> JsonResponse:
    if denied := _require_admin(request):
        return denied
    document = get_object_or_404(Document.objects.select_related("collection"), pk=document_id)
    try:
        document = services.document_reindex(document=document, by=request.user)
    except services.DocumentError as exc:
        return _error(409, str(exc))
    return JsonResponse(selectors.document_json(document), status=202)


@api_login_required
@require_http_methods(["POST"])
def documents_reindex_outdated(request: HttpRequest) -> JsonResponse:
    """Queue every ready document indexed by an older parser/chunker version."""
    if denied := _require_admin(request):
        return denied
    queued = services.documents_reindex(outdated_only=True, by=request.user)
    return JsonResponse({"documents": [selectors.document_json(d) for d in queued]}, status=202)


SEARCH_MAX_K = 1000


@roles.api_requires(roles.can_ask, "searching")
@require_POST
def search(request: HttpRequest) -> JsonResponse:
    """POST {"query", "k"?, "collection"? | "collections"?} -> the `manage.py search --json`
    shape: {"results": [...], "latency_ms"}. Only collections the user may read are searched."""
    try:
        body = json.loads(request.body or b"{}")
    except (ValueError, UnicodeDecodeError):
        return _error(400, "the body must be JSON")
    if not isinstance(body, dict):
        return _error(400, "the body must be a JSON object")
    query = body.get("query")
    if not isinstance(query, str):
        return _error(400, 'missing "query" (a string)')
    k = body.get("k", settings.SEARCH_TOP_K)
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= SEARCH_MAX_K:
        return _error(400, f'"k" must be an integer from 1 to {SEARCH_MAX_K}')
    collection = body.get("collection")
    if collection is not None and not isinstance(collection, str):
        return _error(400, '"collection" must be a collection slug')
    collections = body.get("collections") or ([collection] if collection else None)
    if collections is not None and not (
        isinstance(collections, list) and all(isinstance(c, str) for c in collections)
    ):
        return _error(400, '"collections" must be a list of collection slugs')
    wanted = selectors.searchable_collections(request.user, collections)
    try:
        found = selectors.passages_search(query=query, k=k, collections=wanted)
    except (StoreUnavailable, StoreLocked) as exc:
        return _error(503, f"search is unavailable: {exc}")
    return JsonResponse(found, json_dumps_params={"ensure_ascii": False})
