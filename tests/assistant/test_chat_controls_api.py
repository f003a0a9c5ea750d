"""Stop, Regenerate, edit-and-resend and one answer at a time through the JSON API the chat page
uses: POST /api/v1/ask with "regenerate"/"edit", POST /api/v1/conversations/<id>/stop, 409 while
an answer is being written. The in-flight claim lives in the real Redis cache."""

import json

import pytest
from django.test import Client

from assistant import inflight
from assistant.models import Conversation, Message

pytestmark = pytest.mark.django_db

RECEIPTS = "How long do I have to hand in my travel receipts?"


@pytest.fixture
def staff_client(staff_user):
    client = Client()
    client.force_login(staff_user)
    return client


def post(client, path, body):
    return client.post(path, data=json.dumps(body), content_type="application/json")


def ask(client, body):
    return post(client, "/api/v1/ask", body)


@pytest.fixture
def answered(staff_client, handbook, fake_llm):
    fake_llm.default = "Within thirty days [1]."
    response = ask(staff_client, {"question": RECEIPTS})
    assert response.status_code == 200, response.content
    return response.json()


class TestRegenerateAndEdit:
    def test_regenerate_answers_the_last_question_again(self, staff_client, answered, fake_llm):
        fake_llm.default = "Thirty days after the trip ends [1]."
        conversation_id = answered["conversation_id"]

        response = ask(staff_client, {"conversation_id": conversation_id, "regenerate": True})

        assert response.status_code == 200, response.content
        body = response.json()
        assert body["answer"].startswith("Thirty days after the trip ends")
        assert body["conversation_id"] == conversation_id
        messages = Conversation.objects.get(pk=conversation_id).messages.order_by("pk")
        # one question, the first answer kept but superseded, the new one live
        assert [(m.role, m.superseded) for m in messages] == [
            ("user", False),
            ("assistant", True),
            ("assistant", False),
        ]
        assert messages[2].replaces_id == messages[1].pk

    def test_edit_replaces_the_last_question(self, staff_client, answered, fake_llm):
        conversation_id = answered["conversation_id"]
        edited = "When are travel receipts due?"

        response = ask(
            staff_client, {"conversation_id": conversation_id, "edit": True, "question": edited}
        )

        assert response.status_code == 200, response.content
        live = Message.objects.filter(conversation_id=conversation_id, superseded=False)
        assert [m.content for m in live.filter(role="user")] == [edited]

    @pytest.mark.parametrize(
        ("body", "words"),
        [
            ({"regenerate": True}, "conversation_id"),
            ({"regenerate": "yes", "conversation_id": 1}, '"regenerate" must be true or false'),
            ({"conversation_id": None}, 'missing "question"'),
            ({"question": " "}, "the question is empty"),
        ],
    )
    def test_refusals_say_what_is_missing(self, staff_client, handbook, body, words):
        response = ask(staff_client, body)

        assert response.status_code == 400
        assert words in response.json()["error"]


class TestOneAnswerAtATime:
    def test_a_question_while_an_answer_is_written_is_refused_with_409(
        self, staff_client, answered
    ):
        conversation_id = answered["conversation_id"]
        claim = inflight.InFlight.claim(conversation_id)  # an answer being written elsewhere
        try:
            response = ask(staff_client, {"conversation_id": conversation_id, "question": "And?"})
        finally:
            claim.release()

        assert response.status_code == 409
        assert "already being written" in response.json()["error"]
        # nothing was recorded for the refused question
        assert Message.objects.filter(conversation_id=conversation_id).count() == 2


class TestStopEndpoint:
    def test_stop_flags_the_answer_being_written(self, staff_client, answered):
        conversation_id = answered["conversation_id"]
        claim = inflight.InFlight.claim(conversation_id)
        try:
            response = post(staff_client, f"/api/v1/conversations/{conversation_id}/stop", {})
            assert claim.stop_requested()
        finally:
            claim.release()

        assert response.status_code == 200
        assert response.json() == {"conversation_id": conversation_id, "stopped": True}

    def test_nothing_to_stop(self, staff_client, answered):
        conversation_id = answered["conversation_id"]

        response = post(staff_client, f"/api/v1/conversations/{conversation_id}/stop", {})

        assert response.json() == {"conversation_id": conversation_id, "stopped": False}

    def test_another_users_conversation_is_not_found(self, answered, admin_user):
        other = Client()
        other.force_login(admin_user)

        response = post(other, f"/api/v1/conversations/{answered['conversation_id']}/stop", {})

        assert response.status_code == 404
        assert response.json() == {"error": "no such conversation"}

    def test_anonymous_is_refused_as_json(self, answered):
        response = post(Client(), f"/api/v1/conversations/{answered['conversation_id']}/stop", {})

        assert response.status_code == 401
        assert "error" in response.json()
