"""The Django admin shows the log and offers no way to add, change or delete it."""

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from audit import selectors, services
from audit.models import AuditRecord

pytestmark = pytest.mark.django_db


@pytest.fixture
def superuser_client(client):
    client.force_login(get_user_model().objects.create_superuser("root", password="pw"))
    return client


def test_read_only_list_and_detail(superuser_client, chain):
    appended = services.audit_append(kind="auth.token_test", subject="user:999")
    changelist = reverse("admin:audit_auditrecord_changelist")

    page = superuser_client.get(changelist, {"kind": "auth.token_test"})
    assert page.status_code == 200
    assert list(page.context["cl"].result_list) == [appended]
    assert b"By kind" in page.content and b"By created at" in page.content
    assert b"delete_selected" not in page.content  # no bulk delete
    assert b"redact_content" in page.content  # the one action: redaction, with a reason

    detail = superuser_client.get(reverse("admin:audit_auditrecord_change", args=[chain[0].pk]))
    assert detail.status_code == 200
    assert b"question 1?" in detail.content and chain[0].hash.encode() in detail.content
    assert b'type="submit"' not in detail.content.split(b'id="content-main"')[1]

    for name, args in [("add", []), ("delete", [chain[0].pk])]:
        url = reverse(f"admin:audit_auditrecord_{name}", args=args)
        assert superuser_client.get(url).status_code == 403
    response = superuser_client.post(
        reverse("admin:audit_auditrecord_change", args=[chain[0].pk]), {"kind": "forged"}
    )
    assert response.status_code == 403
    assert AuditRecord.objects.get(pk=chain[0].pk).kind == "answer"
    assert selectors.audit_verify().ok
