"""What lands in the audit log: answers, documents, sign-ins, role and access changes,
feedback; and redaction by an admin, which keeps the chain verifiable and erases the words
from the chat too."""

import io
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.test import Client

from accounts import roles
from accounts.services import user_roles_set
from assistant import services as answering
from audit.models import AuditRecord
from audit.selectors import audit_record_json, audit_verify
from ingest.models import Collection

pytestmark = pytest.mark.django_db

QUESTION = "How long do I have to hand in my travel receipts?"


def records(kind):
    return [audit_record_json(r) for r in AuditRecord.objects.filter(kind=kind).order_by("seq")]


def verify_ok() -> str:
    out = io.StringIO()
    call_command("audit", "verify", stdout=out)
    return out.getvalue().strip()


@pytest.fixture
def answer(staff_user, handbook, fake_llm):
    fake_llm.default = "Receipts must be submitted within thirty days of travel [1]."
    return answering.answer_question(user=staff_user, question=QUESTION)


def test_every_answer_is_a_record_that_explains_it(answer, fake_llm):
    (record,) = records("answer")
    assert answer.audit_seq == record["seq"] and record["subject"] == f"message:{answer.pk}"
    assert record["actor"] == "sam"
    payload, content = record["payload"], record["content"]
    assert (payload["status"], payload["route"], payload["model"]) == (
        "answered",
        "fake",
        "fake-model",
    )
    assert payload["retrieved"][0]["page"] == 2 and "text" not in payload["retrieved"][0]
    assert payload["citations"][0]["verdict"] == "supported"
    assert payload["has_unsupported"] is False and payload["retrieved_collections"] == ["general"]
    assert content["question"] == QUESTION
    assert [m["content"] for m in content["prompt"]] == [m.content for m in fake_llm.calls[0]]
    assert "thirty days" in content["source_texts"]["1"]
    assert content["answer"] == answer.content and "Standalone query" in content["reasoning"]
    assert verify_ok().startswith("ok ")


def test_model_errors_are_recorded_too(staff_user, handbook, fake_llm):
    from rag.llm import LLMError

    fake_llm.queue(*[LLMError("auth", "DeepSeek rejected the API key (401)", status=401)])
    answering.answer_question(user=staff_user, question=QUESTION)
    (record,) = records("answer")
    assert record["payload"]["status"] == "error"
    assert "DeepSeek rejected the API key (401)" in record["payload"]["error"]
    (generation,) = record["payload"]["route_trace"]["generations"]
    assert [a["outcome"] for a in generation["attempts"]] == ["auth"]  # not worth a retry


def test_document_events(admin_client, admin_user, collection):
    upload = SimpleUploadedFile("memo.txt", b"Fire drill on Friday.")
    (created,) = admin_client.post("/api/v1/documents", {"file": upload}).json()["documents"]
    admin_client.post(f"/api/v1/documents/{created['id']}/reindex")
    admin_client.delete(f"/api/v1/documents/{created['id']}")

    kinds = list(AuditRecord.objects.order_by("seq").values_list("kind", "actor_name", "subject"))
    subject = f"document:{created['id']}"
    assert [k for k in kinds if k[2] == subject] == [
        ("document.upload", "ada", subject),
        ("document.reindex", "ada", subject),
        ("document.delete", "ada", subject),
    ]
    (upload_record,) = records("document.upload")
    assert upload_record["payload"]["name"] == "memo.txt"
    assert len(upload_record["payload"]["sha256"]) == 64


def test_sign_in_out_and_failures(staff_user):
    client = Client()
    client.post("/login/", {"username": "sam", "password": "wrong"})
    client.post("/login/", {"username": "sam", "password": "pw"})
    client.post("/logout/")

    assert [r["kind"] for r in map(audit_record_json, AuditRecord.objects.order_by("seq"))][
        -3:
    ] == [
        "auth.login_failed",
        "auth.login",
        "auth.logout",
    ]
    (failed,) = records("auth.login_failed")
    assert failed["subject"] == "username:sam" and "wrong" not in json.dumps(failed)


def test_role_and_access_changes(admin_user, staff_user, collection):
    # (the auditor role is a superuser's to give: tests/adversarial/test_defect3_role_changes.py)
    user_roles_set(user=staff_user, roles_=[roles.STAFF, roles.ADMIN], by=admin_user)
    (change,) = [r for r in records("user.role_change") if r["payload"]["user"] == "sam"][-1:]
    assert change["payload"]["before"] == ["staff"]
    assert change["payload"]["after"] == ["admin", "staff"] and change["actor"] == "ada"

    client = Client()
    client.force_login(admin_user)
    hr = __import__("django.contrib.auth.models", fromlist=["Group"]).Group.objects.create(
        name="hr"
    )
    response = client.post(
        f"/admin/ingest/collection/{collection.pk}/change/",
        {
            "name": collection.name,
            "slug": collection.slug,
            "description": "",
            "sensitivity": "internal",
            "groups": [hr.pk],
        },
    )
    assert response.status_code == 302, response.content[:2000]
    assert list(Collection.objects.get(pk=collection.pk).groups.values_list("name", flat=True)) == [
        "hr"
    ]
    (access,) = records("collection.access_change")
    assert access["payload"] == {"collection": "general", "before": ["staff"], "after": ["hr"]}
    assert access["actor"] == "ada"


def test_feedback_is_recorded(staff_user, answer):
    answering.feedback_give(user=staff_user, message=answer, rating=-1, comment="wrong page")
    (record,) = records("feedback")
    assert (
        record["payload"]["rating"] == "down"
        and record["payload"]["answer_seq"] == answer.audit_seq
    )
    assert record["content"]["comment"] == "wrong page"


class TestRedaction:
    def redact(self, client, seq, reason):
        record = AuditRecord.objects.get(seq=seq)
        return client.post(
            "/admin/audit/auditrecord/",
            {
                "action": "redact_content",
                "_selected_action": [record.pk],
                "confirm": "yes",
                "reason": reason,
            },
        )

    def test_admin_redaction_keeps_the_chain_and_erases_the_chat_copy(self, admin_user, answer):
        client = Client()
        client.force_login(admin_user)

        asked = self.redact(client, answer.audit_seq, "")
        assert asked.status_code == 200 and b"Reason" in asked.content  # a reason is required
        assert self.redact(client, answer.audit_seq, "GDPR erasure request").status_code == 302

        assert verify_ok() == f"ok {AuditRecord.objects.count()} records"
        (record,) = records("answer")
        assert record["content"]["question"] == {"redacted": True, "reason": "GDPR erasure request"}
        (event,) = records("audit.redaction")
        assert event["actor"] == "ada" and event["payload"]["target_seq"] == answer.audit_seq
        assert "question" in event["payload"]["digests"]
        answer.refresh_from_db()
        assert answer.content == answer.question == answer.reasoning == "[redacted]"
        assert all(s["text"] == "[redacted]" for s in answer.sources)
        asked_turn = answer.conversation.messages.get(role="user")
        assert asked_turn.content == "[redacted]" and QUESTION not in json.dumps(answer.prompt)

    def test_auditors_and_staff_cannot_redact(self, auditor_user, staff_user, answer):
        for user in (auditor_user, staff_user):
            client = Client()
            client.force_login(user)
            self.redact(client, answer.audit_seq, "no")
        assert not records("audit.redaction")
        answer.refresh_from_db()
        assert answer.content != "[redacted]"

    def test_retention_redacts_old_answers_everywhere(self, answer, settings):
        from datetime import timedelta

        from django.utils import timezone

        from audit.services import audit_apply_retention

        settings.AUDIT_RETENTION_DAYS = 30
        assert audit_apply_retention(now=timezone.now() + timedelta(days=31)) >= 1
        answer.refresh_from_db()
        assert answer.content == "[redacted]"
        assert audit_verify().ok


def test_retention_is_scheduled_daily_and_runs_as_a_task(answer, settings):
    from datetime import timedelta

    from audit.tasks import audit_apply_retention_task

    entry = settings.CELERY_BEAT_SCHEDULE["audit-retention"]
    assert entry["task"] == audit_apply_retention_task.name == "audit.apply_retention"
    assert entry["schedule"] == timedelta(days=1).total_seconds()
    settings.AUDIT_RETENTION_DAYS = 1
    audit_apply_retention_task.apply()
    answer.refresh_from_db()
    assert answer.content != "[redacted]"  # a fresh answer is within the retention period


def test_sensitivity_change_from_the_admin_is_recorded(admin_user, collection):
    client = Client()
    client.force_login(admin_user)
    staff_group = collection.groups.get()
    response = client.post(
        f"/admin/ingest/collection/{collection.pk}/change/",
        {
            "name": collection.name,
            "slug": collection.slug,
            "description": "",
            "sensitivity": "confidential",
            "groups": [staff_group.pk],
        },
    )
    assert response.status_code == 302, response.content[:2000]
    assert Collection.objects.get(pk=collection.pk).sensitivity == "confidential"
    (change,) = records("collection.sensitivity_change")
    assert change["payload"] == {
        "collection": "general",
        "before": "internal",
        "after": "confidential",
    }
    assert change["actor"] == "ada" and not records("collection.access_change")
