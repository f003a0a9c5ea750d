from django.conf import settings
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render

from accounts import roles

from . import selectors
from .models import Document


@roles.page_requires(roles.can_manage, "managing documents")
def documents_page(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "ingest/documents.html",
        {
            "documents": [selectors.document_json(d) for d in selectors.document_list()],
            "collections": selectors.collection_list(),
            "max_upload_mb": settings.MAX_UPLOAD_MB,
        },
    )


@roles.page_requires(lambda user: bool(roles.roles_of(user)), "reading documents")
def document_file(request: HttpRequest, document_id: int) -> FileResponse:
    """The stored original, inline, so a PDF link with #page=N opens at that page."""
    document = get_object_or_404(Document.objects.select_related("collection"), pk=document_id)
    if not selectors.document_readable(user=request.user, document=document):
        raise Http404("no such document")  # a guessed URL learns nothing
    # a duplicate keeps no file of its own (the bytes are stored once): it serves its original's
    source = document if document.file else document.duplicate_of
    if source is None or not source.file or not source.file.storage.exists(source.file.name):
        raise Http404("the original file is not stored")
    response = FileResponse(
        source.file.open("rb"),
        content_type=source.media_type or "application/octet-stream",
        as_attachment=False,
        filename=document.name,
    )
    response["X-Content-Type-Options"] = "nosniff"
    # An uploaded HTML file must not run as a page of this site.
    response["Content-Security-Policy"] = "sandbox; default-src 'none'; style-src 'unsafe-inline'"
    return response
