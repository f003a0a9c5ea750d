import pytest

from assistant import llms
from tests.docs import make_pdf
from tests.fakes.deepseek import FakeDeepSeek
from tests.ingest.helpers import ingest

HANDBOOK = [
    "Employee handbook\nWelcome to the company. This handbook explains our policies.",
    "Travel policy\nEconomy class is required for flights shorter than six hours.\n"
    "Receipts must be submitted within thirty days of travel.",
    "Security policy\nLaptops must use full disk encryption and a screen lock after five minutes.",
]


@pytest.fixture
def handbook(collection):
    document = ingest(make_pdf(HANDBOOK), "handbook.pdf", collection)
    assert document.status == "ready", document.error
    return document


@pytest.fixture
def deepseek(settings):
    """A DeepSeek-compatible HTTP server, reached through the real openai client."""
    with FakeDeepSeek(api_key="sk-test") as server:
        settings.LLMS = [
            {
                "BACKEND": "rag.llm.OpenAICompatibleLLM",
                "LABEL": "DeepSeek (fake server)",
                "OPTIONS": {
                    "id": "deepseek",
                    "provider": "deepseek",
                    "base_url": server.base_url,
                    "api_key": "sk-test",
                    "model": "deepseek-reasoner",
                    "timeout": 5,
                },
            },
            *settings.LLMS,
        ]
        yield server
        llms.reset_models()
