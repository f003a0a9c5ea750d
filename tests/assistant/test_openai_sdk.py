"""The OpenAI-compatible endpoint through the real `openai` SDK, over HTTP against pytest-django's
live server (a threaded WSGI server in this process): list the models, ask with and without
streaming, read the citations extension, and get the SDK's own exceptions for a wrong key or an
unknown model."""

import openai
import pytest

from accounts.services import token_issue
from assistant.models import Message
from audit.models import AuditRecord

# The live server answers from another thread, with its own database connections.
pytestmark = pytest.mark.django_db(transaction=True)

ANSWER = "Receipts must be submitted within thirty days of travel [1]."
QUESTION = [{"role": "user", "content": "When are travel receipts due?"}]


@pytest.fixture
def client(live_server, staff_user) -> openai.OpenAI:
    key = token_issue(user=staff_user, name="openai-sdk")[1]
    return openai.OpenAI(base_url=f"{live_server.url}/v1", api_key=key, max_retries=0, timeout=30)


def answer_audited(message: Message) -> bool:
    return AuditRecord.objects.filter(kind="answer", subject=f"message:{message.pk}").count() == 1


def test_models_list_the_assistant_its_models_and_collections(client, fake_llm, collection):
    ids = [model.id for model in client.models.list()]
    assert ids == ["assistant", "assistant:fake", "assistant@general"]


def test_a_completion_is_answered_cited_and_audited(client, handbook, fake_llm):
    fake_llm.default = ANSWER
    completion = client.chat.completions.create(model="assistant", messages=QUESTION)

    assert completion.object == "chat.completion"
    assert completion.choices[0].message.content == ANSWER
    assert completion.choices[0].finish_reason == "stop"
    citations = completion.model_extra["citations"]  # the extension field, kept by the SDK
    assert [(c["marker"], c["page"]) for c in citations] == [(1, 2)]
    assert completion.to_dict()["citations"] == citations
    message = Message.objects.get(role="assistant")
    assert message.content == ANSWER and answer_audited(message)


def test_a_streamed_completion_joins_to_the_recorded_answer(client, handbook, fake_llm):
    fake_llm.default = ANSWER
    stream = client.chat.completions.create(model="assistant", messages=QUESTION, stream=True)
    chunks = list(stream)

    assert len(chunks) > 3  # written in pieces, not at once
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert chunks[-1].model_extra["citations"][0]["page"] == 2
    message = Message.objects.get(role="assistant")
    assert text == message.content == ANSWER and answer_audited(message)


def test_a_wrong_key_is_an_authentication_error(live_server, fake_llm):
    client = openai.OpenAI(base_url=f"{live_server.url}/v1", api_key="rag_wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as raised:
        client.models.list()
    assert raised.value.status_code == 401 and raised.value.code == "invalid_api_key"


def test_an_unknown_model_is_not_found_in_openai_shape(client, fake_llm):
    with pytest.raises(openai.NotFoundError) as raised:
        client.chat.completions.create(model="gpt-4", messages=QUESTION)
    error = raised.value.body  # the SDK unwraps {"error": {...}}
    assert error["code"] == "model_not_found" and error["type"] and "gpt-4" in error["message"]
    assert not Message.objects.exists()  # nothing was asked
