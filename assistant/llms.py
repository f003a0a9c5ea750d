"""The language models this deployment can answer with, built once from settings.

Each entry of ``settings.LLMS`` is a dotted path plus options, like the embedder and the store:
adding a provider is configuration, not an ``if provider ==`` branch. The first configured entry
is the default; the offline local model is always last, so an installation with no API key still
answers.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.module_loading import import_string

from rag.llm import LLM


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


def reset_models() -> None:
    global _registry
    with _lock:
        for choice in (_registry or {}).values():
            close = getattr(choice.llm, "close", None)
            if close is not None:
                close()
        _registry = None


@receiver(setting_changed)
def _on_setting_changed(*, setting: str, **kwargs) -> None:
    if setting == "LLMS":
        reset_models()
