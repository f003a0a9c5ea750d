"""The PostgreSQL triggers refuse raw SQL that the ORM layer cannot see."""

import pytest
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from audit import selectors, services
from audit.models import AuditContent, AuditRecord

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def immediate_constraints(db):
    """Django's foreign keys are deferred; with checks still pending from the test's own inserts,
    PostgreSQL refuses TRUNCATE before any trigger runs. A real session has none pending."""
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")


def raw(sql: str, params=None) -> None:
    with transaction.atomic(), connection.cursor() as cursor:  # a savepoint: the test goes on
        cursor.execute(sql, params)


def refused(sql: str, params=None, *, match: str = "append-only") -> None:
    with pytest.raises(DatabaseError, match=match):
        raw(sql, params)


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE audit_auditrecord SET kind = 'forged' WHERE seq = 2",
        "UPDATE audit_auditrecord SET actor_id = NULL, actor_name = 'nobody' WHERE seq = 2",
        "DELETE FROM audit_auditrecord WHERE seq = 5",
        "TRUNCATE audit_auditrecord CASCADE",
        "TRUNCATE audit_auditcontent",
        "DELETE FROM audit_auditcontent",
        "UPDATE audit_auditcontent SET value = '\"forged\"'",
        "UPDATE audit_auditcontent SET field = 'other' WHERE field = 'answer'",
    ],
)
def test_raw_changes_are_refused(chain, sql):
    refused(sql)
    assert AuditRecord.objects.count() == 5
    assert selectors.audit_verify().ok


def test_raw_redaction_must_be_the_real_thing(chain, auditor):
    """Only a first redaction to exactly the marker, naming its event, gets through."""
    event = services.audit_redact(record=chain[0], fields=["answer"], by=auditor, reason="r")
    answer = AuditContent.objects.get(record=chain[1], field="answer")
    redact = (
        "UPDATE audit_auditcontent SET value = %s::jsonb, redacted_at = %s, "
        "redaction_reason = %s, redaction_id = %s WHERE id = %s"
    )
    marker = '{"redacted": true, "reason": "r"}'
    now = timezone.now()

    refused(redact, ['"forged"', now, "r", event.pk, answer.pk], match="only be redacted")
    refused(redact, [marker, now, "r", None, answer.pk], match="only be redacted")
    refused(redact, [marker, None, "r", event.pk, answer.pk], match="only be redacted")
    again = AuditContent.objects.get(record=chain[0], field="answer")
    refused(redact, [marker, now, "r", event.pk, again.pk], match="only be redacted")

    raw(redact, [marker, now, "r", event.pk, answer.pk])  # allowed by the trigger, but…
    report = selectors.audit_verify()  # …the event was for record 1, not record 2
    assert (report.ok, report.bad_seq) == (False, 2)
    assert report.reason == "content field 'answer' is redacted but event 6 does not cover it"


def test_flush_may_still_empty_the_database(chain):
    """Django's flush (and so its transactional tests) truncates the audit tables on purpose."""
    call_command("flush", "--no-input", verbosity=0)
    assert not AuditRecord.objects.exists()
    refused("TRUNCATE audit_auditrecord CASCADE")  # the permission ended with the flush
    record = services.audit_append(kind="answer")
    assert record.seq == 1 and selectors.audit_verify().ok
