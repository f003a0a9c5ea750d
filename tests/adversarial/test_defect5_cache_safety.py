"""Defect 5: the answer cache skipped the sensitivity policy. An answer cached from an external
model on a collection later marked confidential was served from the cache (route `cache`, model
`deepseek-reasoner`) where a fresh question is refused. Now the cache key carries the routing
inputs (the collections' sensitivity, the policy version, the model's residency) and a hit is
served only when a fresh route would allow the model that wrote it."""

import pytest

from assistant import llms, services
from assistant.models import CachedAnswer, Message
from ingest.services import collection_sensitivity_set
from rag.routing import Policy, Sensitivity
from tests.fakes.deepseek import FakeDeepSeek, Reply

pytestmark = pytest.mark.django_db

RECEIPTS = "How long do I have to hand in my travel receipts?"
GOOD = "Receipts must be submitted within thirty days of travel [1]."


@pytest.fixture
def deepseek(settings):
    """The external model: DeepSeek's wire protocol from a fake server on 127.0.0.1."""
    with FakeDeepSeek(api_key="sk-test") as server:
        settings.LLMS = [
            {
                "BACKEND": "rag.llm.OpenAICompatibleLLM",
                "LABEL": "DeepSeek (fake server)",
                "RESIDENCY": "external",
                "OPTIONS": {
                    "id": "deepseek",
                    "provider": "deepseek",
                    "base_url": server.base_url,
                    "api_key": "sk-test",
                    "model": "deepseek-reasoner",
                    "timeout": 5,
                },
            },
        ]
        llms.reset_models()
        yield server
        llms.reset_models()


def ask(user) -> Message:
    return services.answer_question(user=user, question=RECEIPTS)


@pytest.fixture
def cached_external_answer(staff_user, handbook, deepseek):
    deepseek.default = Reply(answer=GOOD)
    first = ask(staff_user)
    assert first.route == "deepseek" and first.status == Message.Status.ANSWERED, first.error
    assert CachedAnswer.objects.count() == 1
    assert ask(staff_user).route == "cache"  # the cache works: served without asking again
    assert len(deepseek.requests) == 1
    return first


def test_a_collection_marked_confidential_is_not_served_from_the_cache(
    staff_user,
    collection,
    deepseek,
    cached_external_answer,
):
    collection_sensitivity_set(collection=collection, sensitivity="confidential")

    again = ask(staff_user)

    # exactly what a fresh question gets: refused, the external model is not allowed
    assert again.route == "refused" and again.status == Message.Status.REFUSED
    assert GOOD not in again.content and "cache_hit" not in again.route_trace
    assert len(deepseek.requests) == 1
    assert not CachedAnswer.objects.exists()  # the stale entry is gone, not merely skipped


def test_an_internal_model_answers_afresh_instead(
    staff_user,
    collection,
    deepseek,
    cached_external_answer,
    settings,
):
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
    llms.model_get("inhouse").llm.default = GOOD
    collection_sensitivity_set(collection=collection, sensitivity="confidential")

    again = ask(staff_user)

    assert again.route == "inhouse" and again.model == "inhouse-7b"
    assert len(deepseek.requests) == 1


def test_a_stricter_policy_is_not_bypassed_by_the_cache(
    staff_user,
    deepseek,
    cached_external_answer,
    monkeypatch,
):
    # The deployment now keeps internal context in-house too: deepseek may not see it.
    monkeypatch.setattr(
        llms, "routing_policy", lambda: Policy(external_max_sensitivity=Sensitivity.PUBLIC)
    )

    again = ask(staff_user)

    assert again.route == "refused" and len(deepseek.requests) == 1


def test_a_sensitivity_change_elsewhere_in_scope_does_not_serve_a_stale_key(
    staff_user,
    collection,
    deepseek,
    cached_external_answer,
):
    # Lowering the sensitivity keeps deepseek allowed; the key changed, so it is asked afresh
    # (a cache entry is only ever served under the routing inputs it was made with).
    collection_sensitivity_set(collection=collection, sensitivity="public")
    again = ask(staff_user)
    assert again.route == "deepseek" and len(deepseek.requests) == 2
    assert ask(staff_user).route == "cache"


def test_every_policy_setting_changes_the_policy_version():
    """A Policy field left out of the version would let a cached answer outlive its change."""
    import dataclasses

    from rag.routing import policy_version

    base = Policy()
    other = {
        "external_max_sensitivity": Sensitivity.PUBLIC,
        "local_first_max_words": base.local_first_max_words + 1,
        "analytical_words": base.analytical_words | {"contrast"},
        "escalation": not base.escalation,
        "fallback": not base.fallback,
        "keep_user_choice_internal": not base.keep_user_choice_internal,
    }
    assert set(other) == {f.name for f in dataclasses.fields(Policy)}
    for name, value in other.items():
        changed = dataclasses.replace(base, **{name: value})
        assert policy_version(changed) != policy_version(base), name
    assert policy_version(Policy()) == policy_version(base)


def test_an_entry_stored_during_a_sensitivity_change_is_still_checked(
    staff_user, collection, deepseek, cached_external_answer
):
    """The race: the answer was routed while the collection was internal and stored just after
    it became confidential, so its key already matches. The fresh-route check still refuses."""
    from assistant.cache import routing_key

    collection_sensitivity_set(collection=collection, sensitivity="confidential")
    CachedAnswer.objects.update(route_key=routing_key(collections=["general"], llm_id="deepseek"))

    again = ask(staff_user)

    assert again.route == "refused" and len(deepseek.requests) == 1
    assert not CachedAnswer.objects.exists()
