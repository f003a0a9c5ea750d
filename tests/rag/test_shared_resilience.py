"""Breakers and Retry-After pauses shared across processes through Django's cache (Redis).

Two processes: this one (A, the test) and a peer (B) started with ``subprocess``, both on the
app's wiring (``assistant.llms.breakers()``, settings from the environment, the same Redis
cache), both asking the fake DeepSeek server, which counts what reaches it. With a local-memory
cache (the embedded default) the state stays per process. The breaker's rules themselves are
checked against the shared implementation too, on a local-memory cache and on Redis.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core.cache import caches
from django.core.cache.backends.locmem import LocMemCache

from assistant import llms
from rag.llm import FakeLLM, OpenAICompatibleLLM
from rag.resilience import (
    BreakerBoard,
    CircuitBreaker,
    ResilientLLM,
    RetryPolicy,
    SharedCircuitBreaker,
)
from rag.types import Completion, Message
from tests.fakes import ErrorResponse, FakeDeepSeek, Reply

ROOT = Path(__file__).resolve().parents[2]
FAILURES = 2
COOL_DOWN = 3.0  # long enough for B to ask while it is open on a busy machine

QUESTION = [
    Message(role="system", content="Answer from the sources."),
    Message(role="user", content="What is the capital of France?"),
]

# The peer: the app's breakers (``llms.breakers()``, from its own settings and cache) over a chain
# of a fake DeepSeek (base URL and model id given with each command) then a local fake. One
# command a line on stdin ("ask URL ID", "state ID"), one JSON line back.
PEER = """
import json, sys
import django

django.setup()
from assistant import llms
from rag.llm import FakeLLM, LLMError, OpenAICompatibleLLM
from rag.resilience import ResilientLLM, RetryPolicy
from rag.types import Completion, Message

board = llms.breakers()
policy = RetryPolicy(max_attempts=1, max_retry_after=30, max_total_wait=30)
question = [Message(role="user", content="What is the capital of France?")]
OpenAICompatibleLLM(id="warm-up", base_url="http://127.0.0.1:9", api_key="k", model="m").close()
print(json.dumps({"ready": True, "shared": board.shared is not None}), flush=True)
for line in sys.stdin:
    command, *args = line.split()
    if command == "ask":
        base_url, model_id = args
        remote = OpenAICompatibleLLM(
            id=model_id, base_url=base_url, api_key="sk-test", model="deepseek-reasoner",
            provider="deepseek", timeout=5,
        )
        local = FakeLLM(id="local", default="Paris, says the local model.")
        llm = ResilientLLM([remote, local], retry=policy, breakers=board)
        iterator, trace = llm.stream_with_trace(question)
        try:
            answer = [i for i in iterator if isinstance(i, Completion)][0].answer
        except LLMError as exc:
            answer = "error: " + exc.user_message
        remote.close()
        print(json.dumps({"answer": answer, "trace": trace.as_record()}), flush=True)
    elif command == "state":
        print(json.dumps({"state": board.get(args[0]).state}), flush=True)
"""


class Peer:
    """Process B: a second Python process on the same settings (or the ones given)."""

    def __init__(self, **env: str) -> None:
        environment = os.environ | {
            "DJANGO_SETTINGS_MODULE": "config.settings.test",
            "LLM_BREAKER_FAILURES": str(FAILURES),
            "LLM_BREAKER_COOL_DOWN": str(COOL_DOWN),
        }
        self.process = subprocess.Popen(
            [sys.executable, "-c", PEER],
            cwd=ROOT,
            env=environment | env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._hello: dict | None = None  # read on first use: two peers start side by side

    @property
    def hello(self) -> dict:
        if self._hello is None:
            self._hello = self._read()
        return self._hello

    def _read(self) -> dict:
        line = self.process.stdout.readline()
        if not line:
            raise AssertionError(f"the peer died: {self.process.stderr.read()}")
        return json.loads(line)

    def send(self, *command: str) -> dict:
        assert self.hello["ready"]
        self.process.stdin.write(" ".join(command) + "\n")
        self.process.stdin.flush()
        return self._read()

    def ask(self, server: FakeDeepSeek, model_id: str) -> dict:
        return self.send("ask", server.base_url, model_id)

    def state(self, model_id: str) -> str:
        return self.send("state", model_id)["state"]

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)
        self.process.stdin.close()
        self.process.stdout.close()
        self.process.stderr.close()


def outcomes(reply: dict) -> list[tuple[str, str]]:
    return [(a["llm_id"], a["outcome"]) for a in reply["trace"]["attempts"]]


@pytest.fixture
def server() -> Iterator[FakeDeepSeek]:
    with FakeDeepSeek() as fake:
        yield fake


@pytest.fixture
def model_id() -> str:
    """A model id of its own per test, so no state of another test or run can be read."""
    return f"deepseek-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def shared_app(settings):
    """This process's app breakers, on the test settings' Redis cache."""
    assert settings.CACHES["default"]["BACKEND"].endswith("RedisCache")
    settings.LLM_BREAKER_FAILURES = FAILURES
    settings.LLM_BREAKER_COOL_DOWN = COOL_DOWN
    board = llms.breakers()
    assert board.shared is not None
    yield board
    llms.reset_models()  # deletes the shared state of its breakers


@pytest.fixture(scope="module")
def peer() -> Iterator[Peer]:
    """Process B on the test settings: the same Redis cache as this process."""
    started = Peer()
    yield started
    started.close()


def process_a(server: FakeDeepSeek, model_id: str, board: BreakerBoard) -> ResilientLLM:
    remote = OpenAICompatibleLLM(
        id=model_id,
        base_url=server.base_url,
        api_key="sk-test",
        model="deepseek-reasoner",
        provider="deepseek",
        timeout=5,
    )
    local = FakeLLM(id="local", default="Paris, says the local model.")
    policy = RetryPolicy(max_attempts=1, max_retry_after=30, max_total_wait=30)
    return ResilientLLM([remote, local], retry=policy, breakers=board)


def ask(llm: ResilientLLM) -> list[tuple[str, str]]:
    iterator, trace = llm.stream_with_trace(QUESTION)
    items = list(iterator)
    assert isinstance(items[-1], Completion)
    return [(a.llm_id, a.outcome) for a in trace.attempts]


# ---------------------------------------------------------------------------------------------
# Two processes, one Redis
# ---------------------------------------------------------------------------------------------


def test_a_breaker_opened_by_one_process_keeps_the_other_off_the_provider(
    server, model_id, shared_app, peer
):
    assert peer.hello == {"ready": True, "shared": True}
    a = process_a(server, model_id, shared_app)
    server.default = ErrorResponse(503)

    assert ask(a) == [(model_id, "server"), ("local", "ok")]
    assert ask(a) == [(model_id, "server"), ("local", "ok")]
    assert shared_app.get(model_id).state == "open"
    assert len(server.requests) == 2

    # B has never called the provider, and does not now: it answers from the next model
    for _ in range(2):
        reply = peer.ask(server, model_id)
        assert outcomes(reply) == [(model_id, "circuit_open"), ("local", "ok")]
        assert reply["answer"] == "Paris, says the local model."
        assert "paused after repeated failures" in reply["trace"]["attempts"][0]["message"]
    assert peer.state(model_id) == "open"
    assert len(server.requests) == 2  # nothing from B

    time.sleep(shared_app.get(model_id).retry_in() + 0.05)
    assert peer.state(model_id) == "half_open"
    server.default = Reply(answer="Back.")
    reply = peer.ask(server, model_id)  # B's probe goes through and closes the breaker for both
    assert outcomes(reply) == [(model_id, "ok")]
    assert reply["answer"] == "Back."
    assert len(server.requests) == 3
    assert shared_app.get(model_id).state == "closed"
    assert ask(a) == [(model_id, "ok")]


def test_only_one_process_sends_the_half_open_probe(server, model_id, shared_app, peer):
    breaker = shared_app.get(model_id)
    for _ in range(FAILURES):
        breaker.record_failure()
    assert peer.state(model_id) == "open"
    time.sleep(breaker.retry_in() + 0.05)

    assert breaker.allow()  # A's probe is in flight
    reply = peer.ask(server, model_id)
    assert outcomes(reply) == [(model_id, "circuit_open"), ("local", "ok")]
    assert server.requests == []

    breaker.release()  # A's request ended without a verdict: the slot is free
    reply = peer.ask(server, model_id)
    assert outcomes(reply) == [(model_id, "ok")]
    assert len(server.requests) == 1
    assert breaker.state == "closed"


def test_a_failed_probe_in_one_process_reopens_the_breaker_for_the_other(
    server, model_id, shared_app, peer
):
    breaker = shared_app.get(model_id)
    for _ in range(FAILURES):
        breaker.record_failure()
    time.sleep(breaker.retry_in() + 0.05)

    server.default = ErrorResponse(503)
    reply = peer.ask(server, model_id)  # B's probe fails
    assert outcomes(reply) == [(model_id, "server"), ("local", "ok")]
    assert breaker.state == "open" and breaker.retry_in() > COOL_DOWN - 0.5
    a = process_a(server, model_id, shared_app)
    assert ask(a) == [(model_id, "circuit_open"), ("local", "ok")]
    assert len(server.requests) == 1


def test_a_retry_after_learned_by_one_process_holds_for_the_other(
    server, model_id, shared_app, peer
):
    a = process_a(server, model_id, shared_app)

    # Longer than B may wait (max_retry_after 30 s): B goes to the next model, no request.
    server.enqueue(ErrorResponse(429, retry_after="120"))
    assert ask(a) == [(model_id, "rate_limit"), ("local", "ok")]
    reply = peer.ask(server, model_id)
    assert outcomes(reply) == [(model_id, "paused"), ("local", "ok")]
    assert "asked us to wait 120 s" in reply["trace"]["attempts"][0]["message"]
    assert len(server.requests) == 1
    shared_app.get(model_id).forget()

    # Short enough to wait for: B waits until the provider's time, then asks.
    server.enqueue(ErrorResponse(429, retry_after="2"))
    assert ask(a) == [(model_id, "rate_limit"), ("local", "ok")]
    learned = time.monotonic()
    reply = peer.ask(server, model_id)
    assert time.monotonic() - learned >= 1.5
    assert outcomes(reply) == [(model_id, "ok")]
    assert 1.0 < reply["trace"]["attempts"][0]["waited_s"] <= 2.0
    assert len(server.requests) == 3


def test_with_a_local_memory_cache_each_process_keeps_its_own_state(server, model_id):
    """The embedded default: one process, its own memory; nothing crosses to another."""
    server.default = ErrorResponse(503)
    first = Peer(CACHE_URL="locmemcache://")
    try:
        second = Peer(CACHE_URL="locmemcache://")
        try:
            assert first.hello == second.hello == {"ready": True, "shared": False}

            for _ in range(FAILURES):
                reply = first.ask(server, model_id)
                assert outcomes(reply) == [(model_id, "server"), ("local", "ok")]
            assert first.state(model_id) == "open"
            reply = first.ask(server, model_id)
            assert outcomes(reply) == [(model_id, "circuit_open"), ("local", "ok")]
            assert len(server.requests) == 2

            assert second.state(model_id) == "closed"
            reply = second.ask(server, model_id)
            assert outcomes(reply) == [(model_id, "server"), ("local", "ok")]
            assert len(server.requests) == 3  # the second process asked the provider itself
        finally:
            second.close()
    finally:
        first.close()


def test_the_app_keeps_breakers_in_process_on_a_local_memory_cache(settings):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    llms.reset_models()
    try:
        board = llms.breakers()
        assert board.shared is None
        assert isinstance(board.get("deepseek"), CircuitBreaker)
    finally:
        llms.reset_models()


# ---------------------------------------------------------------------------------------------
# The breaker's rules, on the shared implementation (the same as tests/rag/test_resilience.py's)
# ---------------------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


@pytest.fixture(params=["locmem", "redis"])
def cache(request):
    if request.param == "locmem":
        yield LocMemCache(f"breakers-{uuid.uuid4().hex}", {})
    else:
        redis = caches["default"]
        assert type(redis).__name__ == "RedisCache"
        yield redis


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def shared(cache, clock) -> Iterator:
    """Makes shared breakers on the cache, with the test's clock; forgets them afterwards."""
    made: list[SharedCircuitBreaker] = []

    def make(**kwargs) -> SharedCircuitBreaker:
        options = {"failure_threshold": 1, "cool_down": 5.0, "clock": clock} | kwargs
        breaker = SharedCircuitBreaker(f"p-{uuid.uuid4().hex[:8]}", cache, **options)
        made.append(breaker)
        return breaker

    yield make
    for breaker in made:
        breaker.forget()


def test_shared_half_open_lets_a_single_probe_through(shared, clock):
    breaker = shared(failure_threshold=1, cool_down=5)
    breaker.record_failure()
    assert breaker.state == "open" and breaker.retry_in() == 5
    assert not breaker.allow()
    clock.advance(5)
    assert breaker.state == "half_open"
    assert breaker.allow()
    assert not breaker.allow()  # the probe is in flight
    breaker.release()  # abandoned without a verdict
    assert breaker.allow()
    clock.advance(5)
    assert breaker.allow()  # an unreported probe expires after a cool-down
    breaker.record_success()
    assert breaker.state == "closed" and breaker.allow()
    assert [(t.old, t.new) for t in breaker.transitions] == [
        ("closed", "open"),
        ("open", "half_open"),
        ("half_open", "closed"),
    ]


def test_shared_probe_belongs_to_the_process_that_took_it(shared, cache, clock):
    """Two breakers on the same name stand for two processes."""
    mine = shared(failure_threshold=1, cool_down=5)
    theirs = SharedCircuitBreaker(mine.name, cache, failure_threshold=1, cool_down=5, clock=clock)
    mine.record_failure()
    assert theirs.state == "open" and not theirs.allow()
    clock.advance(5)
    assert mine.allow()
    assert not theirs.allow()
    theirs.release()  # holds no probe: does not free mine
    assert not theirs.allow()
    mine.record_failure()  # the probe failed: open again for both
    assert theirs.state == "open" and theirs.retry_in() == 5
    assert [(t.old, t.new) for t in theirs.transitions] == [
        ("closed", "open"),
        ("open", "half_open"),
    ]


def test_shared_only_consecutive_failures_open_the_breaker(shared):
    breaker = shared(failure_threshold=3)
    for _ in range(5):
        breaker.record_failure()
        breaker.record_failure()
        breaker.record_success()
    assert breaker.state == "closed" and breaker.consecutive_failures == 0
    breaker.record_failure()
    assert breaker.consecutive_failures == 1


def test_shared_failures_while_open_do_not_push_the_cool_down(shared, clock):
    breaker = shared(failure_threshold=1, cool_down=5)
    breaker.record_failure()
    clock.advance(3)
    breaker.record_failure()  # a request that started before it opened
    assert breaker.retry_in() == 2


def test_the_shared_breaker_counts_every_failure_once(shared):
    changes = []
    breaker = shared(failure_threshold=50, on_change=changes.append)
    threads = [
        threading.Thread(target=lambda: [breaker.record_failure() for _ in range(25)])
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert breaker.consecutive_failures == 200
    assert [(c.old, c.new) for c in changes] == [("closed", "open")]


def test_a_shared_pause_never_shortens_and_is_capped(shared, clock):
    breaker = shared(max_pause=60)
    assert breaker.paused_for() == 0
    breaker.pause(10)
    breaker.pause(3)
    assert breaker.paused_for() == 10
    breaker.pause(600)
    assert breaker.paused_for() == 60
    clock.advance(60)
    assert breaker.paused_for() == 0


def test_a_board_with_a_shared_cache_makes_shared_breakers(cache, clock):
    board = BreakerBoard(failure_threshold=1, cool_down=5, shared=cache, shared_clock=clock)
    name = f"p-{uuid.uuid4().hex[:8]}"
    breaker = board.get(name)
    assert isinstance(breaker, SharedCircuitBreaker) and board.get(name) is breaker
    breaker.record_failure()
    other = BreakerBoard(failure_threshold=1, cool_down=5, shared=cache, shared_clock=clock)
    assert other.states() == {} and other.get(name).state == "open"
    board.reset()  # forgets the shared state too
    assert other.get(name).state == "closed"


def test_the_resilient_llm_skips_a_provider_opened_elsewhere(server, cache, clock):
    """The in-process breaker test's story, with the other process's board on the same cache."""
    server.default = ErrorResponse(503)
    name = f"deepseek-{uuid.uuid4().hex[:8]}"

    def board() -> BreakerBoard:
        return BreakerBoard(failure_threshold=2, cool_down=30, shared=cache, shared_clock=clock)

    def llm(on: BreakerBoard) -> ResilientLLM:
        remote = OpenAICompatibleLLM(
            id=name, base_url=server.base_url, api_key="sk-test", model="m", provider="deepseek"
        )
        local = FakeLLM(id="local", default="Paris, says the local model.")
        return ResilientLLM([remote, local], retry=RetryPolicy(max_attempts=1), breakers=on)

    first, second = board(), board()
    try:
        a, b = llm(first), llm(second)
        assert ask(a) == [(name, "server"), ("local", "ok")]
        assert ask(b) == [(name, "server"), ("local", "ok")]  # two processes, 2 failures
        assert first.get(name).state == "open"
        assert ask(a) == ask(b) == [(name, "circuit_open"), ("local", "ok")]
        assert len(server.requests) == 2

        clock.advance(30)
        server.default = Reply(answer="Back.")
        assert ask(b) == [(name, "ok")]
        assert ask(a) == [(name, "ok")]
        assert len(server.requests) == 4
        assert [(t.old, t.new) for t in second.get(name).transitions] == [
            ("closed", "open"),
            ("open", "half_open"),
            ("half_open", "closed"),
        ]
    finally:
        first.reset()
