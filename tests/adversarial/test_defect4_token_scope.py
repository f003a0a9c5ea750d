"""Defect 4: an API token opened every path, not only the JSON API: `Authorization: Bearer …`
reached `/admin/` and `/audit/` with CSRF checks off, so a leaked script token had the whole
admin site's power. Now a token authenticates `/api/v1/` only; elsewhere the header is ignored
(the request stays anonymous, or keeps its session, and CSRF stays on)."""

import json

import pytest
from django.test import Client

from accounts import roles
from accounts.services import token_issue

from ..conftest import make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def auditor_key(auditor_user) -> str:
    return token_issue(user=auditor_user, name="script")[1]


@pytest.fixture
def admin_key(admin_user) -> str:
    return token_issue(user=admin_user, name="script")[1]


def bearer(key: str) -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {key}"}


def test_a_token_does_not_open_the_audit_log(auditor_key):
    response = Client().get("/audit/", **bearer(auditor_key))
    assert response.status_code == 302 and response["Location"].startswith("/login/")
    assert Client().get("/audit/export", **bearer(auditor_key)).status_code == 302


def test_a_token_does_not_open_the_admin_site(admin_key):
    response = Client().get("/admin/", **bearer(admin_key))
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    assert Client().get("/admin/auth/user/", **bearer(admin_key)).status_code == 302


def test_a_token_cannot_post_to_the_admin_site_without_csrf(admin_key, staff_user):
    client = Client(enforce_csrf_checks=True)
    response = client.post(
        f"/admin/auth/user/{staff_user.pk}/delete/", {"post": "yes"}, **bearer(admin_key)
    )
    assert response.status_code == 403  # CSRF stays on: the header made no difference
    assert type(staff_user).objects.filter(pk=staff_user.pk).exists()


def test_a_bad_token_outside_the_api_is_ignored_not_refused(staff_user):
    client = Client()
    client.force_login(staff_user)
    # the session decides, as for any browser request: the header is not the app's business
    response = client.get("/search/", **bearer("rag_not-a-token"))
    assert response.status_code == 200


def test_the_api_still_takes_tokens(admin_key, fake_llm):
    client = Client(enforce_csrf_checks=True)
    assert client.get("/api/v1/documents", **bearer(admin_key)).status_code == 200
    response = client.post(
        "/api/v1/ask",
        json.dumps({"question": "Anything?"}),
        content_type="application/json",
        **bearer(admin_key),
    )
    assert response.status_code == 200, response.content
    assert client.get("/api/v1/documents", **bearer("rag_wrong")).status_code == 401


def test_a_session_user_with_someone_elses_token_stays_themselves_outside_the_api(admin_key):
    nobody = make_user("nob")
    client = Client()
    client.force_login(nobody)
    assert client.get("/documents/", **bearer(admin_key)).status_code == 403
    assert roles.ADMIN not in roles.roles_of(nobody)
