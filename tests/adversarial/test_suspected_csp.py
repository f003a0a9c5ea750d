"""Suspected from reading, confirmed: app pages had no Content-Security-Policy (only served
originals did). Now every HTML page gets one that runs scripts from our static files only, so
markup that slipped past escaping (an answer, a document name) still cannot run script or load
from another origin. That the pages still work under it: tests/assistant/test_browser.py and
tests/audit/test_review_browser.py, in Chromium."""

import pytest
from django.test import Client

from tests.ingest.helpers import ingest

pytestmark = pytest.mark.django_db


def policy(response) -> dict[str, str]:
    header = response["Content-Security-Policy"]
    return {
        part.split()[0]: " ".join(part.split()[1:])
        for part in (p.strip() for p in header.split(";"))
        if part
    }


@pytest.mark.parametrize(
    ("who", "path"),
    [
        ("staff_user", "/"),
        ("staff_user", "/search/?q=receipts"),
        ("admin_user", "/documents/"),
        ("auditor_user", "/audit/"),
        ("admin_user", "/admin/"),
        (None, "/login/"),
    ],
)
def test_pages_run_only_their_own_scripts(request, who, path):
    client = Client()
    if who:
        client.force_login(request.getfixturevalue(who))
    response = client.get(path)
    assert response.status_code == 200

    csp = policy(response)
    assert csp["script-src"] == "'self'"  # no inline script, no eval, no other origin
    assert csp["default-src"] == "'self'" and csp["object-src"] == "'none'"
    assert "unsafe" not in csp["style-src"] and csp["base-uri"] == "'none'"
    assert csp["frame-ancestors"] == "'none'"


def test_pages_use_no_inline_script(staff_user):
    client = Client()
    client.force_login(staff_user)
    html = client.get("/").content.decode()
    # every <script> is either a static file or json_script data, which CSP never executes
    for tag in html.split("<script")[1:]:
        opening = tag.split(">", 1)[0]
        assert "src=" in opening or 'type="application/json"' in opening, opening


def test_a_served_original_keeps_its_own_sandbox(admin_user, collection):
    document = ingest(b"<html><script>alert(1)</script>hello</html>", "page.html", collection)
    client = Client()
    client.force_login(admin_user)
    response = client.get(f"/documents/{document.pk}/file")
    assert response.status_code == 200
    assert response["Content-Security-Policy"].startswith("sandbox")


def test_json_answers_are_not_pages(staff_user):
    client = Client()
    client.force_login(staff_user)
    response = client.get("/api/v1/documents")
    assert response["Content-Type"].startswith("application/json")
