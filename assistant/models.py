from django.conf import settings
from django.db import models


class Conversation(models.Model):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="conversations"
    )
    title = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at", "-id"]

    def __str__(self) -> str:
        return self.title


class Message(models.Model):
    """One turn. An assistant turn keeps everything needed to explain it later: what was searched
    and found (with scores), the exact prompt, the model and what it reported, its reasoning, the
    citations with their verdicts, usage and timings. Sources are stored as they were shown, so a
    reload or a re-index never renumbers a citation."""

    class Role(models.TextChoices):
        USER = "user"
        ASSISTANT = "assistant"

    class Status(models.TextChoices):
        ANSWERED = "answered"  # the model's answer, citations verified
        EXTRACTIVE = "extractive"  # the model's answer failed verification: passages quoted
        # the model's answer failed verification and no passage matches the question closely
        # enough to quote: nothing is shown as an answer
        WITHHELD = "withheld"
        ABSTAINED = "abstained"  # the model said the documents do not answer it
        NO_SOURCES = "no_sources"  # nothing relevant was found: the model was not called
        INCOMPLETE = "incomplete"  # the stream broke: what arrived is kept, flagged
        ERROR = "error"  # no answer: the reason is in `error`
        REFUSED = "refused"  # the routing policy allows no model for this context
        STOPPED = "stopped"  # the user stopped it: what was written until then is kept

    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="messages"
    )
    role = models.CharField(max_length=16, choices=Role.choices)
    content = models.TextField(blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, blank=True)
    error = models.TextField(blank=True)

    # assistant turns: the record of how the answer was made
    question = models.TextField(blank=True)
    standalone_query = models.TextField(blank=True)
    collections = models.JSONField(null=True, blank=True, help_text="slugs searched; null: all")
    sources = models.JSONField(default=list, blank=True)
    prompt = models.JSONField(default=list, blank=True, help_text="the messages sent")
    template_version = models.CharField(max_length=50, blank=True)
    model_answer = models.TextField(blank=True, help_text="what the model wrote, before fallback")
    reasoning = models.TextField(blank=True)
    reasoning_source = models.CharField(
        max_length=16, blank=True, help_text="model: its own trace; pipeline: ours"
    )
    llm_id = models.CharField(max_length=100, blank=True)
    provider = models.CharField(max_length=100, blank=True)
    model = models.CharField(max_length=200, blank=True, help_text="as the provider reported it")
    parameters = models.JSONField(default=dict, blank=True)
    route = models.CharField(max_length=100, blank=True)
    route_reason = models.TextField(blank=True)
    route_trace = models.JSONField(
        default=dict, blank=True, help_text="the routing decision, every attempt, waits"
    )
    citations = models.JSONField(default=list, blank=True)
    invalid_markers = models.JSONField(default=list, blank=True)
    uncited_sentences = models.JSONField(default=list, blank=True)
    usage = models.JSONField(default=dict, blank=True)
    timings = models.JSONField(default=dict, blank=True, help_text="milliseconds")
    audit_seq = models.BigIntegerField(
        null=True, blank=True, help_text="this answer's record in the audit log"
    )
    # Regenerate and edit-and-resend never delete a turn (the audit log keeps every answer):
    # the turns they replace are hidden from the chat and from the model's history instead.
    superseded = models.BooleanField(
        default=False, help_text="replaced by a regenerated answer or an edited question"
    )
    replaces = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="replaced_by",
        help_text="the answer or question this one replaces",
    )

    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.role}: {self.content[:60]}"

    @property
    def has_unsupported(self) -> bool:
        return bool(self.invalid_markers) or any(
            c.get("verdict") == "unsupported" for c in self.citations
        )

    @property
    def is_uncited(self) -> bool:
        """An answer that makes claims without citing any source."""
        return self.status == self.Status.ANSWERED and not self.citations


class Feedback(models.Model):
    """A user's verdict on an answer they were given: one per user and answer, changeable."""

    class Rating(models.IntegerChoices):
        UP = 1
        DOWN = -1

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="feedback")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="feedback"
    )
    rating = models.SmallIntegerField(choices=Rating.choices)
    comment = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["message", "user"], name="one_feedback_per_answer")
        ]

    def __str__(self) -> str:
        return f"{'+' if self.rating > 0 else '-'} on message {self.message_id}"


class CachedAnswer(models.Model):
    """A grounded answer that may be served again for the same question.

    Keyed by the question's embedding (close enough counts), who may read what (the same
    readable collections), the model, the corpus version (documents of those collections
    unchanged) and the routing inputs (sensitivity, policy, residency unchanged); dropped when
    a document it cited is re-indexed or deleted, or when a fresh route would not allow its
    model."""

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="cached_as")
    question = models.TextField()
    vector = models.JSONField(help_text="the question's unit embedding")
    access_key = models.CharField(max_length=64, db_index=True)
    llm_id = models.CharField(max_length=100)
    corpus_version = models.CharField(max_length=64)
    # The routing inputs it was answered under: the searched collections' sensitivity, the
    # routing policy's version, the model's residency (see cache.routing_key).
    route_key = models.CharField(max_length=64, default="")
    cited_document_ids = models.JSONField(default=list)
    hits = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"cached answer to {self.question[:60]!r}"
