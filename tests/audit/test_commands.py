"""`manage.py audit verify | export | retention`, held to the contract in ARCHITECTURE.md."""

import csv
import hashlib
import io
import json
from datetime import timedelta
from unittest import mock

import pytest
from django.utils import timezone

from audit import selectors, services
from audit.models import AuditRecord

from .conftest import append_answer, run_audit

pytestmark = pytest.mark.django_db


class TestVerify:
    def test_empty_log(self):
        assert run_audit("verify") == (0, "ok 0 records\n", "")

    def test_intact_chain(self, chain, auditor):
        services.audit_redact(record=chain[1], by=auditor, reason="privacy")
        assert run_audit("verify") == (0, "ok 6 records\n", "")

    @pytest.mark.parametrize(
        ("sql", "bad_seq", "reason"),
        [
            pytest.param(
                "UPDATE audit_auditrecord SET payload = jsonb_set(payload, '{model}', '\"x\"') "
                "WHERE seq = 3",
                3,
                "hash mismatch",
                id="payload",
            ),
            pytest.param(
                "UPDATE audit_auditcontent SET value = '\"forged\"' WHERE field = 'answer' "
                "AND record_id = (SELECT id FROM audit_auditrecord WHERE seq = 3)",
                3,
                "content field 'answer' differs from its commitment",
                id="content",
            ),
            pytest.param(
                "UPDATE audit_auditrecord SET hash = repeat('a', 64) WHERE seq = 3",
                3,
                "hash mismatch",
                id="hash",
            ),
            pytest.param(
                "UPDATE audit_auditrecord SET actor_name = 'someone else' WHERE seq = 3",
                3,
                "hash mismatch",
                id="actor",
            ),
            pytest.param(
                "UPDATE audit_auditrecord SET created_at = created_at - interval '1 day' "
                "WHERE seq = 3",
                3,
                "hash mismatch",
                id="time",
            ),
            pytest.param(
                "DELETE FROM audit_auditcontent WHERE record_id = "
                "(SELECT id FROM audit_auditrecord WHERE seq = 3);"
                "DELETE FROM audit_auditrecord WHERE seq = 3",
                4,
                "sequence gap after 2",
                id="deleted",
            ),
            pytest.param(
                "UPDATE audit_auditrecord SET seq = -1 WHERE seq = 2;"
                "UPDATE audit_auditrecord SET seq = 2 WHERE seq = 3;"
                "UPDATE audit_auditrecord SET seq = 3 WHERE seq = -1",
                2,
                "prev_hash does not link to record 1",
                id="swapped",
            ),
            pytest.param(
                "DELETE FROM audit_auditcontent WHERE field = 'question' "
                "AND record_id = (SELECT id FROM audit_auditrecord WHERE seq = 4)",
                4,
                "content field 'question' is missing",
                id="content-deleted",
            ),
            pytest.param(
                "INSERT INTO audit_auditcontent (record_id, field, value, redaction_reason) "
                "SELECT id, 'extra', '\"planted\"', '' FROM audit_auditrecord WHERE seq = 4",
                4,
                "content field 'extra' has no commitment",
                id="content-added",
            ),
            pytest.param(
                'UPDATE audit_auditcontent SET value = \'{"redacted": true, "reason": "x"}\', '
                "redacted_at = now(), redaction_reason = 'x' WHERE field = 'answer' "
                "AND record_id = (SELECT id FROM audit_auditrecord WHERE seq = 2)",
                2,
                "content field 'answer' is redacted without an audit.redaction event",
                id="redacted-off-the-record",
            ),
        ],
    )
    def test_tampering_names_the_first_bad_record(self, chain, tamper, sql, bad_seq, reason):
        tamper(sql)
        bad_id = AuditRecord.objects.get(seq=bad_seq).pk  # after a swap, no longer the original

        code, out, message = run_audit("verify")

        assert (code, out) == (1, "")
        assert message == f"record {bad_seq} (kind answer, id {bad_id}) does not match: {reason}"

    def test_records_cut_off_the_tail(self, chain, tamper):
        tamper("DELETE FROM audit_auditcontent WHERE record_id = %s", [chain[-1].pk])
        tamper("DELETE FROM audit_auditrecord WHERE id = %s", [chain[-1].pk])
        code, _, message = run_audit("verify")
        assert code == 1
        assert (
            message == "record 5: missing: the log ends at record 4, the chain head is at record 5"
        )


def exported(*args) -> str:
    code, out, message = run_audit("export", *args)
    assert code == 0, message
    return out


def recompute(line: dict, prev_hash: str) -> str:
    """An outsider's check of an exported record, with nothing but hashlib and json."""
    body = {
        key: line[key] for key in ("seq", "kind", "subject", "created_at", "payload", "commitments")
    }
    body["actor_name"] = line["actor"]
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256((prev_hash + text).encode()).hexdigest()


class TestExport:
    def test_jsonl_can_be_verified_by_an_outsider(self, chain, auditor):
        services.audit_redact(record=chain[0], fields=["answer"], by=auditor, reason="privacy")

        lines = [json.loads(line) for line in exported().splitlines()]

        assert [line["seq"] for line in lines] == [1, 2, 3, 4, 5, 6]
        prev = "0" * 64
        for line in lines:
            assert line["prev_hash"] == prev and recompute(line, prev) == line["hash"]
            for field, value in line["content"].items():
                if field not in line["redacted"]:
                    text = json.dumps(value, sort_keys=True, separators=(",", ":"))
                    assert hashlib.sha256(text.encode()).hexdigest() == line["commitments"][field]
            prev = line["hash"]
        first = lines[0]
        assert first["actor"] == "olga" and first["subject"] == "message:1"
        assert first["content"]["answer"] == {"redacted": True, "reason": "privacy"}
        assert first["content"]["question"] == "question 1?"
        assert first["redacted"]["answer"]["by"] == "ivan"
        assert first["redacted"]["answer"]["reason"] == "privacy"
        assert lines[5]["kind"] == "audit.redaction" and lines[5]["content"] == {}
        without = selectors.audit_record_json(
            selectors.audit_record_get(seq=1), include_content=False
        )
        assert "content" not in without and without["redacted"] == first["redacted"]

    def test_csv_has_a_header_and_json_columns(self, chain):
        rows = list(csv.DictReader(io.StringIO(exported("--format", "csv"))))
        jsonl = [json.loads(line) for line in exported("--format", "jsonl").splitlines()]

        assert list(rows[0]) == selectors.CSV_COLUMNS
        assert len(rows) == 5
        for row, line in zip(rows, jsonl, strict=True):
            for column in selectors.CSV_JSON_COLUMNS:
                assert json.loads(row[column]) == line[column]
            assert (int(row["seq"]), row["hash"], row["created_at"]) == (
                line["seq"],
                line["hash"],
                line["created_at"],
            )

    def test_since_and_kind_filter(self):
        long_ago = timezone.now() - timedelta(days=10)
        with mock.patch.object(timezone, "now", return_value=long_ago):
            append_answer(1)
        append_answer(2)
        services.audit_append(kind="auth.login")
        since = (timezone.now() - timedelta(days=1)).date().isoformat()

        def seqs(*args) -> list[int]:
            return [json.loads(line)["seq"] for line in exported(*args).splitlines()]

        assert seqs() == [1, 2, 3]
        assert seqs("--since", since) == [2, 3]
        assert seqs("--since", since, "--kind", "answer") == [2]
        rows = list(csv.DictReader(io.StringIO(exported("--format", "csv", "--since", since))))
        assert [row["seq"] for row in rows] == ["2", "3"]

    def test_a_filtered_queryset_can_be_exported(self, chain):
        records = selectors.audit_record_list(subject="message:4")
        lines = list(selectors.audit_export(records=records))
        assert [json.loads(line)["seq"] for line in lines] == [4]
        assert all(line.endswith("\n") for line in lines)

    @pytest.mark.parametrize(
        ("args", "message"),
        [
            (["--format", "xml"], "--format must be one of jsonl, csv, got 'xml'"),
            (["--since", "2025-13-01"], "--since must be a date YYYY-MM-DD, got '2025-13-01'"),
            (["--since", "yesterday"], "--since must be a date YYYY-MM-DD"),
        ],
    )
    def test_bad_arguments_exit_2(self, chain, args, message):
        code, out, error = run_audit("export", *args)
        assert (code, out) == (2, "")
        assert message in error


def test_retention_command(settings):
    settings.AUDIT_RETENTION_DAYS = 7
    with mock.patch.object(timezone, "now", return_value=timezone.now() - timedelta(days=8)):
        append_answer(1)
    append_answer(2)
    assert run_audit("retention")[:2] == (0, "redacted 1 records\n")
    assert run_audit("retention")[:2] == (0, "redacted 0 records\n")
    assert run_audit("verify")[:2] == (0, "ok 3 records\n")
