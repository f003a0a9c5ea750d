"""Fakes at the network edge: real servers speaking real protocols on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator

from tests.fakes.deepseek import (
    Behaviour,
    Disconnect,
    ErrorResponse,
    FakeDeepSeek,
    Hang,
    Reply,
    Scripted,
    echo_last_user,
)

__all__ = [
    "Behaviour",
    "Disconnect",
    "ErrorResponse",
    "FakeDeepSeek",
    "Hang",
    "Reply",
    "Scripted",
    "echo_last_user",
]

try:
    import pytest
except ImportError:  # benchmarks may run where pytest is not installed
    pytest = None

if pytest is not None:

    @pytest.fixture
    def fake_deepseek() -> Iterator[FakeDeepSeek]:
        """A running fake DeepSeek; wire it in with ``from tests.fakes import fake_deepseek``."""
        with FakeDeepSeek() as server:
            yield server

    __all__ += ["fake_deepseek"]
