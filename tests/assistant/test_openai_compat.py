"""The OpenAI-compatible endpoint (/v1/models, /v1/chat/completions) through the test client."""

import json

import pytest
from django.test import Client

from accounts.services import token_issue
from assistant.models import Message
from audit.models import AuditRecord

pytestmark = pytest.mark.django_db


@pytest.fixture
def key(staff_user) -> str:
    return token_issue(user=staff_user, name="openai")[1]


def call(path, key, body=None):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {key}"} if key else {}
    if body is None:
        return Client().get(path, **headers)
    return Client().post(path, json.dumps(body), content_type="application/json", **headers)


def test_models_list_the_assistant_and_its_choices(key, fake_llm, collection):
    ids = [m["id"] for m in call("/v1/models", key).json()["data"]]
    assert ids[:2] == ["assistant", "assistant:fake"]


def test_a_completion_is_answered_cited_and_audited(key, handbook, fake_llm):
    fake_llm.default = "Receipts must be submitted within thirty days of travel [1]."
    body = {
        "model": "assistant",
        "messages": [{"role": "user", "content": "When are travel receipts due?"}],
    }
    answer = call("/v1/chat/completions", key, body).json()
    assert answer["object"] == "chat.completion"
    assert answer["choices"][0]["message"]["content"].endswith("[1].")
    assert answer["citations"][0]["page"] == 2
    message = Message.objects.get(role="assistant")
    assert AuditRecord.objects.filter(subject=f"message:{message.pk}").count() == 1


def test_errors_have_openai_shape(key, fake_llm):
    assert call("/v1/models", None).status_code == 401
    assert call("/v1/models", "rag_wrong").json()["error"]["code"] == "invalid_api_key"
    body = {"model": "gpt-4", "messages": [{"role": "user", "content": "Hi"}]}
    response = call("/v1/chat/completions", key, body)
    assert response.status_code == 404 and response.json()["error"]["code"] == "model_not_found"
    assert call("/v1/chat/completions", key, {"model": "assistant"}).status_code == 400
