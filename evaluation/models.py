"""One row per evaluation run: what was measured, on what, with which settings, and the result.

Runs are compared with the previous run of the same kind and dataset (see services), so a
regression shows up as a delta and, with ``--gate``, as a non-zero exit."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone


class EvalRun(models.Model):
    class Kind(models.TextChoices):
        RETRIEVAL = "retrieval", "Retrieval"
        ANSWERS = "answers", "Answers"

    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.RETRIEVAL)
    dataset = models.CharField(
        max_length=500, help_text="Built-in dataset name or the absolute path of a JSONL file"
    )
    parameters = models.JSONField(
        default=dict, blank=True, help_text="k, limit, modes and the retriever settings"
    )
    model_ids = models.JSONField(
        default=dict,
        blank=True,
        help_text="The models under test: {role: id}, e.g. embedder, generator, judge",
    )
    prompt_version = models.CharField(
        max_length=100, blank=True, help_text="The answer prompt's template version"
    )
    corpus_version = models.CharField(
        max_length=64, blank=True, help_text="Digest of what was searched: changes with the corpus"
    )
    corpus_description = models.TextField(blank=True)
    questions = models.PositiveIntegerField(default=0)
    metrics = models.JSONField(
        default=dict, blank=True, help_text="{group: {metric: value}}: a mode, or a question set"
    )
    details = models.JSONField(
        default=dict,
        blank=True,
        help_text="What explains the metrics: per-question results, status counts, calibration",
    )
    gate = models.JSONField(
        null=True, blank=True, help_text="The regression gate's verdict, when it was asked for"
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ("-created_at", "-id")
        indexes = [models.Index(fields=["kind", "dataset", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.kind} on {self.dataset} #{self.pk}"


class EvalJob(models.Model):
    """A run asked for on the Evaluation page and done by a Celery worker: its progress while it
    runs (polled by the page), then the EvalRun it stored, or why it failed."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    UNFINISHED = (Status.QUEUED, Status.RUNNING)

    kind = models.CharField(max_length=20, choices=EvalRun.Kind.choices)
    dataset = models.CharField(max_length=100)
    options = models.JSONField(
        default=dict, blank=True, help_text="The command's options, as the service takes them"
    )
    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.QUEUED, db_index=True
    )
    progress = models.PositiveSmallIntegerField(default=0)
    stage = models.CharField(
        max_length=300, blank=True, help_text="The latest progress line, as `eval` prints it"
    )
    error = models.TextField(blank=True, help_text="Why the run failed")
    run = models.ForeignKey(
        EvalRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="jobs"
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("-created_at", "-id")

    def __str__(self) -> str:
        return f"{self.kind} on {self.dataset} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status not in self.UNFINISHED

    # A running job writes its progress every few seconds; this long without a write, the worker
    # doing it has most likely stopped (killed, restarted) mid-run.
    STALLED_AFTER = timedelta(minutes=10)

    @property
    def stalled(self) -> bool:
        return (
            self.status == self.Status.RUNNING
            and timezone.now() - self.updated_at > self.STALLED_AFTER
        )

    @property
    def notice(self) -> str:
        """What the page says about a run that went quiet."""
        if not self.stalled:
            return ""
        minutes = int((timezone.now() - self.updated_at).total_seconds() // 60)
        return (
            f"No progress for {minutes} minutes: the worker running it has probably stopped. "
            "With a Redis broker the run starts again when its task is redelivered; "
            "otherwise start it again."
        )
