import pytest

from assistant import llms
from tests.conftest import HANDBOOK  # noqa: F401  (re-exported for the browser test)
from tests.fakes.deepseek import FakeDeepSeek


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
        ]
        yield server
        llms.reset_models()
