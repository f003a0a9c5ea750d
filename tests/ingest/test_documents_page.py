"""The Documents page at scale: one page of a thousand documents costs what a page of ten does;
filters, paging, queue places with estimates from measured throughput, and bulk re-index /
delete through the single-document services (each audited)."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from audit.models import AuditRecord
from ingest import selectors, services
from ingest.models import Document

from .helpers import ingest, upload

pytestmark = pytest.mark.django_db

API = "/api/v1/documents"


def make_documents(n, *, collection, user, status=Document.Status.READY, size=None, **fields):
    """``n`` rows in one insert, each with its own content (one live original per content)."""
    start = Document.objects.count()
    return Document.objects.bulk_create(
        Document(
            name=f"report-{start + i:05d}.pdf",
            collection=collection,
            uploaded_by=user,
            size=1000 + i if size is None else size,
            sha256=f"{start + i:064x}",
            file=f"xx/{start + i:064x}.pdf",
            status=status,
            **fields,
        )
        for i in range(n)
    )


def queries_of(callable_):
    with CaptureQueriesContext(connection) as captured:
        response = callable_()
    assert response.status_code == 200, response.content[:500]
    return [q["sql"] for q in captured.captured_queries]


class TestAtScale:
    @pytest.fixture
    def mixed(self, collection, admin_user):
        """Rows of every kind a page shows: queued (with a queue place and an estimate),
        processing, ready (measured), failed, and duplicates pointing to an original."""

        def add(n):
            per_kind = n // 5
            now = timezone.now()
            ready = make_documents(
                per_kind,
                collection=collection,
                user=admin_user,
                started_at=now - timedelta(seconds=10),
                finished_at=now,
            )
            make_documents(per_kind, collection=collection, user=admin_user, status="embedding")
            make_documents(per_kind, collection=collection, user=admin_user, status="failed")
            make_documents(
                per_kind,
                collection=collection,
                user=admin_user,
                status="duplicate",
                duplicate_of=ready[0],
            )
            # the newest: the first page shows queued rows, with their places
            make_documents(per_kind, collection=collection, user=admin_user, status="queued")

        return add

    def test_a_page_costs_the_same_queries_for_ten_or_a_thousand_documents(
        self, admin_client, mixed
    ):
        mixed(100)  # two pages
        small_page = queries_of(lambda: admin_client.get("/documents/"))
        small_api = queries_of(lambda: admin_client.get(API, {"page": 1}))
        mixed(1000)
        assert Document.objects.count() == 1100
        page = queries_of(lambda: admin_client.get("/documents/"))
        api = queries_of(lambda: admin_client.get(API, {"page": 1}))
        legacy = queries_of(lambda: admin_client.get(API))

        assert len(page) == len(small_page) and len(api) == len(small_api)
        # the rows, their total, then the queue and the throughput it is measured by (the
        # newest rows of the page are queued ones); no query per row
        listing = [q for q in api if "ingest_document" in q]
        assert len(listing) == 4, listing
        assert len(api) <= 7, api  # with the session, the user and their roles
        assert len([q for q in legacy if "ingest_document" in q]) == 1
        assert len(page) <= len(api) + 1  # the page adds the collections of its menus

    def test_the_page_shows_one_page_with_its_total(self, admin_client, collection, admin_user):
        make_documents(120, collection=collection, user=admin_user)
        listing = admin_client.get("/documents/").context["listing"]
        assert (listing["total"], listing["page"], listing["page_size"]) == (120, 1, 50)
        assert len(listing["documents"]) == 50
        third = admin_client.get("/documents/", {"page": 3}).context["listing"]
        assert len(third["documents"]) == 20
        assert third["documents"][-1]["name"] == "report-00000.pdf"  # the oldest, last
        assert third["documents"][0]["uploaded_by"] == "ada"


class TestFilters:
    @pytest.fixture
    def documents(self, collection, admin_user):
        other = services.collection_get_or_create(slug="legal")
        make_documents(3, collection=collection, user=admin_user)
        make_documents(2, collection=other, user=None, status="failed")
        make_documents(1, collection=other, user=None, status="indexing")
        Document.objects.filter(pk=Document.objects.order_by("id").first().pk).update(
            name="Travel Policy.pdf"
        )

    @pytest.mark.parametrize(
        ("params", "expected"),
        [
            ({"collection": "legal"}, 3),
            ({"status": "failed"}, 2),
            ({"status": "processing"}, 1),
            ({"status": "ready", "collection": "legal"}, 0),
            ({"q": "travel"}, 1),
            ({"q": "report", "collection": "general"}, 2),
        ],
    )
    def test_filters_combine(self, admin_client, documents, params, expected):
        paged = admin_client.get(API, {**params, "page": 1}).json()
        assert paged["total"] == expected == len(paged["documents"])
        assert len(admin_client.get(API, params).json()["documents"]) == expected
        page = admin_client.get("/documents/", params)
        assert page.context["listing"]["total"] == expected

    def test_without_paging_parameters_the_list_is_what_it_was(self, admin_client, documents):
        body = admin_client.get(API).json()
        assert set(body) == {"documents"} and len(body["documents"]) == 6

    def test_paging_in_the_api(self, admin_client, documents):
        body = admin_client.get(API, {"page": 2, "page_size": 4}).json()
        assert (body["total"], body["page"], body["page_size"]) == (6, 2, 4)
        assert len(body["documents"]) == 2
        past = admin_client.get(API, {"page": 9, "page_size": 4}).json()
        assert past["documents"] == [] and past["total"] == 6

    @pytest.mark.parametrize(
        "params",
        [{"status": "nonsense"}, {"page": "0"}, {"page": "x"}, {"page_size": "201"}],
    )
    def test_bad_parameters_are_refused(self, admin_client, params):
        response = admin_client.get(API, params)
        assert response.status_code == 400 and "error" in response.json()

    def test_staff_see_only_their_collections(self, client, staff_user, documents):
        from django.contrib.auth.models import Group

        legal = services.collection_get_or_create(slug="legal")
        legal.groups.set([Group.objects.get_or_create(name="lawyers")[0]])
        client.force_login(staff_user)
        body = client.get(API, {"page": 1}).json()
        assert body["total"] == 3
        assert {d["collection"] for d in body["documents"]} == {"general"}


class TestQueue:
    def test_places_and_estimates_from_measured_throughput(self, collection, admin_user):
        now = timezone.now()
        # measured: 2000 bytes in 20 s, i.e. 100 bytes per second
        for size in (500, 1500):
            make_documents(
                1,
                collection=collection,
                user=admin_user,
                size=size,
                started_at=now - timedelta(seconds=10),
                finished_at=now,
            )
        [busy] = make_documents(
            1, collection=collection, user=admin_user, status="embedding", progress=50
        )
        Document.objects.filter(pk=busy.pk).update(size=1000)  # 500 bytes still to do
        second, first = (
            make_documents(1, collection=collection, user=admin_user, status="queued")[0]
            for _ in range(2)
        )
        # the order they were queued in, not their ids: a re-index queues an old row anew
        Document.objects.filter(pk=first.pk).update(size=1000, updated_at=now)
        Document.objects.filter(pk=second.pk).update(
            size=2000, updated_at=now + timedelta(seconds=1)
        )

        places = selectors.queue_places([first.pk, second.pk, busy.pk])

        assert places == {
            first.pk: selectors.QueuePlace(position=1, seconds=15.0),
            second.pk: selectors.QueuePlace(position=2, seconds=35.0),
        }

    def test_no_estimate_before_anything_was_measured(self, admin_client, collection):
        document = upload(b"Parking memo: use level two.", "memo.txt", collection)
        [shown] = admin_client.get(API, {"page": 1}).json()["documents"]
        assert (shown["id"], shown["queue_position"], shown["estimate_seconds"]) == (
            document.pk,
            1,
            None,
        )
        assert shown["stage"] == "queued"  # the page shows "queued" once: the badge


class TestBulk:
    def test_reindex_and_delete_each_through_the_single_service(
        self, admin_client, admin_user, collection, store
    ):
        memo = ingest(b"Parking memo: use level two.", "memo.txt", collection)
        notes = ingest(b"Canteen notes: soup on Fridays.", "notes.txt", collection)
        copy = upload(b"Canteen notes: soup on Fridays.", "copy.txt", collection)
        assert copy.status == "duplicate"
        before = AuditRecord.objects.order_by("-pk").values_list("pk", flat=True).first()

        reindexed = admin_client.post(
            f"{API}/bulk",
            {"action": "reindex", "ids": [memo.pk, copy.pk, 999999]},
            content_type="application/json",
        )

        assert reindexed.status_code == 200
        assert reindexed.json()["results"] == [
            {"id": memo.pk, "ok": True, "status": "queued"},
            {
                "id": copy.pk,
                "ok": False,
                "error": "this is a duplicate: re-index the original document instead",
            },
            {"id": 999999, "ok": False, "error": "no such document"},
        ]
        again = services.documents_bulk_apply(action="reindex", ids=[memo.pk], by=admin_user)
        assert again[0].error == "already queued"
        assert list(AuditRecord.objects.filter(pk__gt=before).values_list("kind", flat=True)) == [
            "document.reindex"
        ]

        deleted = admin_client.post(
            f"{API}/bulk",
            {"action": "delete", "ids": [notes.pk, copy.pk]},
            content_type="application/json",
        )

        assert [r["ok"] for r in deleted.json()["results"]] == [True, True]
        assert not Document.objects.filter(pk__in=[notes.pk, copy.pk]).exists()
        kinds = list(
            AuditRecord.objects.filter(pk__gt=before).order_by("pk").values_list("kind", "subject")
        )
        # the duplicate went first: deleting the original promoted nothing
        assert kinds[1:] == [
            ("document.delete", f"document:{copy.pk}"),
            ("document.delete", f"document:{notes.pk}"),
        ]
        assert store.count(document_id=str(notes.pk)) == 0

    def test_only_admins_and_only_sound_requests(self, staff_user, admin_client):
        staff = Client()  # admin_client is pytest-django's `client`, logged in as the admin
        staff.force_login(staff_user)
        body = {"action": "delete", "ids": [1]}
        assert staff.post(f"{API}/bulk", body, content_type="application/json").status_code == 403
        for bad in ({"action": "burn", "ids": [1]}, {"action": "delete", "ids": []}, [1]):
            response = admin_client.post(f"{API}/bulk", bad, content_type="application/json")
            assert response.status_code == 400, bad
