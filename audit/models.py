"""The audit log: an append-only hash chain of records, each with redactable content.

The chain (see chain.py) covers a record's metadata and a digest per content field, not the
content itself: content can be redacted (privacy, retention) and the chain still verifies, while
any other change to content no longer matches its digest.

Append-only is enforced twice: here, against accidents in Python code, and on PostgreSQL by
triggers (migration 0002), against raw SQL. Writes go through audit.services only.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

# The event that accounts for redacted content, and the reason given by the retention period.
REDACTION_KIND = "audit.redaction"
RETENTION_REASON = "retention"


class AppendOnlyError(Exception):
    """An attempt to change or delete what the audit log has recorded."""


def _only_clears(kwargs: dict, field: str) -> bool:
    """Deleting a user makes Django set the user's foreign keys to NULL with a queryset update
    (on_delete=SET_NULL). That is the one update allowed: the name, which the hash covers, stays."""
    return set(kwargs) <= {field, f"{field}_id"} and all(v is None for v in kwargs.values())


class AuditRecordQuerySet(models.QuerySet):
    def update(self, **kwargs):
        if kwargs and _only_clears(kwargs, "actor"):
            return super().update(**kwargs)
        raise AppendOnlyError("audit records are append-only: they cannot be updated")

    def bulk_update(self, objs, fields, batch_size=None):
        raise AppendOnlyError("audit records are append-only: they cannot be updated")

    def delete(self):
        raise AppendOnlyError("audit records are append-only: they cannot be deleted")

    delete.alters_data = True
    delete.queryset_only = True

    def _raw_delete(self, using):
        raise AppendOnlyError("audit records are append-only: they cannot be deleted")


class AuditRecord(models.Model):
    seq = models.BigIntegerField(unique=True, help_text="position in the chain: 1, 2, 3…")
    kind = models.CharField(max_length=100, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="audit_records",
    )
    actor_name = models.CharField(max_length=150, help_text='username, or "system"')
    subject = models.CharField(max_length=200, blank=True, db_index=True)
    created_at = models.DateTimeField(db_index=True)
    payload = models.JSONField(default=dict, help_text="metadata that is never redacted")
    commitments = models.JSONField(
        default=dict, help_text="content field -> sha256 of its canonical JSON"
    )
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)

    objects = AuditRecordQuerySet.as_manager()

    class Meta:
        ordering = ["seq"]
        # Related lookups and the deletion collector use the base manager: make it ours.
        base_manager_name = "objects"

    def __str__(self) -> str:
        return f"#{self.seq} {self.kind} {self.subject}".rstrip()

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise AppendOnlyError("audit records are append-only: they cannot be updated")
        kwargs["force_insert"] = True  # a preset primary key must never turn this into an UPDATE
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnlyError("audit records are append-only: they cannot be deleted")


class AuditContentQuerySet(models.QuerySet):
    def update(self, **kwargs):
        if kwargs and _only_clears(kwargs, "redacted_by"):
            return super().update(**kwargs)
        raise AppendOnlyError("audit content can only be redacted, with audit_redact()")

    def bulk_update(self, objs, fields, batch_size=None):
        raise AppendOnlyError("audit content can only be redacted, with audit_redact()")

    def delete(self):
        raise AppendOnlyError("audit content cannot be deleted; redact it with audit_redact()")

    delete.alters_data = True
    delete.queryset_only = True

    def _raw_delete(self, using):
        raise AppendOnlyError("audit content cannot be deleted; redact it with audit_redact()")

    def _redact(self, *, redaction: AuditRecord, by, reason: str) -> int:
        """For audit.services only: replace the content of the unredacted rows in this queryset
        by the redaction marker. `redaction` is the audit.redaction event that records it."""
        return super().update(
            value=redaction_marker(reason),
            redacted_at=redaction.created_at,
            redacted_by=by,
            redaction_reason=reason,
            redaction=redaction,
        )


def redaction_marker(reason: str) -> dict:
    """What a redacted field holds instead of its content. The database trigger requires exactly
    this, so a "redaction" cannot be used to slip in different content."""
    return {"redacted": True, "reason": reason}


class AuditContent(models.Model):
    """One redactable field of a record (question, answer, prompt…); its digest is in the chain."""

    record = models.ForeignKey(AuditRecord, on_delete=models.CASCADE, related_name="contents")
    field = models.CharField(max_length=100)
    # null=True: Django stores a Python None as SQL NULL, which reads back as None all the same.
    value = models.JSONField(null=True)
    redacted_at = models.DateTimeField(null=True, blank=True)
    redacted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    redaction_reason = models.TextField(blank=True)
    # The audit.redaction event in the chain that accounts for this redaction: without one,
    # verification fails, so content cannot disappear off the record.
    redaction = models.ForeignKey(
        AuditRecord,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="redacted_contents",
    )

    objects = AuditContentQuerySet.as_manager()

    class Meta:
        base_manager_name = "objects"
        constraints = [
            models.UniqueConstraint(fields=["record", "field"], name="audit_content_unique_field")
        ]

    def __str__(self) -> str:
        return f"{self.record_id}.{self.field}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise AppendOnlyError("audit content can only be redacted, with audit_redact()")
        kwargs["force_insert"] = True
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnlyError("audit content cannot be deleted; redact it with audit_redact()")

    @property
    def is_redacted(self) -> bool:
        return self.redacted_at is not None


class ChainHead(models.Model):
    """The single row (id 1) every append locks: appends queue on it, so two never take the same
    seq or fork the chain. It also holds the last seq and hash, which verification compares with
    the end of the log to notice records removed from the tail."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    last_seq = models.BigIntegerField(default=0)
    last_hash = models.CharField(max_length=64)

    class Meta:
        constraints = [models.CheckConstraint(condition=models.Q(id=1), name="audit_single_head")]

    def __str__(self) -> str:
        return f"head at #{self.last_seq}"
