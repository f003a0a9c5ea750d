from django.conf import settings
from django.contrib.admin.views.decorators import staff_member_required
from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render

from . import selectors
from .models import Document


@staff_member_required(login_url="login")
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


@login_required
def document_file(request: HttpRequest, document_id: int) -> FileResponse:
    """The stored original, inline, so a PDF link with #page=N opens at that page."""
    document = get_object_or_404(Document, pk=document_id)
    source = document.duplicate_of if document.status == Document.Status.DUPLICATE else document
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
