"""POST /api/v1/ask (JSON and streamed), the chat pages, and safe rendering of answers."""

import json

import pytest
from django.test import Client

from assistant.models import Conversation, Message
from assistant.rendering import render_answer
from tests.fakes.deepseek import Reply

pytestmark = pytest.mark.django_db

RECEIPTS = "How long do I have to hand in my travel receipts?"


@pytest.fixture
def staff_client(client, staff_user):
    client.force_login(staff_user)
    return client


def post(client, body, **extra):
    return client.post(
        "/api/v1/ask", data=json.dumps(body), content_type="application/json", **extra
    )


def read_sse(response) -> list[dict]:
    raw = b"".join(response.streaming_content).decode()
    events = []
    for block in raw.strip().split("\n\n"):
        kind = block.split("\n")[0].removeprefix("event: ")
        data = json.loads(block.split("\n", 1)[1].removeprefix("data: "))
        assert data["event"] == kind
        events.append(data)
    return events


class TestAskApi:
    def test_needs_a_login(self, client):
        response = post(client, {"question": RECEIPTS})
        assert response.status_code == 401

    def test_json_answer_has_the_contract_shape(self, staff_client, handbook, fake_llm):
        fake_llm.default = "Receipts must be submitted within thirty days of travel [1]."

        response = post(staff_client, {"question": RECEIPTS, "collection": "general"})

        assert response.status_code == 200
        body = response.json()
        assert body["answer"] == "Receipts must be submitted within thirty days of travel [1]."
        assert body["citations"][0]["verdict"] == "supported"
        assert body["citations"][0]["page"] == 2
        assert body["route"] == "fake" and body["status"] == "answered"
        assert isinstance(body["audit_id"], int) and body["timings_ms"]["total"] > 0

    def test_stream_sends_reasoning_then_answer_then_done(self, staff_client, handbook, deepseek):
        deepseek.enqueue(
            Reply(reasoning="Looking at the travel policy.", answer="Thirty days of travel [1].")
        )

        response = post(staff_client, {"question": RECEIPTS, "stream": True})

        assert response["Content-Type"].startswith("text/event-stream")
        events = read_sse(response)
        kinds = [e["event"] for e in events]
        assert kinds[0] == "start" and kinds[1] == "sources" and kinds[-1] == "done"
        assert "".join(e["text"] for e in events if e["event"] == "reasoning") == (
            "Looking at the travel policy."
        )
        assert "".join(e["text"] for e in events if e["event"] == "answer") == (
            "Thirty days of travel [1]."
        )
        done = events[-1]["message"]
        assert done["reasoning_source"] == "model"
        assert 'class="cite cite-supported"' in done["html"]

    def test_follow_up_in_the_same_conversation(self, staff_client, handbook, fake_llm):
        fake_llm.default = "Thirty days of travel [1]."
        first = post(staff_client, {"question": RECEIPTS}).json()

        second = post(
            staff_client,
            {"question": "And for flights?", "conversation_id": first["conversation_id"]},
        ).json()

        assert second["conversation_id"] == first["conversation_id"]
        assert Message.objects.filter(conversation_id=first["conversation_id"]).count() == 4

    @pytest.mark.parametrize(
        ("body", "error"),
        [
            ({}, 'missing "question"'),
            ({"question": 42}, '"question" must be a string'),
            ({"question": ""}, "the question is empty"),
            ({"question": "q", "collections": "general"}, "list of collection slugs"),
            ({"question": "q", "model": "nope"}, "unknown model 'nope'"),
            ([1, 2], "JSON object"),
        ],
    )
    def test_bad_requests_are_400_with_a_reason(self, staff_client, fake_llm, body, error):
        response = post(staff_client, body)
        assert response.status_code == 400
        assert error in response.json()["error"]

    def test_body_that_is_not_json(self, staff_client):
        response = staff_client.post("/api/v1/ask", data="question=hi", content_type="text/plain")
        assert response.status_code == 400 and "JSON" in response.json()["error"]

    def test_another_users_conversation_is_404(self, staff_client, admin_user, fake_llm):
        theirs = Conversation.objects.create(user=admin_user, title="private")
        response = post(staff_client, {"question": "hi", "conversation_id": theirs.pk})
        assert response.status_code == 404

    def test_get_is_not_allowed(self, staff_client):
        assert staff_client.get("/api/v1/ask").status_code == 405


class TestChatPages:
    def test_home_shows_the_chat(self, staff_client, fake_llm):
        page = staff_client.get("/")
        assert page.status_code == 200
        assert b'id="ask-form"' in page.content and b"Fake" in page.content

    def test_a_conversation_reloads_with_its_citations(self, staff_client, handbook, fake_llm):
        fake_llm.default = "Thirty days of travel [1]."
        answer = post(staff_client, {"question": RECEIPTS}).json()

        page = staff_client.get(f"/c/{answer['conversation_id']}")

        assert page.status_code == 200
        initial = page.context["messages"]
        assert [m["role"] for m in initial] == ["user", "assistant"]
        assert initial[1]["citations"][0]["page"] == 2
        assert initial[1]["sources"][0]["text"]  # the source panel needs no second request

    def test_other_users_cannot_open_or_delete_a_conversation(self, staff_user, admin_user):
        theirs = Conversation.objects.create(user=admin_user, title="private")
        client = Client()
        client.force_login(staff_user)
        assert client.get(f"/c/{theirs.pk}").status_code == 404
        assert client.post(f"/c/{theirs.pk}/delete").status_code == 404
        assert Conversation.objects.filter(pk=theirs.pk).exists()

    def test_delete_own_conversation(self, staff_client, staff_user):
        mine = Conversation.objects.create(user=staff_user, title="mine")
        response = staff_client.post(f"/c/{mine.pk}/delete")
        assert response.status_code == 302 and not Conversation.objects.exists()

    def test_passage_search_page(self, staff_client, handbook):
        page = staff_client.get("/search/", {"q": "travel receipts"})
        assert page.status_code == 200
        assert b"handbook.pdf" in page.content and b"#page=2" in page.content


class TestRendering:
    @pytest.mark.parametrize(
        "hostile",
        [
            "<script>alert(1)</script>",
            '<img src=x onerror="alert(1)">',
            "[click](javascript:alert(1))",
            '<a href="#" onclick="alert(1)">x</a>',
            "<iframe src='https://evil.example'></iframe>",
        ],
    )
    def test_hostile_markup_is_inert(self, hostile):
        html = render_answer(f"Answer {hostile} [1].")
        for bad in ("<script", "onerror", "onclick", "javascript:", "<iframe", "<img"):
            assert bad not in html.lower()

    def test_markers_become_chips_with_their_verdict(self):
        html = render_answer(
            "Yes [1][2] and no [3, 4].", verdicts={1: "supported", 2: "unsupported"}
        )
        assert 'data-marker="1"' in html and 'class="cite cite-supported"' in html
        assert 'class="cite cite-unsupported"' in html and "⚠" in html
        assert 'data-marker="3"' in html and 'data-marker="4"' in html

    def test_markers_in_code_are_left_alone(self):
        html = render_answer("Use `items[1]` here [2].\n\n```\nrow[3] = 1\n```")
        assert "items[1]" in html and "row[3]" in html and 'data-marker="2"' in html
        assert 'data-marker="1"' not in html and 'data-marker="3"' not in html

    def test_markdown_is_rendered(self):
        html = render_answer("**Bold** and a list:\n\n- one\n- two")
        assert "<strong>Bold</strong>" in html and "<li>one</li>" in html


def test_each_chip_carries_its_own_sentences_verdict():
    html = render_answer(
        "Receipts are due in thirty days [1]. They are due in sixty days [1].",
        verdicts={1: ["supported", "unsupported"]},
    )
    first, second = html.split("They are")
    assert 'cite-supported"' in first and "⚠" not in first
    assert 'cite-unsupported"' in second and "⚠" in second
