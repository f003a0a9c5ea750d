"""Routing in the answering flow, against the fake DeepSeek server (external) and a FakeLLM
standing for an internal model: what each model was sent is asserted, not assumed."""

import pytest

from assistant import llms, services
from assistant.models import Message
from ingest.services import collection_sensitivity_set
from tests.fakes.deepseek import ErrorResponse, Reply

pytestmark = pytest.mark.django_db

RECEIPTS = "How long do I have to hand in my travel receipts?"
GOOD = "Receipts must be submitted within thirty days of travel [1]."


@pytest.fixture
def two_models(settings, deepseek):
    """DeepSeek (external) first, then an internal model."""
    settings.LLMS = [
        *settings.LLMS,
        {
            "BACKEND": "rag.llm.FakeLLM",
            "LABEL": "In-house",
            "RESIDENCY": "internal",
            "OPTIONS": {"id": "inhouse", "model": "inhouse-7b"},
        },
    ]
    llms.reset_models()
    yield deepseek, llms.model_get("inhouse").llm
    llms.reset_models()


def ask(user, **kwargs) -> Message:
    return services.answer_question(user=user, question=RECEIPTS, **kwargs)


def test_confidential_context_never_reaches_the_external_model(
    staff_user, handbook, collection, two_models
):
    deepseek, inhouse = two_models
    collection_sensitivity_set(collection=collection, sensitivity="confidential")
    inhouse.default = GOOD

    message = ask(staff_user)

    assert deepseek.requests == []  # nothing, not even the question, went out
    assert message.route == "inhouse" and message.status == Message.Status.ANSWERED
    assert "confidential" in message.route_reason
    assert message.route_trace["decision"]["chain"] == ["inhouse"]


def test_confidential_with_only_external_models_is_refused(
    staff_user, handbook, collection, deepseek
):
    collection_sensitivity_set(collection=collection, sensitivity="confidential")

    message = ask(staff_user)

    assert message.status == Message.Status.REFUSED and message.route == "refused"
    assert "confidential" in message.content.lower()
    assert deepseek.requests == []


def test_choosing_the_external_model_for_confidential_context_is_refused(
    staff_user, handbook, collection, two_models
):
    deepseek, _ = two_models
    collection_sensitivity_set(collection=collection, sensitivity="confidential")

    message = ask(staff_user, model_id="deepseek")

    assert message.status == Message.Status.REFUSED and deepseek.requests == []


def test_a_429_storm_falls_back_to_the_internal_model(staff_user, handbook, two_models, settings):
    deepseek, inhouse = two_models
    deepseek.enqueue(*[ErrorResponse(429, retry_after="0")] * settings.LLM_RETRY_ATTEMPTS)
    inhouse.default = GOOD

    message = ask(staff_user)

    assert message.status == Message.Status.ANSWERED and message.route == "inhouse"
    (generation,) = message.route_trace["generations"]
    outcomes = [(a["llm_id"], a["outcome"]) for a in generation["attempts"]]
    assert outcomes == [("deepseek", "rate_limit")] * 3 + [("inhouse", "ok")]
    assert len(deepseek.requests) == 3


def test_local_first_escalates_when_the_answer_is_not_grounded(
    staff_user, handbook, two_models, settings
):
    deepseek, inhouse = two_models
    settings.ROUTING_LOCAL_FIRST_MAX_WORDS = 12
    inhouse.default = "Receipts are due within sixty days [1]."  # wrong: unsupported
    deepseek.enqueue(Reply(reasoning="Source 1 says thirty days.", answer=GOOD))

    events = list(services.answer_stream(user=staff_user, question=RECEIPTS))

    assert "escalate" in [e["event"] for e in events]
    message = Message.objects.get(pk=events[-1]["message_id"])
    assert message.route == "deepseek" and message.status == Message.Status.ANSWERED
    assert message.citations[0]["verdict"] == "supported"
    assert "escalated to deepseek" in message.route_reason
    escalation = message.route_trace["escalation"]
    assert escalation["from"]["llm_id"] == "inhouse" and "sixty" in escalation["from"]["answer"]
    assert len(inhouse.calls) == 1 and len(deepseek.requests) == 1


def test_local_first_keeps_a_grounded_internal_answer(staff_user, handbook, two_models, settings):
    deepseek, inhouse = two_models
    settings.ROUTING_LOCAL_FIRST_MAX_WORDS = 12
    inhouse.default = GOOD

    message = ask(staff_user)

    assert message.route == "inhouse" and deepseek.requests == []
    assert "escalation" not in message.route_trace


def test_personal_data_is_redacted_for_the_external_model_only(staff_user, handbook, two_models):
    deepseek, inhouse = two_models
    question = "My card 4111 1111 1111 1111 was charged: how long do I have to hand in receipts?"
    deepseek.enqueue(Reply(answer="Within thirty days of travel [1]; card [CARD_1] noted."))

    message = services.answer_question(user=staff_user, question=question)

    sent = " ".join(m["content"] for m in deepseek.requests[0]["messages"])
    assert "4111 1111 1111 1111" not in sent and "[CARD_1]" in sent
    assert message.content.endswith("card 4111 1111 1111 1111 noted.")  # restored for the user
    (generation,) = message.route_trace["generations"]
    assert [f["kind"] for f in generation["pii_redacted"]["deepseek"]] == ["card"]
    assert "4111" not in str(generation["pii_redacted"])
    import hashlib

    plain = hashlib.sha256(b"card:4111111111111111").hexdigest()
    assert generation["pii_redacted"]["deepseek"][0]["digest"] != plain  # keyed, not guessable

    inhouse.default = GOOD
    services.answer_question(user=staff_user, question=question, model_id="inhouse")
    assert "4111 1111 1111 1111" in inhouse.calls[0][-1].content  # internal: the original


def test_routing_decisions_are_visible_in_audit_export(
    staff_user, handbook, collection, two_models
):
    import io
    import json

    from django.core.management import call_command

    deepseek, inhouse = two_models
    collection_sensitivity_set(collection=collection, sensitivity="confidential")
    inhouse.default = GOOD
    ask(staff_user)
    out = io.StringIO()

    call_command("audit", "export", "--kind", "answer", stdout=out)

    (line,) = out.getvalue().splitlines()
    payload = json.loads(line)["payload"]
    assert payload["route"] == "inhouse" and "confidential" in payload["route_reason"]
    assert payload["route_trace"]["decision"]["chain"] == ["inhouse"]
    assert payload["route_trace"]["generations"][0]["attempts"][0]["outcome"] == "ok"
