"""The language models this deployment can answer with, built once from settings.

Each entry of ``settings.LLMS`` is a dotted path plus options, like the embedder and the store:
adding a provider is configuration, not an ``if provider ==`` branch. The first configured entry
is the default; the offline local model is always last, so an installation with no API key still
answers.
"""

from __future__ import annotations

import functools
import hashlib
import threading
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.core.cache.backends.base import BaseCache
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.module_loading import import_string

from rag.guard import RedactingLLM
from rag.llm import LLM
from rag.pii import PiiRedactor
from rag.resilience import BreakerBoard, ResilientLLM, RetryPolicy
from rag.routing import ModelSpec, Policy


@dataclass(frozen=True)
class ModelChoice:
    """One entry of the model registry (settings.LLMS)."""

    id: str
    label: str
    residency: str  # "internal" (stays on our machines) or "external"
    llm: LLM
    cost_in_per_1k: float = 0.0  # currency units per 1,000 prompt tokens
    cost_out_per_1k: float = 0.0
    context_tokens: int | None = None
    reasoning: bool = False  # returns a reasoning trace of its own
    pinned_version: str | None = None  # the version the provider must report; a change is logged

    @property
    def spec(self) -> ModelSpec:
        """What the routing policy knows of this model."""
        return ModelSpec(
            id=self.id,
            residency=self.residency,
            provider=self.llm.provider,
            cost_in_per_1k=self.cost_in_per_1k,
            cost_out_per_1k=self.cost_out_per_1k,
            context_tokens=self.context_tokens or 8192,
            reasoning=self.reasoning,
            pinned_version=self.pinned_version,
        )

    def cost(self, usage: dict) -> float:
        return round(
            usage.get("prompt_tokens", 0) / 1000 * self.cost_in_per_1k
            + usage.get("completion_tokens", 0) / 1000 * self.cost_out_per_1k,
            6,
        )


_lock = threading.Lock()
_registry: dict[str, ModelChoice] | None = None


def available_models() -> dict[str, ModelChoice]:
    global _registry
    with _lock:
        if _registry is None:
            _registry = {}
            for entry in settings.LLMS:
                llm = import_string(entry["BACKEND"])(**entry.get("OPTIONS", {}))
                _registry[llm.id] = ModelChoice(
                    id=llm.id,
                    label=entry.get("LABEL", llm.id),
                    residency=entry.get("RESIDENCY", "external"),
                    llm=llm,
                    cost_in_per_1k=float(entry.get("COST_IN_PER_1K", 0.0)),
                    cost_out_per_1k=float(entry.get("COST_OUT_PER_1K", 0.0)),
                    context_tokens=entry.get("CONTEXT_TOKENS"),
                    reasoning=bool(entry.get("REASONING", False)),
                    pinned_version=entry.get("PINNED_VERSION") or None,
                )
        return _registry


def default_model_id() -> str:
    return next(iter(available_models()))


class UnknownModel(ValueError):
    pass


def model_get(model_id: str | None = None) -> ModelChoice:
    models = available_models()
    if not model_id:
        return models[default_model_id()]
    try:
        return models[model_id]
    except KeyError:
        raise UnknownModel(f"unknown model {model_id!r}; available: {', '.join(models)}") from None


def routing_policy() -> Policy:
    return Policy(
        local_first_max_words=settings.ROUTING_LOCAL_FIRST_MAX_WORDS,
        escalation=settings.ROUTING_ESCALATION,
        fallback=settings.ROUTING_FALLBACK,
    )


_breakers: BreakerBoard | None = None


def breakers() -> BreakerBoard:
    """One circuit breaker per model: every request shares what the others learned about a
    failing provider. Their state lives in Django's cache when every process reaches it (Redis,
    in production), so the other web processes and workers learn it too; on the embedded
    default (a local-memory cache, one process) it is the process's own."""
    global _breakers
    with _lock:
        if _breakers is None:
            _breakers = BreakerBoard(
                failure_threshold=settings.LLM_BREAKER_FAILURES,
                cool_down=settings.LLM_BREAKER_COOL_DOWN,
                shared=_shared_cache(),
            )
        return _breakers


def _shared_cache() -> BaseCache | None:
    backend = settings.CACHES["default"]["BACKEND"]
    if backend.rsplit(".", 1)[-1] in {"LocMemCache", "DummyCache"}:
        return None  # this process's own memory (or nothing): no one to share with
    return cache


@functools.cache
def _redactor() -> PiiRedactor:
    """Digests keyed by the deployment's secret: a phone number's plain sha256 could be found by
    trying them all, a keyed one cannot without the key."""
    key = hashlib.sha256(b"pii-digest:" + settings.SECRET_KEY.encode()).digest()
    return PiiRedactor(digest_key=key)


def resilient(chain: list[ModelChoice]) -> tuple[ResilientLLM, list[RedactingLLM]]:
    """The chain as one LLM with retries, breakers and fallback. External models are wrapped so
    personal data is replaced by placeholders before it leaves (PII_REDACTION); the wrappers are
    returned too, since they know what they removed."""
    guards = []
    members: list[LLM] = []
    for choice in chain:
        if choice.residency == "external" and settings.PII_REDACTION:
            guard = RedactingLLM(choice.llm, redactor=_redactor())
            guards.append(guard)
            members.append(guard)
        else:
            members.append(choice.llm)
    return ResilientLLM(
        members,
        retry=RetryPolicy(
            max_attempts=settings.LLM_RETRY_ATTEMPTS,
            base_delay=settings.LLM_RETRY_BASE_DELAY,
            max_delay=max(settings.LLM_RETRY_BASE_DELAY, settings.LLM_RETRY_MAX_DELAY),
            max_retry_after=settings.LLM_RETRY_MAX_WAIT,
            max_total_wait=settings.LLM_RETRY_MAX_WAIT,
        ),
        breakers=breakers(),
    ), guards


def reset_models() -> None:
    global _registry, _breakers
    with _lock:
        if _breakers is not None:
            _breakers.reset()  # a shared board's state too: the next test starts closed
        _breakers = None
        for choice in (_registry or {}).values():
            close = getattr(choice.llm, "close", None)
            if close is not None:
                close()
        _registry = None


@receiver(setting_changed)
def _on_setting_changed(*, setting: str, **kwargs) -> None:
    if setting == "LLMS" or setting.startswith("LLM_BREAKER"):
        reset_models()
