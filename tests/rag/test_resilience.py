"""Retries, breakers and fallback, against the fake DeepSeek server through the real client.

Sleeping and the clock are injected: waits are asserted on, never slept.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

import pytest

from rag.llm import FakeLLM, LLMError, OpenAICompatibleLLM, complete
from rag.local_llm import LocalModelError
from rag.resilience import (
    AllModelsFailed,
    BreakerBoard,
    CircuitBreaker,
    ResilientLLM,
    RetryPolicy,
    Trace,
)
from rag.types import Completion, Delta, Message
from tests.fakes import Disconnect, ErrorResponse, FakeDeepSeek, Hang, Reply

QUESTION = [
    Message(role="system", content="Answer from the sources."),
    Message(role="user", content="What is the capital of France?"),
]


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


@pytest.fixture
def server() -> Iterator[FakeDeepSeek]:
    with FakeDeepSeek() as fake:
        yield fake


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sleeps() -> list[float]:
    return []


def deepseek(server: FakeDeepSeek, **kwargs) -> OpenAICompatibleLLM:
    options = {
        "id": "deepseek",
        "base_url": server.base_url,
        "api_key": "sk-test",
        "model": "deepseek-reasoner",
        "provider": "deepseek",
        "timeout": 2.0,
    } | kwargs
    return OpenAICompatibleLLM(**options)


def local(*replies, **kwargs) -> FakeLLM:
    return FakeLLM(replies, id="local", default="Paris, says the local model.", **kwargs)


def resilient(chain, clock, sleeps, *, threshold=10, cool_down=30.0, **retry) -> ResilientLLM:
    policy = RetryPolicy(**({"base_delay": 0.1, "jitter": "none"} | retry))
    board = BreakerBoard(failure_threshold=threshold, cool_down=cool_down, now=clock)
    return ResilientLLM(chain, retry=policy, breakers=board, sleep=sleeps.append)


def run(llm: ResilientLLM) -> tuple[list[Delta], Completion, Trace]:
    iterator, trace = llm.stream_with_trace(QUESTION)
    items = list(iterator)
    assert isinstance(items[-1], Completion)
    assert not any(isinstance(item, Completion) for item in items[:-1])
    return items[:-1], items[-1], trace


def fail(llm: ResilientLLM) -> tuple[LLMError, list[object], Trace]:
    iterator, trace = llm.stream_with_trace(QUESTION)
    seen: list[object] = []
    with pytest.raises(LLMError) as info:
        for item in iterator:
            seen.append(item)
    return info.value, seen, trace


# ---------------------------------------------------------------------------------------------
# Retries and fallback
# ---------------------------------------------------------------------------------------------


def test_a_429_storm_honours_retry_after_then_falls_back(server, clock, sleeps):
    server.default = ErrorResponse(429, retry_after="2")
    fallback = local()
    llm = resilient([deepseek(server), fallback], clock, sleeps)

    deltas, completion, trace = run(llm)

    assert sleeps == [2.0, 2.0]  # Retry-After is a floor above the 0.1 s / 0.2 s back-off
    assert len(server.requests) == 3
    assert completion.answer == "Paris, says the local model."
    assert completion.provider == "fake"
    assert "".join(d.answer for d in deltas) == completion.answer
    assert len(fallback.calls) == 1
    assert trace.answered_by == "local"
    assert trace.fell_back
    assert [(a.llm_id, a.outcome, a.status, a.waited_s) for a in trace.attempts] == [
        ("deepseek", "rate_limit", 429, 0.0),
        ("deepseek", "rate_limit", 429, 2.0),
        ("deepseek", "rate_limit", 429, 2.0),
        ("local", "ok", None, 0.0),
    ]
    assert [a.retry_after for a in trace.attempts] == [2.0, 2.0, 2.0, None]
    assert trace.waited_s == 4.0
    assert trace.requests == 4
    assert json.loads(json.dumps(trace.as_record()))["answered_by"] == "local"


def test_server_errors_are_retried_with_exponential_back_off(server, clock, sleeps):
    server.enqueue(ErrorResponse(500), ErrorResponse(503), Reply(answer="Paris."))
    fallback = local()
    deltas, completion, trace = run(resilient([deepseek(server), fallback], clock, sleeps))

    assert completion.answer == "Paris."
    assert completion.provider == "deepseek"
    assert sleeps == [0.1, 0.2]
    assert [(a.outcome, a.status) for a in trace.attempts] == [
        ("server", 500),
        ("server", 503),
        ("ok", None),
    ]
    assert trace.answered_by == "deepseek" and not trace.fell_back
    assert fallback.calls == []


def test_a_retry_after_beyond_the_cap_falls_back_without_waiting(server, clock, sleeps):
    server.enqueue(ErrorResponse(429, retry_after="120"))
    _, completion, trace = run(
        resilient([deepseek(server), local()], clock, sleeps, max_retry_after=30)
    )
    assert sleeps == []
    assert len(server.requests) == 1
    assert trace.answered_by == "local"


def test_the_total_wait_is_bounded(server, clock, sleeps):
    server.default = ErrorResponse(503, retry_after="3")
    run(resilient([deepseek(server), local()], clock, sleeps, max_attempts=5, max_total_wait=7))
    assert sleeps == [3.0, 3.0]  # a third wait would pass 7 s: fall back instead
    assert len(server.requests) == 3


def test_a_hung_provider_times_out_then_falls_back(server, clock, sleeps):
    server.enqueue(Hang())
    llm = resilient([deepseek(server, timeout=0.3), local()], clock, sleeps, max_attempts=1)
    started = time.monotonic()
    _, completion, trace = run(llm)
    assert time.monotonic() - started < 3
    assert [a.outcome for a in trace.attempts] == ["timeout", "ok"]
    assert completion.answer == "Paris, says the local model."


def test_a_timeout_is_retried_on_the_same_provider(server, clock, sleeps):
    server.enqueue(Hang(), Reply(answer="Paris."))
    _, completion, trace = run(resilient([deepseek(server, timeout=0.3), local()], clock, sleeps))
    assert completion.answer == "Paris."
    assert [a.outcome for a in trace.attempts] == ["timeout", "ok"]
    assert sleeps == [0.1]


@pytest.mark.parametrize(
    "behaviour",
    [Disconnect(reasoning="Thinking", answer="Paris is"), Hang(answer="Paris is")],
    ids=["disconnect", "stall"],
)
def test_a_stream_broken_after_text_is_incomplete_and_never_retried(
    server, clock, sleeps, behaviour
):
    server.enqueue(behaviour)
    fallback = local()
    llm = resilient([deepseek(server, timeout=0.5), fallback], clock, sleeps)

    error, seen, trace = fail(llm)

    assert error.kind == "incomplete"
    assert "".join(d.answer for d in seen if isinstance(d, Delta)) == "Paris is"
    assert not any(isinstance(item, Completion) for item in seen)
    assert len(server.requests) == 1
    assert fallback.calls == []
    assert sleeps == []
    assert [(a.outcome, a.streamed) for a in trace.attempts] == [("incomplete", True)]
    assert trace.answered_by is None


def test_a_stream_broken_before_any_text_is_retried(server, clock, sleeps):
    server.enqueue(Disconnect(answer="", graceful=True), Reply(answer="Paris."))
    _, completion, trace = run(resilient([deepseek(server), local()], clock, sleeps))
    assert completion.answer == "Paris."
    assert [(a.outcome, a.streamed) for a in trace.attempts] == [
        ("incomplete", False),
        ("ok", False),
    ]


def test_an_error_after_text_from_any_model_is_reported_as_incomplete(clock, sleeps):
    class Breaks(FakeLLM):
        def _replay(self, reply, messages):
            yield Delta(answer="Paris ")
            raise LLMError("model", "The model server reported an error while generating.")

    fallback = local()
    error, seen, _ = fail(resilient([Breaks(id="breaks", default="x"), fallback], clock, sleeps))
    assert error.kind == "incomplete"
    assert error.user_message.endswith("The answer above is incomplete.")
    assert seen == [Delta(answer="Paris ")]
    assert fallback.calls == []


def test_an_auth_error_is_not_retried(clock, sleeps):
    with FakeDeepSeek(api_key="sk-right") as server:
        llm = resilient([deepseek(server), local()], clock, sleeps)
        _, completion, trace = run(llm)
        assert len(server.requests) == 1
        assert sleeps == []
        assert [(a.outcome, a.status) for a in trace.attempts] == [("auth", 401), ("ok", None)]
        # a configuration error says nothing about the provider's health
        assert llm.breakers.get("deepseek").consecutive_failures == 0

        error, _, _ = fail(resilient([deepseek(server)], clock, sleeps))
        assert error.kind == "auth"
        assert "rejected the API key" in error.user_message
        assert len(server.requests) == 2


def test_when_every_model_fails_the_message_says_what_was_tried(server, clock, sleeps):
    server.default = ErrorResponse(429, retry_after="1")
    broken_local = local(LocalModelError("no gguf", user_message="The offline model is missing."))
    error, seen, trace = fail(resilient([deepseek(server), broken_local], clock, sleeps))

    assert isinstance(error, AllModelsFailed)
    assert seen == []
    assert error.user_message == (
        "No model could answer: deepseek rate-limited us 3 times; local is unavailable: "
        "The offline model is missing. Try again in a moment."
    )
    assert error.attempts == tuple(trace.attempts)
    assert [a.outcome for a in trace.attempts] == ["rate_limit"] * 3 + ["model"]


def test_it_is_an_llm_for_any_consumer(server, clock, sleeps):
    server.enqueue(ErrorResponse(503), Reply(reasoning="Think.", answer="Paris."))
    llm = resilient([deepseek(server)], clock, sleeps)
    assert (llm.id, llm.model, llm.provider) == ("deepseek", "deepseek-reasoner", "deepseek")
    done = complete(llm, QUESTION, max_tokens=50)
    assert (done.answer, done.reasoning) == ("Paris.", "Think.")
    assert server.requests[-1]["max_tokens"] == 50


def test_programming_errors_propagate_untouched(clock, sleeps):
    empty = FakeLLM(id="empty")  # no reply queued: a bug in the test set-up, not an outage
    with pytest.raises(LookupError):
        list(resilient([empty, local()], clock, sleeps).stream(QUESTION))


# ---------------------------------------------------------------------------------------------
# Circuit breaker
# ---------------------------------------------------------------------------------------------


def test_the_breaker_opens_skips_the_provider_and_closes_after_the_cool_down(server, clock, sleeps):
    server.default = ErrorResponse(503)
    llm = resilient([deepseek(server), local()], clock, sleeps, threshold=2, max_attempts=1)
    breaker = llm.breakers.get("deepseek")

    run(llm)
    assert breaker.state == "closed"
    run(llm)
    assert breaker.state == "open"
    assert len(server.requests) == 2

    for _ in range(3):
        _, completion, trace = run(llm)
        assert completion.provider == "fake"
        assert [a.outcome for a in trace.attempts] == ["circuit_open", "ok"]
        assert trace.requests == 1
    assert len(server.requests) == 2  # the open breaker kept requests off the server

    clock.advance(29)
    run(llm)
    assert len(server.requests) == 2
    clock.advance(1)
    assert breaker.state == "half_open"
    server.default = Reply(answer="Back.")
    _, completion, _ = run(llm)
    assert completion.answer == "Back."
    assert len(server.requests) == 3
    assert breaker.state == "closed"
    assert [(t.old, t.new) for t in breaker.transitions] == [
        ("closed", "open"),
        ("open", "half_open"),
        ("half_open", "closed"),
    ]


def test_a_failed_probe_reopens_the_breaker(server, clock, sleeps):
    server.default = ErrorResponse(429)
    llm = resilient([deepseek(server), local()], clock, sleeps, threshold=1, cool_down=10)
    breaker = llm.breakers.get("deepseek")
    run(llm)
    assert breaker.state == "open"
    assert sleeps == []  # the breaker opened: no point waiting to retry
    clock.advance(10)
    run(llm)
    assert len(server.requests) == 2  # one probe
    assert breaker.state == "open"
    assert breaker.retry_in() == 10


def test_half_open_lets_a_single_probe_through(clock):
    breaker = CircuitBreaker("p", failure_threshold=1, cool_down=5, now=clock)
    breaker.record_failure()
    assert not breaker.allow()
    clock.advance(5)
    assert breaker.allow()
    assert not breaker.allow()  # the probe is in flight
    breaker.release()  # abandoned without a verdict
    assert breaker.allow()
    clock.advance(5)
    assert breaker.allow()  # an unreported probe expires after a cool-down
    breaker.record_success()
    assert breaker.state == "closed" and breaker.allow()


def test_only_consecutive_failures_open_the_breaker(clock):
    breaker = CircuitBreaker("p", failure_threshold=3, now=clock)
    for _ in range(5):
        breaker.record_failure()
        breaker.record_failure()
        breaker.record_success()
    assert breaker.state == "closed"


def test_the_breaker_is_thread_safe(clock):
    changes = []
    breaker = CircuitBreaker("p", failure_threshold=50, now=clock, on_change=changes.append)
    threads = [
        threading.Thread(target=lambda: [breaker.record_failure() for _ in range(100)])
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert breaker.consecutive_failures == 800
    assert [(c.old, c.new) for c in changes] == [("closed", "open")]


def test_abandoning_a_stream_releases_the_probe(server, clock, sleeps):
    llm = resilient([deepseek(server), local()], clock, sleeps, threshold=1, cool_down=5)
    breaker = llm.breakers.get("deepseek")
    breaker.record_failure()
    clock.advance(5)
    server.enqueue(Reply(answer="one two three four"))
    iterator = llm.stream(QUESTION)
    next(iterator)
    iterator.close()  # type: ignore[attr-defined]
    assert breaker.allow()  # the probe slot is free again


# ---------------------------------------------------------------------------------------------
# RetryPolicy
# ---------------------------------------------------------------------------------------------


def test_back_off_doubles_up_to_the_cap_with_jitter():
    policy = RetryPolicy(base_delay=1, max_delay=5, jitter="none")
    assert [policy.backoff(n) for n in (1, 2, 3, 4)] == [1, 2, 4, 5]
    full = RetryPolicy(base_delay=1, max_delay=5, jitter="full")
    assert full.backoff(3, lambda: 0.5) == 2
    assert full.backoff(3, lambda: 0.0) == 0
    equal = RetryPolicy(base_delay=1, max_delay=5, jitter="equal")
    assert equal.backoff(3, lambda: 0.0) == 2
    assert equal.backoff(3, lambda: 1.0) == 4


def test_retry_after_is_a_floor_and_has_its_own_cap():
    policy = RetryPolicy(base_delay=1, max_delay=2, jitter="none", max_retry_after=10)
    limited = LLMError("rate_limit", "slow down", status=429, retry_after=7)
    assert policy.delay(limited, 1) == 7  # above max_delay, below max_retry_after
    assert policy.delay(LLMError("rate_limit", "x", retry_after=0.5), 2) == 2
    assert policy.delay(LLMError("rate_limit", "x", retry_after=11), 1) is None
    assert policy.delay(limited, 3) is None  # max_attempts reached


@pytest.mark.parametrize("kind", ["auth", "payment", "invalid_request", "model"])
def test_configuration_errors_are_never_retried(kind):
    assert RetryPolicy().delay(LLMError(kind, "no"), 1) is None
    with pytest.raises(ValueError, match="never retried"):
        RetryPolicy(retry_kinds=frozenset({"rate_limit", kind}))


@pytest.mark.parametrize(
    "kwargs",
    [{"max_attempts": 0}, {"base_delay": -1}, {"jitter": "some"}, {"max_retry_after": -1}],
)
def test_bad_retry_settings_are_refused(kwargs):
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)


def test_a_chain_needs_unique_models():
    with pytest.raises(ValueError, match="at least one"):
        ResilientLLM([])
    with pytest.raises(ValueError, match="unique"):
        ResilientLLM([local(), local()])
