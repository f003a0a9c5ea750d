from django.urls import path

from . import api, views

urlpatterns = [
    path("documents/", views.documents_page, name="documents"),
    path("documents/<int:document_id>/file", views.document_file, name="document-file"),
    path("api/v1/documents", api.documents, name="api-documents"),
    path("api/v1/search", api.search, name="api-search"),
    path(
        "api/v1/documents/reindex-outdated",
        api.documents_reindex_outdated,
        name="api-documents-reindex-outdated",
    ),
    path("api/v1/documents/bulk", api.documents_bulk, name="api-documents-bulk"),
    path("api/v1/documents/<int:document_id>", api.document_detail, name="api-document"),
    path(
        "api/v1/documents/<int:document_id>/reindex",
        api.document_reindex,
        name="api-document-reindex",
    ),
]
