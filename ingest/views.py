from django.conf import settings
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render

from accounts import roles

from . import selectors
from .models import Document


@roles.page_requires(roles.can_manage, "managing documents")
def documents_page(request: HttpRequest) -> HttpResponse:
    """One page of documents, filtered by collection, status and name (?collection=, ?status=,
    ?q=, ?page=): the script renders its rows and polls the same page of the API."""
    filters = {
        "collection": request.GET.get("collection", "").strip(),
        "status": request.GET.get("status", "").strip(),
        "q": request.GET.get("q", "").strip(),
    }
    shown = selectors.document_page(
        collection=filters["collection"] or None,
        status=filters["status"] or None,
        name=filters["q"] or None,
        page=page_number(request.GET.get("page")),
    )
    return render(
        request,
        "ingest/documents.html",
        {
            "listing": {
                "documents": [
                    selectors.document_json(d, queue=shown.queue.get(d.pk)) for d in shown.documents
                ],
                "total": shown.total,
                "page": shown.page,
                "page_size": shown.page_size,
                "filters": filters,
            },
            "filters": filters,
            "statuses": list(selectors.STATUS_FILTERS),
            "collections": selectors.collection_list(),
            "max_upload_mb": settings.MAX_UPLOAD_MB,
        },
    )


def page_number(value: str | None, default: int = 1) -> int:
    """A page number from a query string: anything but a positive integer is ``default``."""
    return int(value) if value and value.isdigit() and int(value) > 0 else default


@roles.page_requires(lambda user: bool(roles.roles_of(user)), "reading documents")
def document_file(request: HttpRequest, document_id: int) -> FileResponse:
    """The stored original, inline, so a PDF link with #page=N opens at that page."""
    document = get_object_or_404(Document.objects.select_related("collection"), pk=document_id)
    if not selectors.document_readable(user=request.user, document=document):
        raise Http404("no such document")  # a guessed URL learns nothing
    # a duplicate keeps no file of its own (the bytes are stored once): it serves its original's
    source = document if document.file else document.duplicate_of
    if source is None or not source.file:
        raise Http404("the original file is not stored")
    try:
        # Through the storage API, whichever backend holds it (STORAGE_BACKEND): the response
        # streams it in blocks; from a bucket, a large one is spooled to disk on the way.
        handle = source.file.storage.open(source.file.name, "rb")
    except FileNotFoundError:
        raise Http404("the original file is not stored") from None
    response = FileResponse(
        handle,
        content_type=source.media_type or "application/octet-stream",
        as_attachment=False,
        filename=document.name,
    )
    response["X-Content-Type-Options"] = "nosniff"
    # An uploaded HTML file must not run as a page of this site.
    response["Content-Security-Policy"] = "sandbox; default-src 'none'; style-src 'unsafe-inline'"
    return response
