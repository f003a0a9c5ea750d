"""Deduplication per collection (issue 11, defect 6).

Before: the same bytes uploaded into a second collection became a `duplicate` of the first
collection's document (never indexed in its own collection, and showing a document id its
readers may not see), and deleting an original left its duplicates pointing to nothing.

Existing rows are brought in line before the constraint is added:
- a duplicate of another collection's document, or of a deleted one, becomes its collection's
  own copy: `failed` with the stored file and a reason that says to re-index it (nothing is
  queued from a migration), or a duplicate of a live copy its collection already has; without
  any stored file left it fails asking for the file again;
- two live originals of the same bytes in one collection (a failed one re-indexed after the
  bytes were uploaded again): the later becomes a duplicate of the earlier.
Documents already indexed keep a blank `chunk_key` (their point ids come from the sha256).
"""

from django.db import migrations, models
from django.db.models import Count
from django.utils import timezone

from ingest.models import collection_chunk_key

FAILED, DUPLICATE = "failed", "duplicate"


def dedup_per_collection(apps, schema_editor):
    Document = apps.get_model("ingest", "Document")
    now = timezone.now()

    def duplicate_of(document, original_id):
        Document.objects.filter(pk=document.pk).update(
            status=DUPLICATE,
            duplicate_of_id=original_id,
            stage=f"same content as document #{original_id}",
            progress=100,
            updated_at=now,
        )

    live = Document.objects.exclude(status__in=(FAILED, DUPLICATE)).exclude(sha256="")
    for group in (
        live.values("collection_id", "sha256").annotate(n=Count("id")).filter(n__gt=1)
    ):
        first, *later = live.filter(**group_filter(group)).order_by("id")
        for document in later:
            duplicate_of(document, first.pk)

    # (collection, sha256) -> the document that now holds those bytes in that collection
    holders = {
        (d.collection_id, d.sha256): d.pk
        for d in Document.objects.exclude(status__in=(FAILED, DUPLICATE))
        .exclude(sha256="")
        .order_by("-id")
    }
    stray = Document.objects.filter(status=DUPLICATE).select_related("duplicate_of")
    for document in stray.order_by("id"):
        original = document.duplicate_of
        if original is not None and original.collection_id == document.collection_id:
            continue
        key = (document.collection_id, document.sha256)
        if key in holders:
            duplicate_of(document, holders[key])
            continue
        stored = (
            Document.objects.filter(sha256=document.sha256)
            .exclude(file="")
            .values_list("file", flat=True)
            .first()
        )
        if stored:
            error = (
                "it was recorded as a duplicate of a document in another collection, so it was "
                "never indexed in this one: re-index it"
            )
        else:
            error = "its original was deleted with the stored file: upload the file again"
        Document.objects.filter(pk=document.pk).update(
            status=FAILED,
            duplicate_of=None,
            file=stored or "",
            chunk_key=collection_chunk_key(
                sha256=document.sha256, collection_id=document.collection_id
            ),
            stage="failed",
            progress=100,
            error=error,
            updated_at=now,
        )
        if stored:
            holders[key] = document.pk

    if schema_editor.connection.vendor == "postgresql":
        # check the deferred foreign keys now: PostgreSQL builds no index on a table with
        # trigger events pending in the same transaction
        schema_editor.execute("SET CONSTRAINTS ALL IMMEDIATE")


def group_filter(group: dict) -> dict:
    return {"collection_id": group["collection_id"], "sha256": group["sha256"]}


class Migration(migrations.Migration):
    dependencies = [
        ("ingest", "0004_document_chunker_version"),
    ]

    operations = [
        migrations.AddField(
            model_name="document",
            name="chunk_key",
            field=models.CharField(
                blank=True,
                help_text="What its passage ids derive from; blank: its sha256 (indexed before "
                "ids were per collection)",
                max_length=100,
            ),
        ),
        migrations.RunPython(dedup_per_collection, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name="document",
            constraint=models.UniqueConstraint(
                condition=models.Q(("status__in", ["failed", "duplicate"]), _negated=True),
                fields=("collection", "sha256"),
                name="document_one_live_original_per_collection",
            ),
        ),
    ]
