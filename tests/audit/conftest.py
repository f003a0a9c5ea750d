import io

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.db import connection

from audit import services
from audit.models import AuditRecord

TABLES = ("audit_auditrecord", "audit_auditcontent")


@pytest.fixture
def olga(db):
    return get_user_model().objects.create_user("olga", password="pw")


@pytest.fixture
def auditor(db):
    return get_user_model().objects.create_user("ivan", password="pw")


def append_answer(n: int, *, actor=None) -> AuditRecord:
    return services.audit_append(
        kind="answer",
        actor=actor,
        subject=f"message:{n}",
        payload={"model": "fake", "route": "default", "timings_ms": {"total": 12.5}, "n": n},
        content={"question": f"question {n}?", "answer": f"answer {n} [1]", "reasoning": None},
    )


@pytest.fixture
def chain(db, olga) -> list[AuditRecord]:
    """Five answers: seq 1..5."""
    return [append_answer(n, actor=olga) for n in range(1, 6)]


@pytest.fixture
def tamper(db):
    """Raw SQL on the audit tables with their triggers off, as someone with the table owner's
    rights could do. Triggers are back on afterwards (and the test transaction rolls back)."""

    def run(sql: str, params=None) -> None:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)

    # Django's foreign keys are deferred: checks pending from this test's inserts would make
    # ALTER TABLE fail, so run them now (and keep constraint checks immediate from here on).
    run("SET CONSTRAINTS ALL IMMEDIATE")
    for table in TABLES:
        run(f"ALTER TABLE {table} DISABLE TRIGGER USER")
    yield run
    for table in TABLES:
        run(f"ALTER TABLE {table} ENABLE TRIGGER USER")


def run_audit(*args) -> tuple[int, str, str]:
    """(returncode, stdout, message) of `manage.py audit ARGS`, as the shell would see them."""
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("audit", *args, stdout=out, stderr=err)
    except CommandError as exc:
        return exc.returncode, out.getvalue(), str(exc)
    return 0, out.getvalue(), err.getvalue()
