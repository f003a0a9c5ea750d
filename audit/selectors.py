"""Reads of the audit log: verify the chain, list and export records."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, time

from django.db.models import Prefetch, QuerySet
from django.utils import timezone

from . import chain
from .models import (
    REDACTION_KIND,
    RETENTION_REASON,
    AuditContent,
    AuditRecord,
    ChainHead,
    redaction_marker,
)

CHUNK = 2000  # records per fetch: verifying or exporting a million never loads them all
EXPORT_FORMATS = ("jsonl", "csv")
CSV_COLUMNS = [
    "seq", "kind", "actor", "actor_id", "subject", "created_at", "payload", "commitments",
    "content", "redacted", "prev_hash", "hash",
]  # fmt: skip
CSV_JSON_COLUMNS = {"payload", "commitments", "content", "redacted"}


@dataclass(frozen=True)
class ChainReport:
    """The outcome of a verification. `count`: records found intact, in order, before the first
    bad one (all of them when ok). `bad_seq`: that record's seq, or the missing one's."""

    ok: bool
    count: int
    bad_seq: int | None
    reason: str
    bad_id: int | None = None
    bad_kind: str = ""

    @property
    def summary(self) -> str:
        if self.ok:
            return f"ok {self.count} records"
        if self.bad_id is not None:
            return (
                f"record {self.bad_seq} (kind {self.bad_kind}, id {self.bad_id}) does not match: "
                f"{self.reason}"
            )
        if self.bad_seq is not None:
            return f"record {self.bad_seq}: {self.reason}"
        return self.reason


def audit_verify() -> ChainReport:
    """Walk the chain in seq order and stop at the first record that does not check out:
    a gap in seq, a prev_hash that does not link, a hash that does not recompute, content that
    differs from its commitment, or a redaction that no audit.redaction event accounts for.
    Then compare the end of the log with the chain head, to notice records cut off the tail."""
    head = ChainHead.objects.filter(pk=1).first()
    records = _with_content(AuditRecord.objects.order_by("seq"))
    if head is not None:
        # Records appended while we read are for the next verification.
        records = records.filter(seq__lte=head.last_seq)
    count, prev_seq, prev_hash = 0, 0, chain.GENESIS_HASH
    for record in records.iterator(chunk_size=CHUNK):
        problem = _check(record, prev_seq=prev_seq, prev_hash=prev_hash)
        if problem:
            return ChainReport(
                ok=False,
                count=count,
                bad_seq=record.seq,
                reason=problem,
                bad_id=record.pk,
                bad_kind=record.kind,
            )
        count, prev_seq, prev_hash = count + 1, record.seq, record.hash
    if head is None:
        if count:
            return ChainReport(False, count, None, "the chain head (audit_chainhead) is missing")
        return ChainReport(True, 0, None, "")
    if head.last_seq != prev_seq:
        return ChainReport(
            ok=False,
            count=count,
            bad_seq=prev_seq + 1,
            reason=f"missing: the log ends at record {prev_seq}, the chain head is at "
            f"record {head.last_seq}",
        )
    if head.last_hash != prev_hash:
        return ChainReport(
            False, count, prev_seq, f"record {prev_seq}'s hash differs from the chain head's"
        )
    return ChainReport(True, count, None, "")


def _check(record: AuditRecord, *, prev_seq: int, prev_hash: str) -> str:
    """Why `record` does not belong after (prev_seq, prev_hash), or "" if it does."""
    if record.seq != prev_seq + 1:
        return f"sequence gap after {prev_seq}" if prev_seq else "the chain does not start at 1"
    if record.prev_hash != prev_hash:
        if prev_seq:
            return f"prev_hash does not link to record {prev_seq}"
        return "prev_hash of the first record is not the genesis hash"
    try:
        recomputed = chain.record_hash(
            prev_hash=record.prev_hash,
            seq=record.seq,
            kind=record.kind,
            actor_name=record.actor_name,
            subject=record.subject,
            created_at=record.created_at,
            payload=record.payload,
            commitments=record.commitments,
        )
    except (TypeError, ValueError) as exc:  # e.g. a payload edited into something odd
        return f"hash mismatch ({exc})"
    if recomputed != record.hash:
        return "hash mismatch"
    commitments = record.commitments if isinstance(record.commitments, dict) else {}
    contents = {row.field: row for row in record.contents.all()}
    for field in sorted(set(commitments) | set(contents)):
        row = contents.get(field)
        if row is None:
            return f"content field '{field}' is missing"
        if field not in commitments:
            return f"content field '{field}' has no commitment"
        if row.redacted_at is None:
            try:
                value_digest = chain.digest(row.value)
            except (TypeError, ValueError):
                value_digest = ""
            if value_digest != commitments[field]:
                return f"content field '{field}' differs from its commitment"
        elif problem := _check_redaction(record, row, commitments[field]):
            return f"content field '{field}' {problem}"
    return ""


def _check_redaction(record: AuditRecord, row: AuditContent, commitment: str) -> str:
    """A redacted field must hold the marker and be accounted for by a later audit.redaction
    event naming it (or, for retention, covering the record's age)."""
    if row.value != redaction_marker(row.redaction_reason):
        return "is marked redacted but does not hold the redaction marker"
    event = row.redaction
    if event is None or event.kind != REDACTION_KIND or event.seq <= record.seq:
        return "is redacted without an audit.redaction event"
    payload = event.payload if isinstance(event.payload, dict) else {}
    if payload.get("reason") != row.redaction_reason:
        return f"is redacted for a reason event {event.seq} does not give"
    if "target_seq" in payload:
        covered = (
            payload["target_seq"] == record.seq
            and row.field in payload.get("fields", [])
            and payload.get("digests", {}).get(row.field) == commitment
        )
    else:
        try:
            cutoff = datetime.fromisoformat(payload.get("cutoff", ""))
        except (TypeError, ValueError):
            cutoff = None
        covered = (
            row.redaction_reason == RETENTION_REASON
            and cutoff is not None
            and record.created_at < cutoff
            and record.seq <= payload.get("up_to_seq", 0)
        )
    return "" if covered else f"is redacted but event {event.seq} does not cover it"


# ---------------------------------------------------------------------------------------------
# Listing and export
# ---------------------------------------------------------------------------------------------


def audit_record_list(
    *,
    kind: str | None = None,
    subject: str | None = None,
    actor_name: str | None = None,
    since: date | datetime | None = None,
    until: date | datetime | None = None,
) -> QuerySet[AuditRecord]:
    """Records in seq order, filtered; `since` is inclusive, `until` exclusive (a date means the
    start of that day in the site's time zone). Content is prefetched for audit_record_json."""
    records = AuditRecord.objects.order_by("seq")
    if kind:
        records = records.filter(kind=kind)
    if subject:
        records = records.filter(subject=subject)
    if actor_name:
        records = records.filter(actor_name=actor_name)
    if since is not None:
        records = records.filter(created_at__gte=_moment(since))
    if until is not None:
        records = records.filter(created_at__lt=_moment(until))
    return _with_content(records)


def audit_record_get(*, seq: int) -> AuditRecord:
    """Raises AuditRecord.DoesNotExist."""
    return _with_content(AuditRecord.objects.all()).get(seq=seq)


def audit_record_json(record: AuditRecord, *, include_content: bool = True) -> dict:
    """One record as JSON, with what an outsider needs to recompute its hash: the metadata,
    the commitments, and the content (redacted fields show the marker and who redacted them)."""
    data = {
        "seq": record.seq,
        "kind": record.kind,
        "actor": record.actor_name,
        "actor_id": record.actor_id,
        "subject": record.subject,
        "created_at": chain.timestamp(record.created_at),
        "payload": record.payload,
        "commitments": record.commitments,
    }
    rows = sorted(record.contents.all(), key=lambda row: row.field)
    if include_content:
        data["content"] = {row.field: row.value for row in rows}
    data["redacted"] = {
        row.field: {
            "at": chain.timestamp(row.redacted_at),
            "by": row.redacted_by.get_username() if row.redacted_by else None,
            "reason": row.redaction_reason,
        }
        for row in rows
        if row.redacted_at is not None
    }
    data["prev_hash"] = record.prev_hash
    data["hash"] = record.hash
    return data


def audit_export(
    *,
    fmt: str = "jsonl",
    since: date | datetime | None = None,
    kind: str | None = None,
    records: Iterable[AuditRecord] | None = None,
) -> Iterator[str]:
    """Lines of an export, each ending in "\\n": one JSON object per record (jsonl), or CSV with
    a header row and the nested columns JSON-encoded. `records` (a queryset, e.g. the auditor
    UI's filtered list) replaces the default of every record; `since` and `kind` then narrow it.
    Raises ValueError for an unknown format, before anything is read."""
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"unknown export format {fmt!r}: use one of {', '.join(EXPORT_FORMATS)}")
    queryset = AuditRecord.objects.all() if records is None else records
    if since is not None:
        queryset = queryset.filter(created_at__gte=_moment(since))
    if kind:
        queryset = queryset.filter(kind=kind)
    rows = _with_content(queryset.order_by("seq")).iterator(chunk_size=CHUNK)
    return _jsonl(rows) if fmt == "jsonl" else _csv(rows)


def _jsonl(records: Iterator[AuditRecord]) -> Iterator[str]:
    for record in records:
        yield json.dumps(audit_record_json(record), ensure_ascii=False) + "\n"


def _csv(records: Iterator[AuditRecord]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")

    def flush() -> str:
        line = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return line

    writer.writeheader()
    yield flush()
    for record in records:
        data = audit_record_json(record)
        for column in CSV_JSON_COLUMNS:
            data[column] = json.dumps(data[column], ensure_ascii=False, sort_keys=True)
        writer.writerow(data)
        yield flush()


def _with_content(records: QuerySet[AuditRecord]) -> QuerySet[AuditRecord]:
    # prefetch_related(None) first: a queryset from audit_record_list already has this prefetch,
    # and Django refuses the same lookup twice.
    return records.prefetch_related(None).prefetch_related(
        Prefetch(
            "contents",
            queryset=AuditContent.objects.select_related("redaction", "redacted_by"),
        )
    )


def _moment(value: date | datetime) -> datetime:
    if isinstance(value, datetime):
        return value if timezone.is_aware(value) else timezone.make_aware(value)
    return timezone.make_aware(datetime.combine(value, time.min))
