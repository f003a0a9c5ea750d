"""The routing policy: pure functions, checked exhaustively where it matters (residency)."""

from __future__ import annotations

import itertools
import json

import pytest

from rag.routing import (
    FLAG_NO_ESCALATION,
    FLAG_NO_FALLBACK,
    ModelSpec,
    Policy,
    RouteRequest,
    Sensitivity,
    allowed_models,
    context_sensitivity,
    decide_route,
    is_short_factual,
    should_escalate,
    version_changed,
)

DEEPSEEK = ModelSpec(
    id="deepseek-reasoner",
    residency="external",
    provider="deepseek",
    cost_in_per_1k=0.00055,
    cost_out_per_1k=0.00219,
    context_tokens=64_000,
    reasoning=True,
)
OPENAI = ModelSpec(id="gpt-4o", residency="external", provider="openai")
LOCAL = ModelSpec(id="local", residency="internal", provider="local", context_tokens=2048)
VLLM = ModelSpec(id="vllm-qwen", residency="internal", provider="vllm")

SHORT = "When does the Lyon office open?"
LONG = (
    "Given the travel policy and the expense rules, explain how a contractor should claim a "
    "train ticket bought abroad in a foreign currency."
)


def route(question=SHORT, sensitivity="public", models=(DEEPSEEK, LOCAL), **kwargs):
    policy = kwargs.pop("policy", Policy())
    return decide_route(RouteRequest(question, sensitivity, models, **kwargs), policy)


# ---------------------------------------------------------------------------------------------
# Residency: confidential context never reaches an external model
# ---------------------------------------------------------------------------------------------

ALL_MODELS = (DEEPSEEK, OPENAI, LOCAL, VLLM)
POLICIES = [
    Policy(),
    Policy(local_first_max_words=0),
    Policy(escalation=False, fallback=False),
    Policy(keep_user_choice_internal=False),
    Policy(external_max_sensitivity=Sensitivity.PUBLIC),
]


def model_sets():
    for size in range(0, len(ALL_MODELS) + 1):
        for subset in itertools.combinations(ALL_MODELS, size):
            yield from itertools.permutations(subset)


def test_confidential_context_never_routes_to_an_external_model():
    by_id = {m.id: m for m in ALL_MODELS}
    checked = 0
    for models, policy, question, flags in itertools.product(
        list(model_sets()),
        POLICIES,
        (SHORT, LONG, ""),
        (frozenset(), frozenset({FLAG_NO_FALLBACK}), frozenset({FLAG_NO_ESCALATION})),
    ):
        for requested in (None, "nope", *(m.id for m in ALL_MODELS)):
            for level in Sensitivity:
                decision = route(
                    question,
                    level,
                    models,
                    requested_model=requested,
                    flags=flags,
                    policy=policy,
                )
                checked += 1
                allowed = allowed_models(level, models, policy=policy)
                used = [*decision.chain, *filter(None, [decision.escalate_to])]
                # every model tried or escalated to is configured and allowed, once
                assert all(by_id[i] in allowed for i in used), (level, models, requested)
                assert len(set(decision.chain)) == len(decision.chain)
                if level == Sensitivity.CONFIDENTIAL:
                    assert not any(by_id[i].external for i in used)
                if decision.refused:
                    assert decision.chain == () and decision.escalate_to is None
                    assert decision.reasons[-1] == decision.refused
                else:
                    assert decision.chain, "neither a chain nor a refusal"
                if requested and not decision.refused:
                    assert decision.primary == requested
                    assert decision.escalate_to is None
    assert checked > 50_000


def test_confidential_with_only_external_models_is_refused_with_a_reason():
    decision = route(sensitivity="confidential", models=(DEEPSEEK, OPENAI))
    assert decision.chain == ()
    assert decision.refused is not None
    assert "confidential" in decision.refused
    assert "never sent to an external model" in decision.refused
    assert "no internal model" in decision.refused
    assert decision.reasons[0] == (
        "context is confidential: external models excluded (deepseek-reasoner, gpt-4o)"
    )


def test_confidential_goes_to_the_internal_model_and_says_why():
    decision = route(LONG, "confidential", (DEEPSEEK, LOCAL))
    assert decision.chain == ("local",)
    assert decision.escalate_to is None
    assert "context is confidential: external models excluded (deepseek-reasoner)" in (
        decision.reasons
    )
    assert "no escalation: confidential context stays on internal models" in decision.reasons


def test_choosing_an_external_model_for_confidential_context_is_refused_not_switched():
    decision = route(sensitivity="confidential", requested_model="deepseek-reasoner")
    assert decision.chain == ()
    assert "You chose deepseek-reasoner, an external model" in decision.refused
    assert "Choose an internal model (local)" in decision.refused


def test_a_stricter_policy_keeps_internal_context_in_house_too():
    strict = Policy(external_max_sensitivity="public")
    assert route(LONG, "internal", policy=strict).chain == ("local",)
    assert route(LONG, "public", policy=strict).chain == ("deepseek-reasoner", "local")


def test_the_policy_cannot_let_confidential_context_out():
    with pytest.raises(ValueError, match="never sent"):
        Policy(external_max_sensitivity=Sensitivity.CONFIDENTIAL)


def test_allowed_models_feed_the_picker_in_the_default_order():
    models = (DEEPSEEK, LOCAL, OPENAI, VLLM)
    assert allowed_models("public", models) == models
    assert allowed_models("internal", models) == models
    assert allowed_models("confidential", models) == (LOCAL, VLLM)


def test_context_sensitivity_is_the_highest_level_searched():
    assert context_sensitivity(["public", "confidential", "internal"]) == Sensitivity.CONFIDENTIAL
    assert context_sensitivity([Sensitivity.INTERNAL, "public"]) == Sensitivity.INTERNAL
    assert context_sensitivity([]) == Sensitivity.PUBLIC
    with pytest.raises(ValueError, match="unknown sensitivity"):
        context_sensitivity(["secret"])


# ---------------------------------------------------------------------------------------------
# Static rules and user choice
# ---------------------------------------------------------------------------------------------


def test_short_factual_questions_go_local_first():
    decision = route(SHORT, "public", (DEEPSEEK, OPENAI, LOCAL, VLLM))
    assert decision.chain == ("local", "vllm-qwen", "deepseek-reasoner", "gpt-4o")
    assert "short factual question (6 words): local first" in decision.reasons
    assert decision.escalate_to == "deepseek-reasoner"


@pytest.mark.parametrize(
    "question", [LONG, "Why does the Lyon office open at 8:30?", "Compare the two plans."]
)
def test_long_or_analytical_questions_keep_the_default_order(question):
    decision = route(question)
    assert decision.chain == ("deepseek-reasoner", "local")
    assert decision.escalate_to is None  # the primary is already the strong model
    assert "default order: deepseek-reasoner first" in decision.reasons


def test_the_local_first_rule_can_be_turned_off():
    assert not is_short_factual(SHORT, Policy(local_first_max_words=0))
    assert route(SHORT, policy=Policy(local_first_max_words=0)).primary == "deepseek-reasoner"


def test_a_local_default_escalates_to_the_first_external_model():
    decision = route(LONG, "internal", (LOCAL, OPENAI, DEEPSEEK))
    assert decision.chain == ("local", "gpt-4o", "deepseek-reasoner")
    assert decision.escalate_to == "gpt-4o"
    assert "may escalate to gpt-4o if the answer is weak" in decision.reasons


def test_escalation_can_be_disabled_by_policy_or_flag():
    assert route(SHORT, policy=Policy(escalation=False)).escalate_to is None
    decision = route(SHORT, flags={FLAG_NO_ESCALATION})
    assert decision.escalate_to is None
    assert "escalation disabled" in decision.reasons


def test_the_user_choice_is_honoured_when_allowed():
    decision = route(SHORT, "internal", requested_model="deepseek-reasoner")
    assert decision.chain == ("deepseek-reasoner", "local")
    assert decision.escalate_to is None
    assert decision.reasons[0] == "user chose deepseek-reasoner"


def test_a_chosen_internal_model_falls_back_only_internally():
    decision = route(LONG, "public", (DEEPSEEK, LOCAL, VLLM), requested_model="local")
    assert decision.chain == ("local", "vllm-qwen")
    assert "user chose an internal model: fallbacks stay internal" in decision.reasons
    relaxed = Policy(keep_user_choice_internal=False)
    assert route(LONG, "public", (DEEPSEEK, LOCAL), requested_model="local", policy=relaxed).chain
    assert route(
        LONG, "public", (DEEPSEEK, LOCAL), requested_model="local", policy=relaxed
    ).chain == ("local", "deepseek-reasoner")


def test_an_unknown_model_is_refused():
    decision = route(requested_model="gpt-5")
    assert decision.refused == (
        "The model 'gpt-5' is not available here; choose one of: deepseek-reasoner, local."
    )


def test_no_fallback_keeps_only_the_primary():
    assert route(LONG, flags={FLAG_NO_FALLBACK}).chain == ("deepseek-reasoner",)
    assert route(LONG, policy=Policy(fallback=False)).chain == ("deepseek-reasoner",)


def test_no_models_is_a_refusal():
    assert route(models=()).refused == "No language model is configured on this server."


def test_requests_are_validated():
    with pytest.raises(ValueError, match="unknown routing flags"):
        RouteRequest(SHORT, "public", (LOCAL,), flags={"fast"})
    with pytest.raises(ValueError, match="unique"):
        RouteRequest(SHORT, "public", (LOCAL, LOCAL))
    with pytest.raises(ValueError, match="residency"):
        ModelSpec(id="x", residency="cloud", provider="x")  # type: ignore[arg-type]


def test_the_decision_is_recordable_as_json():
    record = route(SHORT).as_record()
    assert json.loads(json.dumps(record)) == {
        "sensitivity": "public",
        "chain": ["local", "deepseek-reasoner"],
        "escalate_to": "deepseek-reasoner",
        "reasons": [
            "short factual question (6 words): local first",
            "may escalate to deepseek-reasoner if the answer is weak",
        ],
        "refused": None,
    }


# ---------------------------------------------------------------------------------------------
# Confidence escalation
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "expected", "reason"),
    [
        (
            {"status": "answered", "has_unsupported": True, "abstained": False},
            True,
            "citation verification found unsupported claims",
        ),
        (
            {"status": "extractive", "has_unsupported": True, "abstained": False},
            True,
            "citation verification found unsupported claims",
        ),
        (
            {"status": "withheld", "has_unsupported": False, "abstained": False},
            True,
            "the model's answer could not be verified against its sources",
        ),
        (
            {"status": "abstained", "has_unsupported": False, "abstained": True},
            True,
            "the model abstained although 3 relevant sources were found",
        ),
        (
            {"status": "answered", "has_unsupported": False, "abstained": False},
            False,
            "the answer is supported by its sources",
        ),
        (
            {"status": "no_sources", "has_unsupported": False, "abstained": True},
            False,
            "no relevant sources: a stronger model cannot answer from nothing",
        ),
        (
            {"status": "incomplete", "has_unsupported": True, "abstained": False},
            False,
            "the answer is incomplete: it is reported as such, not re-asked",
        ),
        (
            {"status": "error", "has_unsupported": False, "abstained": False},
            False,
            "the model failed: fallback, not escalation, handles errors",
        ),
    ],
)
def test_should_escalate(kwargs, expected, reason):
    assert should_escalate(**kwargs, relevant_sources=3) == (expected, reason)


def test_an_abstention_without_relevant_sources_is_not_escalated():
    assert should_escalate(
        status="abstained", has_unsupported=False, abstained=True, relevant_sources=0
    ) == (False, "the model abstained and no relevant source was found")
    assert should_escalate(
        status="abstained", has_unsupported=False, abstained=True, relevant_sources=1
    ) == (True, "the model abstained although 1 relevant source was found")


# ---------------------------------------------------------------------------------------------
# Version pins
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pinned", "reported", "changed"),
    [
        (None, "deepseek-reasoner", False),
        ("deepseek-reasoner", "", False),
        ("deepseek-reasoner", None, False),
        ("deepseek-reasoner", "deepseek-reasoner", False),
        ("DeepSeek-Reasoner", " deepseek-reasoner ", False),
        ("gpt-4o", "gpt-4o-2024-08-06", False),
        ("gpt-4", "gpt-4-0613", False),
        ("claude-x", "claude-x@20240229", False),
        ("llama3", "llama3:latest", False),
        ("gpt-4o-2024-05-13", "gpt-4o-2024-08-06", True),
        ("deepseek-chat", "deepseek-chat-v2", True),
        ("deepseek-chat", "deepseek-reasoner", True),
        ("llama3", "llama3:70b", True),
        ("gpt-4o", "gpt-4o-mini", True),
    ],
)
def test_version_changed(pinned, reported, changed):
    assert version_changed(pinned, reported) is changed
