"""The assistant's part in `manage.py serve` (core.signals, connected in AssistantConfig.ready())."""

from __future__ import annotations

import logging
import threading

from django.conf import settings

logger = logging.getLogger(__name__)


def warm_default_model(**kwargs) -> None:
    """On ``core.signals.warming_up``: unless LOCAL_LLM_WARM_UP is off, load the default model
    in the background so that the first question does not wait for it."""
    if settings.LOCAL_LLM_WARM_UP:
        threading.Thread(target=_warm_default_model, name="warm-model", daemon=True).start()


def _warm_default_model() -> None:
    """Load the offline model in the background (seconds from its cache, ~35 s the first time)
    so the first question does not wait for it; an API model needs nothing."""
    from . import llms

    try:
        model = llms.model_get()
        warm_up = getattr(model.llm, "warm_up", None)
        if warm_up is not None:
            warm_up()
    except Exception:  # the first question will report it with a clear message
        logger.exception("could not load the default model")
