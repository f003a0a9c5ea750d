from django.conf import settings
from django.db import models


def collection_chunk_key(*, sha256: str, collection_id: int) -> str:
    """What a document's passage ids derive from: its content within its collection, so the same
    bytes in two collections are two sets of points (each with its own collection's access)."""
    return f"{sha256}:{collection_id}"


class Collection(models.Model):
    class Sensitivity(models.TextChoices):
        PUBLIC = "public"
        INTERNAL = "internal"
        CONFIDENTIAL = "confidential"  # its text never goes to a model outside our machines

    name = models.CharField(max_length=200, unique=True)
    slug = models.SlugField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    groups = models.ManyToManyField(
        "auth.Group",
        blank=True,
        related_name="readable_collections",
        help_text="Groups whose members may read this collection (search, answers, sources, "
        "originals). Admins and auditors read every collection.",
    )
    sensitivity = models.CharField(
        max_length=16,
        choices=Sensitivity.choices,
        default=Sensitivity.INTERNAL,
        help_text="Confidential: passages from this collection are only ever sent to internal "
        "models (the offline model or LLM_BASE_URL), never to an external API.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Document(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued"
        PARSING = "parsing"
        CHUNKING = "chunking"
        EMBEDDING = "embedding"
        INDEXING = "indexing"
        READY = "ready"
        FAILED = "failed"
        DUPLICATE = "duplicate"

    IN_PROGRESS = (Status.PARSING, Status.CHUNKING, Status.EMBEDDING, Status.INDEXING)
    UNFINISHED = (Status.QUEUED, *IN_PROGRESS)
    FINISHED = (Status.READY, Status.FAILED, Status.DUPLICATE)

    collection = models.ForeignKey(Collection, on_delete=models.PROTECT, related_name="documents")
    name = models.CharField(max_length=255)
    file = models.FileField(max_length=300, blank=True)  # MEDIA_ROOT = DATA_DIR/uploads
    media_type = models.CharField(max_length=120, blank=True)
    size = models.BigIntegerField(default=0)
    sha256 = models.CharField(max_length=64, blank=True, db_index=True)
    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.QUEUED, db_index=True
    )
    stage = models.CharField(max_length=200, blank=True, help_text="What the pipeline is doing now")
    progress = models.PositiveSmallIntegerField(default=0)
    page_count = models.PositiveIntegerField(null=True, blank=True)
    chunk_count = models.PositiveIntegerField(null=True, blank=True)
    error = models.TextField(blank=True, help_text="Why the document failed, for the admin")
    warnings = models.JSONField(default=list, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    chunker_version = models.CharField(
        max_length=16, blank=True, help_text="rag.chunking.CHUNKER_VERSION it was indexed with"
    )
    # The same bytes may be indexed once per collection, so point ids cannot come from the
    # content hash alone (see collection_chunk_key); stored, so a re-index finds its old ids.
    chunk_key = models.CharField(
        max_length=100,
        blank=True,
        help_text="What its passage ids derive from; blank: its sha256 (indexed before ids "
        "were per collection)",
    )
    duplicate_of = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="duplicates"
    )
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        # the Documents page reads one page of the newest first, of thousands
        indexes = [models.Index(fields=["-created_at", "-id"], name="document_newest_first")]
        constraints = [
            # Deduplication is per collection: one live original per content, the rest point
            # to it. Enforced here so two simultaneous uploads cannot both become originals.
            models.UniqueConstraint(
                fields=["collection", "sha256"],
                condition=~models.Q(status__in=["failed", "duplicate"]),
                name="document_one_live_original_per_collection",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_finished(self) -> bool:
        return self.status in self.FINISHED
