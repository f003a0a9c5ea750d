from django.urls import path

from . import views

# The JSON API (/api/v1/documents…, /api/v1/search) is ingest.api's router, mounted by
# config/api.py.
urlpatterns = [
    path("documents/", views.documents_page, name="documents"),
    path("documents/<int:document_id>/file", views.document_file, name="document-file"),
]
