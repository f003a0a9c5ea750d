"""Defect 8: malformed ids gave a 500 (a full debug page under `make run`): a `conversation_id`
of "abc", [1] or {"a": 1} on POST /api/v1/ask, while 1.5 and true were silently taken as
conversation 1. Now the API checks types strictly (400 with a message naming the field) and
answers every error under /api/v1/ as JSON, whatever DEBUG is: 404, 405, 500 and CSRF 403."""

import json

import pytest
from django.test import Client

from assistant import api as ask_api
from assistant.models import Conversation, Message

pytestmark = pytest.mark.django_db


@pytest.fixture
def client(staff_user) -> Client:
    client = Client(raise_request_exception=False)
    client.force_login(staff_user)
    return client


@pytest.fixture(params=[False, True], ids=["production", "debug"])
def debug(request, settings):
    settings.DEBUG = request.param
    return request.param


def ask(client, body) -> object:
    return client.post("/api/v1/ask", json.dumps(body), content_type="application/json")


def assert_json_error(response, status: int) -> str:
    assert response.status_code == status, response.content[:500]
    assert response["Content-Type"].startswith("application/json"), response.content[:500]
    body = response.json()
    assert isinstance(body.get("error"), str) and body["error"]
    return body["error"]


@pytest.mark.parametrize("bad", ["abc", [1], {"a": 1}, 1.5, True, False, "7", -3, 0, 10**30])
def test_a_malformed_conversation_id_is_a_400(client, staff_user, bad, debug):
    # A conversation of the user's own exists: a bad id must not silently land in it.
    conversation = Conversation.objects.create(user=staff_user, title="mine")
    if isinstance(bad, float):
        bad = conversation.pk + 0.5  # int() would round it down to the user's conversation

    error = assert_json_error(
        ask(client, {"question": "When is lunch?", "conversation_id": bad}), 400
    )

    assert "conversation_id" in error
    assert not Message.objects.exists()  # nothing was asked


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"question": "Hi", "model": ["local"]}, "model"),
        ({"question": "Hi", "collection": 5}, "collection"),
        ({"question": "Hi", "collections": "general"}, "collections"),
        ({"question": "Hi", "stream": "yes"}, "stream"),
        ({"question": 42}, "question"),
    ],
)
def test_other_fields_have_strict_types(client, body, field):
    error = assert_json_error(ask(client, body), 400)
    assert field in error


def test_a_conversation_of_someone_else_is_a_404(client, admin_user):
    theirs = Conversation.objects.create(user=admin_user, title="theirs")
    error = assert_json_error(ask(client, {"question": "Hi", "conversation_id": theirs.pk}), 404)
    assert "conversation" in error


@pytest.mark.parametrize(
    "path", ["/api/v1/nothing-here", "/api/v1/documents/abc", "/api/v1/documents/999999"]
)
def test_not_found_is_json(client, path, debug):
    assert_json_error(client.get(path), 404)


def test_a_wrong_method_is_json_and_says_which_are_allowed(client, debug):
    response = client.put("/api/v1/ask", "{}", content_type="application/json")
    assert_json_error(response, 405)
    assert response["Allow"] == "POST"
    assert_json_error(client.get("/api/v1/messages/1/feedback"), 405)


def test_an_internal_error_is_json_and_leaks_nothing(client, monkeypatch, debug):
    def broken(**kwargs):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(ask_api.services, "answer_stream", broken)

    response = ask(client, {"question": "Hi"})

    error = assert_json_error(response, 500)
    assert "secret internals" not in response.content.decode() and "Traceback" not in error


def test_a_csrf_failure_under_the_api_is_json(staff_user, debug):
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff_user)
    error = assert_json_error(ask(client, {"question": "Hi"}), 403)
    assert "CSRF" in error


def test_pages_keep_their_html_errors(client):
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    assert not response["Content-Type"].startswith("application/json")


@pytest.mark.parametrize("rating", [["up"], {"a": 1}, 1, None, "sideways"])
def test_a_malformed_feedback_body_is_a_400(client, staff_user, rating):
    conversation = Conversation.objects.create(user=staff_user, title="mine")
    answer = Message.objects.create(
        conversation=conversation, role=Message.Role.ASSISTANT, content="Thirty days."
    )
    response = client.post(
        f"/api/v1/messages/{answer.pk}/feedback",
        json.dumps({"rating": rating}),
        content_type="application/json",
    )
    assert "rating" in assert_json_error(response, 400)
