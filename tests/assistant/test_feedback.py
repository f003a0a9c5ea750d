"""Thumbs up/down on answers, and their export as evaluation cases."""

import io
import json

import pytest
from django.core.management import call_command
from django.test import Client

from assistant import services
from assistant.models import Feedback

from ..conftest import make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def answer(staff_user, handbook, fake_llm):
    fake_llm.default = "Receipts must be submitted within thirty days of travel [1]."
    return services.answer_question(user=staff_user, question="When are receipts due?")


def give(client, message_id, body):
    return client.post(
        f"/api/v1/messages/{message_id}/feedback", json.dumps(body), content_type="application/json"
    )


def test_rate_then_change_the_rating(staff_user, answer):
    client = Client()
    client.force_login(staff_user)

    assert give(client, answer.pk, {"rating": "up"}).status_code == 200
    response = give(client, answer.pk, {"rating": "down", "comment": " outdated policy "})

    assert response.json() == {
        "message_id": answer.pk,
        "rating": "down",
        "comment": "outdated policy",
    }
    (feedback,) = Feedback.objects.all()
    assert (feedback.rating, feedback.user) == (-1, staff_user)
    page = client.get(f"/c/{answer.conversation_id}")
    assert page.context["messages"][1]["feedback"] == {
        "rating": "down",
        "comment": "outdated policy",
    }


@pytest.mark.parametrize(
    ("body", "status"),
    [({"rating": "meh"}, 400), ({}, 400), ({"rating": "up", "comment": 5}, 400),
     ({"rating": "up", "comment": "x" * 2001}, 400)],
)  # fmt: skip
def test_bad_feedback_is_refused(staff_user, answer, body, status):
    client = Client()
    client.force_login(staff_user)
    assert give(client, answer.pk, body).status_code == status
    assert not Feedback.objects.exists()


def test_only_the_asker_rates_their_answers(answer):
    other = Client()
    other.force_login(make_user("olga", "staff"))
    assert give(other, answer.pk, {"rating": "up"}).status_code == 404
    question = answer.conversation.messages.get(role="user")
    mine = Client()
    mine.force_login(answer.conversation.user)
    assert give(mine, question.pk, {"rating": "up"}).status_code == 404  # a question, not an answer
    assert give(mine, 999999, {"rating": "up"}).status_code == 404


def test_export_as_evaluation_cases(staff_user, answer):
    services.feedback_give(user=staff_user, message=answer, rating=-1, comment="wrong page")
    out = io.StringIO()

    call_command("feedback", "export", "--rating", "down", stdout=out)

    (case,) = [json.loads(line) for line in out.getvalue().splitlines()]
    assert case["query"] == "When are receipts due?"
    assert case["relevant"] == [answer.citations[0]["chunk_id"]]
    assert case["retrieved"][0] == answer.sources[0]["chunk_id"]
    assert (case["rating"], case["comment"], case["user"]) == ("down", "wrong page", "sam")
    empty = io.StringIO()
    call_command("feedback", "export", "--rating", "up", stdout=empty)
    assert empty.getvalue() == ""
