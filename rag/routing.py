"""Which model may answer a question, and in what order: a pure routing policy.

No I/O, no clock, no Django: ``decide_route`` takes a ``RouteRequest`` and a ``Policy`` and returns
a ``RouteDecision`` that the caller records as is (``RouteDecision.as_record()``).

The rules, in the order they apply:

1. **Residency.** Context from a collection above ``Policy.external_max_sensitivity`` (by default:
   confidential context) is never sent to an external model. The threshold can be lowered (keep
   internal context in-house too) but not raised: confidential context never leaves.
2. **No allowed model → refusal** with a reason the user can act on.
3. **The user's choice** is honoured when the policy allows it. When it does not (an external
   model picked for confidential context), the question is *refused*, not silently answered by
   another model: the person asked a specific model, and an answer quietly coming from elsewhere
   misleads them about who wrote it (and the UI's picker, fed by ``allowed_models``, never offers
   such a choice, so this only happens with a stale page or an API client). The refusal names the
   models that are allowed. A chosen model is never escalated away from, and a chosen *internal*
   model only falls back to internal models (``Policy.keep_user_choice_internal``): picking the
   local model is read as a wish to keep the question in-house.
4. **Local first for short factual questions** (``Policy.local_first_max_words``): internal models
   move ahead of external ones, keeping the deployment's order within each group.
5. **Fallbacks** are the remaining allowed models in that order (``Policy.fallback``).
6. **Confidence escalation**: when the primary is internal and an external model is allowed, the
   first allowed external model is named in ``escalate_to``; ``should_escalate`` decides after
   the answer is verified whether to use it.
"""

from __future__ import annotations

import enum
import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

Residency = Literal["internal", "external"]

FLAG_NO_FALLBACK = "no_fallback"  # answer with the primary or fail: no other model
FLAG_NO_ESCALATION = "no_escalation"  # never re-ask a stronger model
KNOWN_FLAGS = frozenset({FLAG_NO_FALLBACK, FLAG_NO_ESCALATION})


class Sensitivity(enum.IntEnum):
    """Ordered: the sensitivity of a context is the highest level among its collections."""

    PUBLIC = 0
    INTERNAL = 1
    CONFIDENTIAL = 2

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, value: Sensitivity | str) -> Sensitivity:
        if isinstance(value, Sensitivity):
            return value
        try:
            return cls[str(value).strip().upper()]
        except KeyError:
            levels = ", ".join(level.label for level in cls)
            raise ValueError(f"unknown sensitivity {value!r}; expected one of {levels}") from None


def context_sensitivity(levels: Iterable[Sensitivity | str]) -> Sensitivity:
    """The sensitivity of a context built from collections at ``levels``: the highest of them."""
    return max((Sensitivity.parse(level) for level in levels), default=Sensitivity.PUBLIC)


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """What routing needs to know about a configured model."""

    id: str
    residency: Residency
    provider: str
    cost_in_per_1k: float = 0.0
    cost_out_per_1k: float = 0.0
    context_tokens: int = 8192
    reasoning: bool = False
    pinned_version: str | None = None

    def __post_init__(self) -> None:
        if not self.id:
            raise ValueError("ModelSpec.id must not be empty")
        if self.residency not in ("internal", "external"):
            raise ValueError(
                f"model {self.id!r}: residency must be 'internal' or 'external', "
                f"got {self.residency!r}"
            )
        if self.cost_in_per_1k < 0 or self.cost_out_per_1k < 0:
            raise ValueError(f"model {self.id!r}: costs must not be negative")
        if self.context_tokens <= 0:
            raise ValueError(f"model {self.id!r}: context_tokens must be positive")

    @property
    def external(self) -> bool:
        return self.residency == "external"


@dataclass(frozen=True, slots=True)
class RouteRequest:
    """One question to route.

    ``sensitivity`` is the highest level among the collections searched (see
    ``context_sensitivity``); ``models`` are the configured models in the deployment's default
    order; ``requested_model`` is the user's pick, if any; ``flags`` are from ``KNOWN_FLAGS``.
    """

    question: str
    sensitivity: Sensitivity
    models: tuple[ModelSpec, ...]
    requested_model: str | None = None
    flags: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        # Coerce friendly inputs (a str level, a list of models) into the frozen shapes.
        object.__setattr__(self, "sensitivity", Sensitivity.parse(self.sensitivity))
        object.__setattr__(self, "models", tuple(self.models))
        object.__setattr__(self, "flags", frozenset(self.flags))
        unknown = self.flags - KNOWN_FLAGS
        if unknown:
            raise ValueError(f"unknown routing flags: {', '.join(sorted(unknown))}")
        ids = [model.id for model in self.models]
        if len(set(ids)) != len(ids):
            raise ValueError(f"model ids must be unique, got {ids}")


_DEFAULT_ANALYTICAL_WORDS = frozenset(
    {
        "why",
        "explain",
        "compare",
        "comparison",
        "analyse",
        "analyze",
        "summarise",
        "summarize",
        "difference",
        "differences",
        "evaluate",
        "assess",
        "recommend",
        "should",
        "implications",
        "pros",
        "cons",
        "tradeoffs",
        "trade-offs",
    }
)


@dataclass(frozen=True, slots=True)
class Policy:
    """The deployment's static routing rules."""

    # The highest context sensitivity an external model may see. Lowering it to PUBLIC keeps
    # internal context in-house too; CONFIDENTIAL is refused (confidential never leaves).
    external_max_sensitivity: Sensitivity = Sensitivity.INTERNAL
    # Questions of at most this many words, with none of ``analytical_words``, go to an internal
    # model first. 0 turns the rule off.
    local_first_max_words: int = 12
    analytical_words: frozenset[str] = _DEFAULT_ANALYTICAL_WORDS
    escalation: bool = True
    fallback: bool = True
    keep_user_choice_internal: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "external_max_sensitivity", Sensitivity.parse(self.external_max_sensitivity)
        )
        if self.external_max_sensitivity >= Sensitivity.CONFIDENTIAL:
            raise ValueError("confidential context is never sent to an external model")
        if self.local_first_max_words < 0:
            raise ValueError("local_first_max_words must be >= 0")
        object.__setattr__(
            self, "analytical_words", frozenset(w.lower() for w in self.analytical_words)
        )


DEFAULT_POLICY = Policy()

# The meaning of the rules above. Bump it when a change to them could route the same question
# differently: answers cached under an older version are then never served again.
RULES_VERSION = 1


def policy_version(policy: Policy) -> str:
    """A stable digest of the rules and this deployment's policy settings (the answer cache
    keys on it). Stable across processes: no hash() or set order."""
    settings = {
        "rules": RULES_VERSION,
        "external_max_sensitivity": policy.external_max_sensitivity.label,
        "local_first_max_words": policy.local_first_max_words,
        "analytical_words": sorted(policy.analytical_words),
        "escalation": policy.escalation,
        "fallback": policy.fallback,
        "keep_user_choice_internal": policy.keep_user_choice_internal,
    }
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class RouteDecision:
    """The models to try, in order, or a refusal.

    ``chain[0]`` is the primary, the rest are fallbacks for when it fails (``ResilientLLM``).
    ``escalate_to`` is the model to re-ask when ``should_escalate`` says the answer is weak.
    ``refused`` is a message for the user; when set, ``chain`` is empty.
    """

    chain: tuple[str, ...]
    escalate_to: str | None = None
    reasons: tuple[str, ...] = ()
    refused: str | None = None
    sensitivity: Sensitivity = Sensitivity.PUBLIC

    @property
    def primary(self) -> str | None:
        return self.chain[0] if self.chain else None

    @property
    def fallbacks(self) -> tuple[str, ...]:
        return self.chain[1:]

    def as_record(self) -> dict[str, Any]:
        """JSON-ready, for the audit record."""
        return {
            "sensitivity": self.sensitivity.label,
            "chain": list(self.chain),
            "escalate_to": self.escalate_to,
            "reasons": list(self.reasons),
            "refused": self.refused,
        }


def allowed_models(
    sensitivity: Sensitivity | str,
    models: Iterable[ModelSpec],
    *,
    policy: Policy = DEFAULT_POLICY,
) -> tuple[ModelSpec, ...]:
    """The models that may see context of ``sensitivity``, in the given order (the UI's picker)."""
    level = Sensitivity.parse(sensitivity)
    external_ok = level <= policy.external_max_sensitivity
    return tuple(m for m in models if not m.external or external_ok)


def is_short_factual(question: str, policy: Policy = DEFAULT_POLICY) -> bool:
    """A heuristic: few words and no word asking for analysis ("why", "compare"...)."""
    if policy.local_first_max_words == 0:
        return False
    words = re.findall(r"[\w'-]+", question.lower())
    if not words or len(words) > policy.local_first_max_words:
        return False
    return not any(word in policy.analytical_words for word in words)


def decide_route(request: RouteRequest, policy: Policy = DEFAULT_POLICY) -> RouteDecision:
    level = request.sensitivity
    reasons: list[str] = []

    def refuse(message: str) -> RouteDecision:
        return RouteDecision(
            chain=(), reasons=(*reasons, message), refused=message, sensitivity=level
        )

    if not request.models:
        return refuse("No language model is configured on this server.")

    allowed = allowed_models(level, request.models, policy=policy)
    excluded = [m.id for m in request.models if m not in allowed]
    if excluded:
        reasons.append(
            f"context is {level.label}: external models excluded ({', '.join(excluded)})"
        )
    if not allowed:
        return refuse(
            f"This question searches {level.label} collections, and their content is never "
            "sent to an external model; no internal model is configured on this server. Ask an "
            f"administrator to set one up, or search only collections below {level.label}."
        )

    no_fallback = not policy.fallback or FLAG_NO_FALLBACK in request.flags
    no_escalation = not policy.escalation or FLAG_NO_ESCALATION in request.flags

    if request.requested_model:
        chosen = next((m for m in request.models if m.id == request.requested_model), None)
        if chosen is None:
            names = ", ".join(m.id for m in allowed)
            return refuse(
                f"The model {request.requested_model!r} is not available here; choose one of: "
                f"{names}."
            )
        if chosen not in allowed:
            names = ", ".join(m.id for m in allowed)
            return refuse(
                f"You chose {chosen.id}, an external model, but this question searches "
                f"{level.label} collections, whose content is never sent outside. Choose an "
                f"internal model ({names}) or leave the choice to the assistant."
            )
        reasons.append(f"user chose {chosen.id}")
        fallbacks = [m for m in allowed if m is not chosen]
        if not chosen.external and policy.keep_user_choice_internal:
            kept = [m for m in fallbacks if not m.external]
            if len(kept) < len(fallbacks):
                reasons.append("user chose an internal model: fallbacks stay internal")
            fallbacks = kept
        chain = [chosen, *fallbacks]
        if no_fallback and len(chain) > 1:
            reasons.append("fallback disabled")
            chain = chain[:1]
        return RouteDecision(
            chain=tuple(m.id for m in chain),
            escalate_to=None,
            reasons=tuple(reasons),
            sensitivity=level,
        )

    ordered = list(allowed)
    has_internal = any(not m.external for m in ordered)
    if has_internal and ordered[0].external and is_short_factual(request.question, policy):
        ordered.sort(key=lambda m: m.external)  # stable: keeps the default order in each group
        words = len(re.findall(r"[\w'-]+", request.question))
        reasons.append(f"short factual question ({words} words): local first")
    else:
        reasons.append(f"default order: {ordered[0].id} first")
    primary = ordered[0]

    escalate_to: str | None = None
    if not primary.external:
        target = next((m for m in ordered if m.external), None)
        if no_escalation:
            if target is not None:
                reasons.append("escalation disabled")
        elif target is not None:
            escalate_to = target.id
            reasons.append(f"may escalate to {target.id} if the answer is weak")
        elif excluded:
            reasons.append(f"no escalation: {level.label} context stays on internal models")

    chain = ordered
    if no_fallback and len(chain) > 1:
        reasons.append("fallback disabled")
        chain = chain[:1]
    return RouteDecision(
        chain=tuple(m.id for m in chain),
        escalate_to=escalate_to,
        reasons=tuple(reasons),
        sensitivity=level,
    )


# Answer statuses as the assistant records them (answered, extractive, withheld, abstained,
# no_sources, incomplete, error); only the first four can be improved by asking a stronger model.
_NOT_ESCALATED = {
    "no_sources": "no relevant sources: a stronger model cannot answer from nothing",
    "incomplete": "the answer is incomplete: it is reported as such, not re-asked",
    "error": "the model failed: fallback, not escalation, handles errors",
}


def should_escalate(
    *, status: str, has_unsupported: bool, abstained: bool, relevant_sources: int
) -> tuple[bool, str]:
    """Whether a verified answer from the primary should be re-asked of ``escalate_to``.

    Only the answer is judged here; whether escalation is allowed at all was decided by
    ``decide_route`` (``RouteDecision.escalate_to`` is None when it is not).
    """
    if status in _NOT_ESCALATED:
        return False, _NOT_ESCALATED[status]
    if abstained or status == "abstained":
        if relevant_sources > 0:
            plural = "s were" if relevant_sources != 1 else " was"
            return True, (
                f"the model abstained although {relevant_sources} relevant source{plural} found"
            )
        return False, "the model abstained and no relevant source was found"
    if has_unsupported:
        return True, "citation verification found unsupported claims"
    if status in {"extractive", "withheld"}:
        return True, "the model's answer could not be verified against its sources"
    return False, "the answer is supported by its sources"


# A dated snapshot suffix: -2024-08-06, -20240806, @20240806, -0613 (OpenAI's MMDD), :latest.
_SNAPSHOT_SUFFIX = re.compile(r"^(?:[-_@](?:\d{4}-\d{2}-\d{2}|\d{8}|\d{4})|:latest)$")


def version_changed(pinned: str | None, reported: str | None) -> bool:
    """Whether the model a provider reports differs from the pinned version.

    Nothing pinned or nothing reported: False (nothing to compare). Case and surrounding spaces
    are ignored. Pinning an alias accepts its dated snapshots: pinned ``gpt-4o`` matches a reported
    ``gpt-4o-2024-08-06`` (the provider resolving the alias), and ``llama3`` matches
    ``llama3:latest``. Pinning a snapshot is exact: ``gpt-4o-2024-05-13`` vs ``gpt-4o-2024-08-06``
    is a change, as is any other suffix (``deepseek-chat`` vs ``deepseek-chat-v2``).
    """
    if not pinned or not reported:
        return False
    pin = pinned.strip().lower()
    got = reported.strip().lower()
    if not pin or not got or got == pin:
        return False
    if got.startswith(pin) and _SNAPSHOT_SUFFIX.match(got[len(pin) :]):
        return False
    return True
