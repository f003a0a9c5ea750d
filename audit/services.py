"""Writes to the audit log: append a record, redact content, apply the retention period.

Every write takes the chain head's row lock first, so appends and redactions happen one at a time
in seq order. The lock is held until the surrounding transaction commits: called inside a longer
transaction, `audit_append` makes other appends wait for it, so call it last. If that transaction
rolls back, the record goes with it, as the action it recorded did.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Max, Min
from django.utils import timezone

from . import chain
from .models import REDACTION_KIND, RETENTION_REASON, AuditContent, AuditRecord, ChainHead

logger = logging.getLogger(__name__)

SYSTEM = "system"
ANONYMOUS = "anonymous"


class AuditError(ValueError):
    """A request the audit log refuses; the message says why."""


def audit_append(
    *,
    kind: str,
    actor=None,
    subject: str = "",
    payload: dict | None = None,
    content: dict | None = None,
) -> AuditRecord:
    """Append one record. `payload` is metadata kept for good; `content` maps field names to the
    values that may later be redacted (question, answer, prompt…). Both must be plain JSON:
    TypeError or ValueError is raised here, before anything is written, if they are not."""
    if not isinstance(kind, str) or not kind.strip():
        raise AuditError("kind must be a non-empty string")
    if len(kind) > AuditRecord._meta.get_field("kind").max_length:
        raise AuditError(f"kind is too long: {kind[:40]}…")
    if len(subject) > AuditRecord._meta.get_field("subject").max_length:
        raise AuditError(f"subject is too long: {subject[:40]}…")
    payload = _json_object(payload, where="payload")
    content = _json_object(content, where="content")
    for field in content:
        if not field or len(field) > AuditContent._meta.get_field("field").max_length:
            raise AuditError(f"bad content field name: {field!r}")
    with transaction.atomic():
        head = _head_lock()
        return _append(
            head, kind=kind, actor=actor, subject=subject, payload=payload, content=content
        )


RedactionHandler = Callable[[list[int], "list[str] | None"], None]
_REDACTION_HANDLERS: dict[str, list[RedactionHandler]] = {}


def on_redaction(kind: str) -> Callable[[RedactionHandler], RedactionHandler]:
    """Register ``handler(seqs, fields)`` to run, in the same transaction, when content of
    records of ``kind`` is redacted (``fields`` None: all of it). Apps that keep a working copy
    of what they logged (the chat keeps its answers) erase that copy here, so a redaction
    removes the words everywhere, not only from the log."""

    def register(handler: RedactionHandler) -> RedactionHandler:
        _REDACTION_HANDLERS.setdefault(kind, []).append(handler)
        return handler

    return register


def _run_handlers(kind: str, seqs: list[int], fields: list[str] | None) -> None:
    for handler in _REDACTION_HANDLERS.get(kind, ()):
        handler(seqs, fields)


def audit_redact(
    *, record: AuditRecord, fields: Sequence[str] | None = None, by, reason: str
) -> AuditRecord:
    """Replace the content of `fields` (None: every field not yet redacted) by a marker, and
    record that as an audit.redaction event, which is returned. The chain still verifies.

    Redacting is done once: naming a field that is already redacted, or unknown, raises AuditError
    and changes nothing; so does a record with nothing left to redact. A field whose content no
    longer matches its digest is refused too, so redaction cannot wipe out evidence of tampering.
    """
    reason = chain.json_normalise((reason or "").strip(), where="reason")
    if not reason:
        raise AuditError("a redaction needs a reason")
    if isinstance(fields, str):
        raise TypeError("fields must be a sequence of field names, not a string")
    with transaction.atomic():
        head = _head_lock()  # before the content rows: every writer locks in the same order
        record = AuditRecord.objects.get(pk=record.pk)  # the commitments as stored
        rows = {
            row.field: row
            for row in AuditContent.objects.select_for_update().filter(record_id=record.pk)
        }
        if fields is None:
            targets = sorted(field for field, row in rows.items() if not row.is_redacted)
            if not targets:
                raise AuditError(f"record {record.seq} has no content left to redact")
        else:
            targets = sorted(set(fields))
            if not targets:
                raise AuditError("no fields to redact")
            unknown = [field for field in targets if field not in rows]
            if unknown:
                raise AuditError(f"record {record.seq} has no content field {unknown[0]!r}")
            done = [field for field in targets if rows[field].is_redacted]
            if done:
                raise AuditError(f"record {record.seq}: {done[0]!r} is already redacted")
        digests = {field: record.commitments.get(field) for field in targets}
        for field in targets:
            if chain.digest(rows[field].value) != digests[field]:
                raise AuditError(
                    f"record {record.seq}: content field {field!r} differs from its commitment; "
                    "it was tampered with and is kept as evidence"
                )
        event = _append(
            head,
            kind=REDACTION_KIND,
            actor=by,
            subject=f"audit:{record.seq}",
            payload={
                "target_seq": record.seq,
                "target_kind": record.kind,
                "fields": targets,
                "reason": reason,
                "digests": digests,
            },
            content={},
        )
        AuditContent.objects.filter(pk__in=[rows[field].pk for field in targets])._redact(
            redaction=event, by=_user_or_none(by), reason=reason
        )
        _run_handlers(record.kind, [record.seq], targets)
    return event


def audit_apply_retention(*, now: datetime | None = None) -> int:
    """Redact the content of records older than AUDIT_RETENTION_DAYS (0: keep forever) and
    return how many records that was. Records and the chain stay; one audit.redaction event
    summarises the run (the digests it removed are still in each record's commitments)."""
    days = settings.AUDIT_RETENTION_DAYS
    if days <= 0:
        return 0
    now = now or timezone.now()
    cutoff = now - timedelta(days=days)
    with transaction.atomic():
        head = _head_lock()
        up_to_seq = head.last_seq
        pending = AuditContent.objects.filter(
            redacted_at__isnull=True, record__created_at__lt=cutoff, record__seq__lte=up_to_seq
        )
        found = pending.aggregate(
            contents=Count("pk"),
            records=Count("record", distinct=True),
            first_seq=Min("record__seq"),
            last_seq=Max("record__seq"),
        )
        if not found["contents"]:
            return 0
        event = _append(
            head,
            kind=REDACTION_KIND,
            actor=None,
            subject=f"audit:{RETENTION_REASON}",
            payload={
                "reason": RETENTION_REASON,
                "retention_days": days,
                "cutoff": chain.timestamp(cutoff),
                "up_to_seq": up_to_seq,
                **found,
            },
            content={},
        )
        by_kind: dict[str, list[int]] = {}
        for kind, seq in pending.values_list("record__kind", "record__seq").distinct():
            by_kind.setdefault(kind, []).append(seq)
        redacted = pending._redact(redaction=event, by=None, reason=RETENTION_REASON)
        for kind, seqs in by_kind.items():
            _run_handlers(kind, sorted(seqs), None)
        if redacted != found["contents"]:  # impossible while we hold the lock; never half-done
            raise RuntimeError(f"retention redacted {redacted} fields, expected {found}")
    logger.info("audit retention: redacted %s records older than %s", found["records"], cutoff)
    return found["records"]


# ---------------------------------------------------------------------------------------------


def _head_lock() -> ChainHead:
    """Lock the chain head for the rest of the transaction (SQLite: the IMMEDIATE transaction
    already serialises writers). The row is created on first use, from the log itself should it
    have gone missing; ON CONFLICT DO NOTHING lets two first appends race safely."""
    head = ChainHead.objects.select_for_update().filter(pk=1).first()
    if head is not None:
        return head
    last = AuditRecord.objects.order_by("-seq").values_list("seq", "hash").first()
    if last is not None:
        logger.warning("audit chain head missing: rebuilt from record %s", last[0])
    seq, last_hash = last or (0, chain.GENESIS_HASH)
    ChainHead.objects.bulk_create(
        [ChainHead(pk=1, last_seq=seq, last_hash=last_hash)], ignore_conflicts=True
    )
    return ChainHead.objects.select_for_update().get(pk=1)


def _append(
    head: ChainHead, *, kind: str, actor, subject: str, payload: dict, content: dict
) -> AuditRecord:
    """Append after `head`, which the caller has locked, and move the head on."""
    user = _user_or_none(actor)
    if user is not None:
        actor_name = user.get_username()
    else:
        actor_name = SYSTEM if actor is None else ANONYMOUS
    commitments = {field: chain.digest(value) for field, value in content.items()}
    seq = head.last_seq + 1
    created_at = timezone.now()  # taken under the lock, so time never runs backwards along seq
    record_hash = chain.record_hash(
        prev_hash=head.last_hash,
        seq=seq,
        kind=kind,
        actor_name=actor_name,
        subject=subject,
        created_at=created_at,
        payload=payload,
        commitments=commitments,
    )
    record = AuditRecord.objects.create(
        seq=seq,
        kind=kind,
        actor=user,
        actor_name=actor_name,
        subject=subject,
        created_at=created_at,
        payload=payload,
        commitments=commitments,
        prev_hash=head.last_hash,
        hash=record_hash,
    )
    AuditContent.objects.bulk_create(
        [AuditContent(record=record, field=field, value=value) for field, value in content.items()]
    )
    ChainHead.objects.filter(pk=head.pk).update(last_seq=seq, last_hash=record_hash)
    head.last_seq, head.last_hash = seq, record_hash
    return record


def _user_or_none(actor):
    """A signed-in user, or None for the system and for anonymous visitors (AnonymousUser)."""
    if actor is None or not getattr(actor, "is_authenticated", False):
        return None
    return actor


def _json_object(value: dict | None, *, where: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise TypeError(f"{where} must be a dict, got {type(value).__name__}")
    return chain.json_normalise(value, where=where)
