"""The documents JSON API and pages: who may do what, and what each request leaves behind."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from ingest.models import Document
from tests.docs import make_pdf, make_png

from .helpers import ingest

pytestmark = pytest.mark.django_db

API = "/api/v1/documents"


def pdf_upload(name="handbook.pdf", pages=("Travel policy\nReceipts within thirty days.",)):
    return SimpleUploadedFile(name, make_pdf(list(pages)), content_type="application/pdf")


@pytest.fixture
def staff_client(client, staff_user):
    client.force_login(staff_user)
    return client


class TestPermissions:
    @pytest.mark.parametrize(
        ("method", "path"),
        [
            ("get", API),
            ("post", API),
            ("get", f"{API}/1"),
            ("delete", f"{API}/1"),
            ("post", f"{API}/1/reindex"),
            ("post", f"{API}/reindex-outdated"),
        ],
    )
    def test_api_needs_a_login(self, client, method, path):
        response = getattr(client, method)(path)
        assert response.status_code == 401
        assert response.json() == {"error": "authentication required"}

    @pytest.mark.parametrize("path", ["/documents/", "/documents/1/file", "/"])
    def test_pages_redirect_anonymous_users_to_login(self, client, path):
        response = client.get(path)
        assert response.status_code == 302
        assert response["Location"].startswith("/login/")

    def test_staff_may_list_but_not_upload_or_delete(self, staff_client, collection):
        document = ingest(b"Parking memo: use level two.", "memo.txt", collection)

        assert staff_client.get(API).status_code == 200
        assert staff_client.get(f"{API}/{document.pk}").json()["status"] == "ready"
        response = staff_client.post(API, {"file": pdf_upload()})
        assert response.status_code == 403
        assert staff_client.delete(f"{API}/{document.pk}").status_code == 403
        assert staff_client.post(f"{API}/{document.pk}/reindex").status_code == 403
        assert staff_client.post(f"{API}/reindex-outdated").status_code == 403
        assert Document.objects.count() == 1

    def test_upload_page_is_for_admins(self, staff_client, admin_user):
        refused = staff_client.get("/documents/")
        assert refused.status_code == 403 and b"managing documents" in refused.content
        admin = Client()
        admin.force_login(admin_user)
        page = admin.get("/documents/")
        assert page.status_code == 200
        assert b'id="dropzone"' in page.content and b"initial-documents" in page.content


class TestUpload:
    def test_several_files_in_one_request_each_get_a_row(
        self, admin_client, admin_user, collection, django_capture_on_commit_callbacks
    ):
        files = [pdf_upload(), SimpleUploadedFile("photo.pdf", make_png()), pdf_upload("b.pdf")]
        with django_capture_on_commit_callbacks() as queued:
            response = admin_client.post(API, {"file": files, "collection": "general"})

        assert response.status_code == 202
        documents = response.json()["documents"]
        assert [d["name"] for d in documents] == ["handbook.pdf", "photo.pdf", "b.pdf"]
        # photo.pdf is only found out by the worker; the duplicate is known at once
        assert [d["status"] for d in documents] == ["queued", "queued", "duplicate"]
        assert documents[2]["duplicate_of"] == documents[0]["id"]
        assert len(queued) == 2  # one task per stored document, sent after the commit
        row = Document.objects.get(pk=documents[0]["id"])
        assert row.uploaded_by == admin_user and row.size > 0 and len(row.sha256) == 64

    def test_without_a_file_is_a_clear_400(self, admin_client, collection):
        response = admin_client.post(API, {"collection": "general"})
        assert response.status_code == 400
        assert "no file" in response.json()["error"]

    def test_unknown_collection_is_refused_and_nothing_is_stored(self, admin_client, collection):
        response = admin_client.post(API, {"file": pdf_upload(), "collection": "nope"})
        assert response.status_code == 400
        assert response.json() == {"error": "unknown collection 'nope'"}
        assert not Document.objects.exists()

    def test_over_the_size_limit_is_refused_with_413(self, admin_client, collection, settings):
        """Refused at the door, nothing stored (tests/ingest/test_upload_limits.py)."""
        settings.MAX_UPLOAD_MB = 1
        big = SimpleUploadedFile("big.txt", b"a " * (600 * 1024))
        response = admin_client.post(API, {"file": big})

        assert response.status_code == 413
        assert response.json() == {
            "error": "big.txt is over the 1 MB upload limit (MAX_UPLOAD_MB); nothing was stored"
        }
        assert not Document.objects.exists()

    def test_get_only_methods(self, admin_client, collection):
        assert admin_client.put(API).status_code == 405


class TestDetailDeleteReindex:
    def test_get_shows_progress_fields(self, admin_client, collection):
        document = ingest(make_pdf(["One page about fire drills."]), "drill.pdf", collection)

        body = admin_client.get(f"{API}/{document.pk}").json()

        assert body["status"] == "ready" and body["progress"] == 100
        assert (body["pages"], body["chunks"], body["error"]) == (1, 1, None)
        assert body["media_type"] == "application/pdf"

    def test_unknown_id_is_404(self, admin_client):
        assert admin_client.get(f"{API}/999999").status_code == 404
        assert admin_client.delete(f"{API}/999999").status_code == 404

    def test_delete_removes_row_points_and_file(self, admin_client, collection, store):
        document = ingest(make_pdf(["Badges must be worn at all times."]), "badge.pdf", collection)
        path = document.file.path
        assert store.count(document_id=str(document.pk)) == 1

        response = admin_client.delete(f"{API}/{document.pk}")

        assert response.status_code == 204
        assert not Document.objects.filter(pk=document.pk).exists()
        assert store.count(document_id=str(document.pk)) == 0
        import os

        assert not os.path.exists(path)

    def test_delete_with_the_store_unreachable_keeps_everything(
        self, admin_client, collection, settings
    ):
        document = ingest(b"Keep me.", "keep.txt", collection)
        settings.RAG_VECTOR_STORE = {
            "BACKEND": "rag.store.QdrantStore",
            "OPTIONS": {"url": "http://127.0.0.1:9", "timeout": 2},
        }

        response = admin_client.delete(f"{API}/{document.pk}")

        assert response.status_code == 503
        assert "not deleted" in response.json()["error"]
        assert Document.objects.filter(pk=document.pk).exists()
        assert document.file.storage.exists(document.file.name)

    def test_reindex_requeues_a_failed_document(
        self, admin_client, collection, django_capture_on_commit_callbacks
    ):
        document = ingest(b"", "empty.txt", collection)
        assert document.status == "failed"

        with django_capture_on_commit_callbacks() as queued:
            response = admin_client.post(f"{API}/{document.pk}/reindex")

        assert response.status_code == 202
        assert response.json()["status"] == "queued" and response.json()["error"] is None
        assert len(queued) == 1

    def test_documents_indexed_by_an_older_chunker_are_flagged_and_reindexed(
        self, admin_client, collection, django_capture_on_commit_callbacks
    ):
        current = ingest(b"Parking memo: use level two.", "memo.txt", collection)
        older = ingest(b"Kitchen memo: the fridge is emptied on Fridays.", "k.txt", collection)
        Document.objects.filter(pk=older.pk).update(chunker_version="1")
        listed = {d["id"]: d["outdated"] for d in admin_client.get(API).json()["documents"]}
        assert listed == {current.pk: False, older.pk: True}

        with django_capture_on_commit_callbacks() as queued:
            response = admin_client.post(f"{API}/reindex-outdated")

        assert response.status_code == 202
        assert [d["id"] for d in response.json()["documents"]] == [older.pk]
        assert len(queued) == 1

    def test_reindex_of_a_duplicate_is_a_conflict(self, admin_client, collection):
        data = b"Same bytes, twice."
        ingest(data, "a.txt", collection)
        duplicate = ingest(data, "b.txt", collection)

        response = admin_client.post(f"{API}/{duplicate.pk}/reindex")

        assert response.status_code == 409
        assert "duplicate" in response.json()["error"]


class TestOriginalFile:
    def test_pdf_is_served_inline_for_page_links(self, staff_client, collection):
        data = make_pdf(["first", "second"])
        document = ingest(data, "two.pdf", collection)

        response = staff_client.get(f"/documents/{document.pk}/file")

        assert response.status_code == 200
        assert response["Content-Type"] == "application/pdf"
        assert response["Content-Disposition"].startswith("inline")
        assert b"".join(response.streaming_content) == data

    def test_uploaded_html_cannot_run_as_a_page_of_the_site(self, staff_client, collection):
        html = b"<html><body><h1>Hi</h1><script>steal()</script><p>text</p></body></html>"
        document = ingest(html, "page.html", collection)

        response = staff_client.get(f"/documents/{document.pk}/file")

        assert "sandbox" in response["Content-Security-Policy"]
        assert response["X-Content-Type-Options"] == "nosniff"

    def test_a_duplicate_serves_its_original_bytes(self, staff_client, collection):
        data = make_pdf(["shared"])
        ingest(data, "a.pdf", collection)
        duplicate = ingest(data, "b.pdf", collection)

        response = staff_client.get(f"/documents/{duplicate.pk}/file")

        assert b"".join(response.streaming_content) == data
