"""Appending, the ORM's refusals, redaction, retention and concurrent appends, on real Postgres."""

import threading
from datetime import timedelta
from unittest import mock

import pytest
from django.contrib.auth.models import AnonymousUser
from django.db import connection
from django.utils import timezone

from audit import chain, selectors, services
from audit.models import AppendOnlyError, AuditContent, AuditRecord, ChainHead

from .conftest import append_answer

pytestmark = pytest.mark.django_db


class TestAppend:
    def test_first_record_starts_the_chain(self, olga):
        record = append_answer(1, actor=olga)

        record = AuditRecord.objects.get(pk=record.pk)  # as stored, not as built
        assert (record.seq, record.prev_hash) == (1, "0" * 64)
        assert (record.kind, record.actor, record.actor_name) == ("answer", olga, "olga")
        assert record.commitments == {
            "question": chain.digest("question 1?"),
            "answer": chain.digest("answer 1 [1]"),
            "reasoning": chain.digest(None),
        }
        assert record.hash == chain.record_hash(
            prev_hash="0" * 64,
            seq=1,
            kind="answer",
            actor_name="olga",
            subject="message:1",
            created_at=record.created_at,
            payload=record.payload,
            commitments=record.commitments,
        )
        stored = {c.field: c.value for c in record.contents.all()}
        assert stored == {"question": "question 1?", "answer": "answer 1 [1]", "reasoning": None}
        assert selectors.audit_verify() == selectors.ChainReport(True, 1, None, "")

    def test_records_link_in_seq_order(self, chain):
        records = list(AuditRecord.objects.order_by("seq"))
        assert [r.seq for r in records] == [1, 2, 3, 4, 5]
        for previous, record in zip(records, records[1:], strict=False):
            assert record.prev_hash == previous.hash
            assert record.created_at >= previous.created_at
        head = ChainHead.objects.get()
        assert (head.last_seq, head.last_hash) == (5, records[-1].hash)
        assert selectors.audit_verify().count == 5

    def test_values_survive_the_database_round_trip(self):
        """jsonb rewrites numbers and reorders keys: the hash must still recompute."""
        services.audit_append(
            kind="answer",
            payload={"score": 0.1, "tiny": 1e-7, "big": 2**70, "neg": -0.0, "z": 1, "a": [1.5]},
            content={"answer": 'Zürich — 東京 😀 "quoted" \\ \n', "chunks": [{"b": 2, "a": 1}]},
        )
        assert selectors.audit_verify().ok

    def test_actor_names(self, olga):
        assert services.audit_append(kind="auth.login", actor=olga).actor_name == "olga"
        system = services.audit_append(kind="document.reindex")
        assert (system.actor, system.actor_name) == (None, "system")
        anonymous = services.audit_append(kind="auth.login_failed", actor=AnonymousUser())
        assert (anonymous.actor, anonymous.actor_name) == (None, "anonymous")

    def test_deleting_a_user_keeps_their_name_and_the_chain(self, olga, auditor):
        record = append_answer(1, actor=olga)
        services.audit_redact(record=record, fields=["answer"], by=auditor, reason="privacy")

        olga.delete()  # on_delete=SET_NULL: the one update the triggers allow
        auditor.delete()

        record = AuditRecord.objects.get(pk=record.pk)
        assert (record.actor, record.actor_name) == (None, "olga")
        assert record.contents.get(field="answer").redacted_by is None
        assert selectors.audit_verify().ok

    @pytest.mark.parametrize(
        ("kwargs", "error"),
        [
            ({"kind": "answer", "payload": {"at": timezone.now()}}, TypeError),
            ({"kind": "answer", "content": {"answer": object()}}, TypeError),
            ({"kind": "answer", "payload": ["not", "a", "dict"]}, TypeError),
            ({"kind": "answer", "payload": {"x": float("inf")}}, ValueError),
            ({"kind": ""}, services.AuditError),
            ({"kind": "answer", "content": {"": "no name"}}, services.AuditError),
        ],
    )
    def test_bad_input_is_refused_before_anything_is_written(self, kwargs, error):
        with pytest.raises(error):
            services.audit_append(**kwargs)
        assert not AuditRecord.objects.exists() and not ChainHead.objects.exists()

    def test_a_lost_chain_head_is_noticed_then_rebuilt_from_the_log(self, chain):
        ChainHead.objects.all().delete()
        assert selectors.audit_verify().summary == "the chain head (audit_chainhead) is missing"
        record = append_answer(6)
        assert (record.seq, record.prev_hash) == (6, chain[-1].hash)
        assert selectors.audit_verify().ok


class TestOrmRefuses:
    def test_record_changes(self, chain):
        record = chain[0]
        record.kind = "forged"
        with pytest.raises(AppendOnlyError):
            record.save()
        with pytest.raises(AppendOnlyError):
            record.delete()
        with pytest.raises(AppendOnlyError):
            AuditRecord.objects.filter(seq=1).update(kind="forged")
        with pytest.raises(AppendOnlyError):
            AuditRecord.objects.update(actor=None, kind="forged")  # not only clearing the actor
        with pytest.raises(AppendOnlyError):
            AuditRecord.objects.filter(seq=1).delete()
        with pytest.raises(AppendOnlyError):
            AuditRecord.objects.bulk_update([record], ["kind"])
        assert AuditRecord.objects.get(seq=1).kind == "answer"

    def test_a_preset_primary_key_cannot_overwrite(self, chain):
        clone = AuditRecord(
            **{f.attname: getattr(chain[0], f.attname) for f in chain[0]._meta.fields}
        )
        with pytest.raises(Exception, match="duplicate key"):  # an INSERT, never an UPDATE
            clone.save()

    def test_content_changes(self, chain):
        content = chain[0].contents.get(field="answer")
        content.value = "forged"
        with pytest.raises(AppendOnlyError):
            content.save()
        with pytest.raises(AppendOnlyError):
            content.delete()
        with pytest.raises(AppendOnlyError):
            AuditContent.objects.filter(pk=content.pk).update(value="forged")
        with pytest.raises(AppendOnlyError):
            AuditContent.objects.all().delete()
        assert selectors.audit_verify().ok


class TestRedaction:
    def test_redaction_replaces_content_and_is_recorded(self, chain, auditor):
        target = chain[2]
        answer_digest = target.commitments["answer"]

        event = services.audit_redact(
            record=target, fields=["answer"], by=auditor, reason="GDPR request #12"
        )

        assert (event.seq, event.kind, event.subject) == (6, "audit.redaction", "audit:3")
        assert event.actor_name == "ivan"
        assert event.payload == {
            "target_seq": 3,
            "target_kind": "answer",
            "fields": ["answer"],
            "reason": "GDPR request #12",
            "digests": {"answer": answer_digest},
        }
        answer = target.contents.get(field="answer")
        assert answer.value == {"redacted": True, "reason": "GDPR request #12"}
        assert answer.redacted_at == event.created_at
        assert (answer.redacted_by, answer.redaction) == (auditor, event)
        assert target.contents.get(field="question").value == "question 3?"  # untouched
        assert selectors.audit_verify() == selectors.ChainReport(True, 6, None, "")

    def test_a_field_is_redacted_once(self, chain, auditor):
        services.audit_redact(record=chain[0], fields=["answer"], by=auditor, reason="first")
        with pytest.raises(services.AuditError, match="'answer' is already redacted"):
            services.audit_redact(record=chain[0], fields=["answer"], by=auditor, reason="again")
        with pytest.raises(services.AuditError, match="already redacted"):  # all or nothing
            services.audit_redact(
                record=chain[0], fields=["question", "answer"], by=auditor, reason="again"
            )
        assert chain[0].contents.get(field="answer").redaction_reason == "first"
        assert chain[0].contents.get(field="question").redacted_at is None
        assert AuditRecord.objects.filter(kind="audit.redaction").count() == 1

    def test_all_fields_means_those_left(self, chain, auditor):
        services.audit_redact(record=chain[0], fields=["answer"], by=auditor, reason="one")
        event = services.audit_redact(record=chain[0], by=auditor, reason="the rest")
        assert event.payload["fields"] == ["question", "reasoning"]
        assert not chain[0].contents.filter(redacted_at__isnull=True).exists()
        with pytest.raises(services.AuditError, match="no content left"):
            services.audit_redact(record=chain[0], by=auditor, reason="nothing")
        assert selectors.audit_verify().ok

    @pytest.mark.parametrize(
        ("fields", "reason", "error", "message"),
        [
            (["nope"], "x", services.AuditError, "no content field 'nope'"),
            (["answer"], "  ", services.AuditError, "needs a reason"),
            ("answer", "x", TypeError, "not a string"),
            ([], "x", services.AuditError, "no fields"),
        ],
    )
    def test_bad_requests(self, chain, auditor, fields, reason, error, message):
        with pytest.raises(error, match=message):
            services.audit_redact(record=chain[0], fields=fields, by=auditor, reason=reason)
        assert not AuditContent.objects.filter(redacted_at__isnull=False).exists()

    def test_tampered_content_is_kept_as_evidence(self, chain, auditor, tamper):
        tamper(
            "UPDATE audit_auditcontent SET value = '\"forged\"' WHERE record_id = %s "
            "AND field = 'answer'",
            [chain[1].pk],
        )
        with pytest.raises(services.AuditError, match="differs from its commitment"):
            services.audit_redact(record=chain[1], by=auditor, reason="cover it up")


class TestRetention:
    def append_at(self, moment, n: int) -> AuditRecord:
        with mock.patch.object(timezone, "now", return_value=moment):
            return append_answer(n)

    def test_only_old_content_is_redacted(self, settings):
        settings.AUDIT_RETENTION_DAYS = 30
        now = timezone.now()
        old = [self.append_at(now - timedelta(days=40), n) for n in (1, 2)]
        recent = self.append_at(now - timedelta(days=29), 3)

        assert services.audit_apply_retention(now=now) == 2

        for record in old:
            assert [c.value for c in record.contents.all()] == [
                {"redacted": True, "reason": "retention"}
            ] * 3
        assert recent.contents.get(field="answer").value == "answer 3 [1]"
        event = AuditRecord.objects.get(kind="audit.redaction")
        assert (event.seq, event.subject, event.actor_name) == (4, "audit:retention", "system")
        assert event.payload["records"] == 2 and event.payload["contents"] == 6
        assert (event.payload["first_seq"], event.payload["last_seq"]) == (1, 2)
        assert AuditRecord.objects.count() == 4  # nothing deleted
        assert selectors.audit_verify().ok

        assert services.audit_apply_retention(now=now) == 0  # done: no second event
        assert AuditRecord.objects.count() == 4

    def test_zero_keeps_everything(self, settings):
        settings.AUDIT_RETENTION_DAYS = 0
        self.append_at(timezone.now() - timedelta(days=3650), 1)
        assert services.audit_apply_retention() == 0
        assert not AuditContent.objects.filter(redacted_at__isnull=False).exists()
        assert AuditRecord.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_appends_never_fork_the_chain():
    threads, per_thread = 8, 15
    start = threading.Barrier(threads)
    errors = []

    def work(number: int) -> None:
        try:
            start.wait()
            for i in range(per_thread):
                services.audit_append(kind="answer", subject=f"t{number}:{i}", content={"i": i})
        except Exception as exc:  # reported by the assertion below, not lost in the thread
            errors.append(exc)
        finally:
            connection.close()

    workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()

    assert errors == []
    total = threads * per_thread
    assert list(AuditRecord.objects.order_by("seq").values_list("seq", flat=True)) == list(
        range(1, total + 1)
    )
    assert selectors.audit_verify() == selectors.ChainReport(True, total, None, "")
