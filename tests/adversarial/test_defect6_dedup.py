"""Defect 6: deduplication across collections, orphaned duplicates, a racy duplicate check.

- The same bytes uploaded into a second collection became a `duplicate` of the first
  collection's document: never indexed in its own collection (so unsearchable there) and showing
  that document's id to readers who may not see it. Now deduplication is per collection: the
  copy is indexed under its own collection (its own point ids), sharing only the stored file.
- Deleting an original left its duplicates `duplicate` of nothing: their file gave 404 and
  re-index answered 409. Now the oldest duplicate is promoted (re-queued, indexed in the deleted
  one's place) and the rest point to it; the shared file stays while anything references it.
- The duplicate check was read-then-create: two simultaneous uploads of the same bytes could
  both become originals. Now one live original per (collection, sha256) is a database
  constraint, a lost race becomes a duplicate, and on PostgreSQL an advisory lock per content
  serialises the decision.
"""

import importlib
import io
import json
import threading

import pytest
from django.apps import apps as django_apps
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.db import IntegrityError, connection, transaction
from django.test import Client

from core.components import get_retriever
from ingest import services
from ingest.models import Collection, Document
from ingest.tasks import document_ingest_task
from tests.docs import make_pdf
from tests.ingest.helpers import ingest, upload

pytestmark = pytest.mark.django_db

API = "/api/v1/documents"
POLICY = make_pdf(
    [
        "Travel policy\nEconomy class is required for flights shorter than six hours.",
        "Receipts\nHotel receipts must be submitted within thirty days of travel.",
    ]
)
QUESTION = "when must hotel receipts be submitted?"


@pytest.fixture
def secret(db):
    """A collection only admins and auditors read (no group)."""
    return Collection.objects.create(slug="secret", name="Secret")


@pytest.fixture
def staff_client(staff_user):
    client = Client()  # its own session: tests use admin_client beside it
    client.force_login(staff_user)
    return client


def served(client, document) -> bytes:
    response = client.get(f"/documents/{document.pk}/file")
    assert response.status_code == 200, response.status_code
    return b"".join(response.streaming_content)


# ---------------------------------------------------------------------------------------------
# Per-collection deduplication
# ---------------------------------------------------------------------------------------------


def test_same_bytes_in_another_collection_are_indexed_there(collection, secret, store):
    hidden = ingest(POLICY, "policy.pdf", secret)
    public = ingest(POLICY, "policy.pdf", collection)

    assert public.status == Document.Status.READY, public.error
    assert public.duplicate_of is None
    # one stored file, two sets of points: one per collection
    assert public.file.name == hidden.file.name
    assert store.count(document_id=str(public.pk)) == public.chunk_count > 0
    assert store.count(document_id=str(hidden.pk)) == hidden.chunk_count
    assert store.count() == hidden.chunk_count + public.chunk_count

    top = get_retriever().search(QUESTION, k=1, collections=["general"])[0]
    assert top.document_id == str(public.pk) and top.collection == "general"
    top = get_retriever().search(QUESTION, k=1, collections=["secret"])[0]
    assert top.document_id == str(hidden.pk) and top.collection == "secret"


def test_same_bytes_in_the_same_collection_stay_a_duplicate(collection, secret, store):
    ingest(POLICY, "policy.pdf", secret)
    first = ingest(POLICY, "policy.pdf", collection)
    before = store.count()

    again = ingest(POLICY, "copy.pdf", collection)

    assert again.status == Document.Status.DUPLICATE
    assert again.duplicate_of == first  # the live original of its own collection
    assert store.count() == before


def test_staff_never_see_a_hidden_documents_id(staff_client, admin_client, collection, secret):
    hidden = ingest(POLICY, "policy.pdf", secret)
    upload_ = SimpleUploadedFile("policy.pdf", POLICY, content_type="application/pdf")
    response = admin_client.post(API, {"file": upload_, "collection": "general"})
    (uploaded,) = response.json()["documents"]
    assert uploaded["status"] == "queued" and uploaded["duplicate_of"] is None

    (listed,) = staff_client.get(API).json()["documents"]
    assert listed["id"] == uploaded["id"] and listed["id"] != hidden.pk
    assert listed["duplicate_of"] is None and f"#{hidden.pk}" not in listed["stage"]


def test_a_duplicate_of_another_collection_is_never_named(staff_client, collection, secret):
    """Rows left by the old code (or any future slip): the JSON does not name the original."""
    hidden = ingest(b"Quarterly numbers.", "numbers.txt", secret)
    stray = Document.objects.create(
        name="numbers.txt",
        collection=collection,
        sha256=hidden.sha256,
        status=Document.Status.DUPLICATE,
        duplicate_of=hidden,
        stage=f"same content as document #{hidden.pk}",
    )

    (shown,) = staff_client.get(API).json()["documents"]

    assert shown["id"] == stray.pk
    assert shown["duplicate_of"] is None and f"#{hidden.pk}" not in shown["stage"]
    assert staff_client.get(f"{API}/{stray.pk}").json()["duplicate_of"] is None


def test_ingest_json_indexes_the_copy_in_its_collection(tmp_path, collection, secret):
    ingest(POLICY, "policy.pdf", secret)
    path = tmp_path / "policy.pdf"
    path.write_bytes(POLICY)

    out = io.StringIO()
    call_command(
        "ingest", str(path), "--collection", "general", "--sync", "--json",
        stdout=out, stderr=io.StringIO(),
    )  # fmt: skip

    (line,) = [json.loads(raw) for raw in out.getvalue().splitlines()]
    assert line["status"] == "ready" and "duplicate_of" not in line
    assert line["collection"] == "general" and line["chunks"] > 0


# ---------------------------------------------------------------------------------------------
# Deleting an original
# ---------------------------------------------------------------------------------------------


def test_deleting_an_original_promotes_its_oldest_duplicate(
    admin_client, staff_client, collection, store, django_capture_on_commit_callbacks
):
    original = ingest(POLICY, "policy.pdf", collection)
    heir = ingest(POLICY, "policy-2.pdf", collection)
    other = ingest(POLICY, "policy-3.pdf", collection)
    stored = original.file.name

    with django_capture_on_commit_callbacks() as queued:
        assert admin_client.delete(f"{API}/{original.pk}").status_code == 204

    heir.refresh_from_db()
    other.refresh_from_db()
    assert len(queued) == 1  # the heir's ingestion, queued once the delete commits
    assert heir.status == Document.Status.QUEUED and heir.duplicate_of is None
    assert heir.file.name == stored and heir.file.storage.exists(stored)
    assert other.status == Document.Status.DUPLICATE and other.duplicate_of == heir
    assert f"#{heir.pk}" in other.stage
    assert store.count(document_id=str(original.pk)) == 0

    document_ingest_task.apply(args=[heir.pk])  # what the queued task does
    heir.refresh_from_db()
    assert heir.status == Document.Status.READY, heir.error
    assert store.count(document_id=str(heir.pk)) == heir.chunk_count > 0
    assert get_retriever().search(QUESTION, k=1)[0].document_id == str(heir.pk)

    assert served(staff_client, heir) == POLICY
    assert served(staff_client, other) == POLICY
    assert admin_client.post(f"{API}/{heir.pk}/reindex").status_code == 202
    response = admin_client.post(f"{API}/{other.pk}/reindex")
    assert response.status_code == 409 and "original" in response.json()["error"]


def test_deleting_the_last_reference_removes_the_file_not_before(collection, secret):
    hidden = ingest(POLICY, "policy.pdf", secret)
    public = ingest(POLICY, "policy.pdf", collection)
    copy = ingest(POLICY, "copy.pdf", collection)
    path = hidden.file.path
    assert public.file.path == path

    services.document_delete(document=hidden)
    assert hidden.file.storage.exists(hidden.file.name)  # the other collection still uses it

    services.document_delete(document=public)  # its duplicate takes over the file
    copy.refresh_from_db()
    assert copy.status == Document.Status.QUEUED and copy.file.name == public.file.name
    assert copy.file.storage.exists(copy.file.name)

    services.document_delete(document=copy)
    assert not copy.file.storage.exists(copy.file.name)
    assert not Document.objects.exists()


def test_duplicates_of_a_failed_original_follow_the_live_copy(collection):
    """A failed original's duplicates go to the collection's live copy of the same bytes."""
    failed = ingest(b"Shared notes.", "notes.txt", collection)
    duplicate = ingest(b"Shared notes.", "notes-2.txt", collection)
    services.document_fail(document_id=failed.pk, reason="broken on purpose")
    live = ingest(b"Shared notes.", "notes-3.txt", collection)
    assert live.status == Document.Status.READY  # failed documents are not originals

    failed.refresh_from_db()
    services.document_delete(document=failed)

    duplicate.refresh_from_db()
    assert duplicate.status == Document.Status.DUPLICATE and duplicate.duplicate_of == live


def test_reindexing_a_failed_copy_of_live_bytes_makes_it_a_duplicate(collection):
    failed = ingest(b"Minutes of the meeting.", "minutes.txt", collection)
    services.document_fail(document_id=failed.pk, reason="broken on purpose")
    live = ingest(b"Minutes of the meeting.", "minutes-2.txt", collection)

    failed.refresh_from_db()
    services.document_reindex(document=failed)  # would break the one-original rule if queued

    failed.refresh_from_db()
    assert failed.status == Document.Status.DUPLICATE and failed.duplicate_of == live


# ---------------------------------------------------------------------------------------------
# The race
# ---------------------------------------------------------------------------------------------


def test_one_live_original_per_collection_is_a_database_rule(collection, secret):
    first = upload(b"Same bytes.", "a.txt", collection)
    upload(b"Same bytes.", "a.txt", secret)  # another collection: allowed

    with pytest.raises(IntegrityError), transaction.atomic():
        Document.objects.create(
            name="b.txt", collection=collection, sha256=first.sha256, status="queued"
        )


def test_a_lost_race_becomes_a_duplicate(collection, monkeypatch):
    """The interleaving: another upload of the same bytes commits between this upload's look for
    an original (none yet) and its insert."""
    winner = upload(b"Raced bytes.", "a.txt", collection)
    real = services._live_original
    looks = []

    def not_yet_committed(**kwargs):
        looks.append(kwargs)
        return None if len(looks) == 1 else real(**kwargs)

    monkeypatch.setattr(services, "_live_original", not_yet_committed)
    loser = upload(b"Raced bytes.", "b.txt", collection)

    assert loser.status == Document.Status.DUPLICATE and loser.duplicate_of == winner
    live = Document.objects.exclude(status=Document.Status.DUPLICATE)
    assert list(live) == [winner]


@pytest.mark.django_db(transaction=True)
def test_simultaneous_uploads_make_one_original():
    collection = services.collection_get_or_create(slug="general")
    start = threading.Barrier(4)
    results, errors = [], []

    def send(index: int) -> None:
        try:
            start.wait()
            results.append(upload(b"Uploaded four times at once.", f"{index}.txt", collection))
        except Exception as exc:  # reported below, not lost in the thread
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=send, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    statuses = sorted(d.status for d in results)
    assert statuses == ["duplicate"] * 3 + ["queued"]
    (original,) = [d for d in results if d.status == Document.Status.QUEUED]
    assert {d.duplicate_of_id for d in results if d != original} == {original.pk}


# ---------------------------------------------------------------------------------------------
# Rows the old code left behind
# ---------------------------------------------------------------------------------------------


def test_migration_repairs_cross_collection_and_orphaned_duplicates(collection, secret, store):
    migration = importlib.import_module("ingest.migrations.0005_document_dedup_per_collection")
    hidden = ingest(POLICY, "policy.pdf", secret)
    across = Document.objects.create(
        name="policy.pdf", collection=collection, sha256=hidden.sha256,
        status=Document.Status.DUPLICATE, duplicate_of=hidden, stage="same content",
    )  # fmt: skip
    follower = Document.objects.create(
        name="policy-2.pdf", collection=collection, sha256=hidden.sha256,
        status=Document.Status.DUPLICATE, duplicate_of=hidden, stage="same content",
    )  # fmt: skip
    orphan = Document.objects.create(
        name="gone.txt", collection=collection, sha256="f" * 64,
        status=Document.Status.DUPLICATE, duplicate_of=None, stage="same content",
    )  # fmt: skip

    with connection.schema_editor() as editor:
        migration.dedup_per_collection(django_apps, editor)

    across.refresh_from_db()
    follower.refresh_from_db()
    orphan.refresh_from_db()
    assert across.status == Document.Status.FAILED and "re-index" in across.error
    assert across.file.name == hidden.file.name
    assert follower.status == Document.Status.DUPLICATE and follower.duplicate_of == across
    assert orphan.status == Document.Status.FAILED and "upload the file again" in orphan.error

    services.document_reindex(document=across, enqueue=False)
    document_ingest_task.apply(args=[across.pk])
    across.refresh_from_db()
    assert across.status == Document.Status.READY, across.error
    # its own points: the secret copy's are untouched
    assert store.count(document_id=str(across.pk)) == across.chunk_count
    assert store.count(document_id=str(hidden.pk)) == hidden.chunk_count
