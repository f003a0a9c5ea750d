"""Retries, circuit breakers and fallback along a chain of models, behind the LLM protocol.

``ResilientLLM`` is an ``LLM``: it streams from the first model of its chain that answers.

- **Retries** (``RetryPolicy``): on ``rate_limit``, ``server``, ``timeout``, ``connection`` (and
  ``incomplete`` when nothing was shown yet), with exponential back-off and jitter, never sooner
  than the provider's ``Retry-After``. ``auth``, ``payment``, ``invalid_request`` and ``model``
  are not retried: asking again gets the same answer; the next model is tried instead.
- **Circuit breakers** (``CircuitBreaker``, shared through a ``BreakerBoard``): after
  ``failure_threshold`` consecutive transient failures a model is skipped for ``cool_down``
  seconds, then one probe request decides whether it is back.
- **Pauses**: a ``Retry-After`` is remembered on the model's breaker, so the other requests do
  not call it before that time either: they wait for it when their policy allows that long, or
  go to the next model at once without a request.
- **Shared state**: a board given a ``shared`` cache (``SharedCache``: Django's cache API; Redis
  in the app when one is configured) keeps breakers and pauses there (``SharedCircuitBreaker``),
  so a provider one process found down or rate-limited is not called by the others either, and
  only one process at a time sends the half-open probe. Without it, state is the process's own.
- **Fallback**: when a model fails (retries exhausted, breaker open, non-retryable error), the
  next one in the chain is asked.
- **Incomplete is final**: retrying or falling back is only possible while *nothing* has been
  streamed for the current attempt. Once a delta with text went out, the user has seen partial
  text; restarting would show a second, different answer glued to the first. So a stream that
  breaks after deltas raises ``LLMError(kind="incomplete")`` to the caller, which reports the
  answer as incomplete.

**The trace.** ``stream()`` keeps the protocol exactly (``Delta``... then one ``Completion``), so
any consumer of an ``LLM`` works unchanged. A caller that records the route uses
``stream_with_trace()``, which returns ``(iterator, trace)``: the ``Trace`` is filled in as the
stream runs, and is complete when the ``Completion`` arrives *or* when an error is raised, which
an extra event type in the stream could not offer (the caller gets no event when it fails). The
``Trace`` lists every ``Attempt`` (model, start, the wait before it, outcome, HTTP status,
Retry-After), the model that answered and the total time waited.
"""

from __future__ import annotations

import math
import random as _random
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from rag.llm import LLM, LLMError
from rag.local_llm import LocalModelError
from rag.types import Completion, Delta, Message

Jitter = Literal["full", "equal", "none"]
BreakerState = Literal["closed", "open", "half_open"]

RETRY_KINDS = frozenset({"rate_limit", "server", "timeout", "connection", "incomplete"})
# Failures that say something about a provider's health, so they count towards its breaker.
# An auth or invalid-request error is a configuration problem, fast to fail and not cured by
# waiting; it must not take a model out of service for everyone.
BREAKER_KINDS = frozenset({"rate_limit", "server", "timeout", "connection", "incomplete"})


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how long to retry one model before falling back to the next.

    The n-th retry waits ``min(max_delay, base_delay * 2**(n-1))``, jittered: ``full`` draws
    uniformly in [0, d], ``equal`` in [d/2, d], ``none`` waits d. A provider's ``Retry-After`` is
    a floor: the wait is ``max(retry_after, jittered back-off)``. ``max_delay`` caps only our own
    back-off; a ``Retry-After`` is capped separately by ``max_retry_after``: a provider asking for
    longer than that is not waited for at all, the next model is asked at once (a user should not
    stare at a spinner for a minute when another model is available). ``max_total_wait`` bounds
    the sleeping of one ``stream()`` across all models.
    """

    max_attempts: int = 3  # per model, the first try included
    base_delay: float = 0.5
    max_delay: float = 8.0
    jitter: Jitter = "full"
    max_retry_after: float = 30.0
    max_total_wait: float = 30.0
    retry_kinds: frozenset[str] = RETRY_KINDS

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        if self.base_delay < 0 or self.max_delay < 0:
            raise ValueError("delays must not be negative")
        if self.jitter not in ("full", "equal", "none"):
            raise ValueError(f"jitter must be 'full', 'equal' or 'none', got {self.jitter!r}")
        if self.max_retry_after < 0 or self.max_total_wait < 0:
            raise ValueError("max_retry_after and max_total_wait must not be negative")
        unknown = set(self.retry_kinds) - RETRY_KINDS
        if unknown:
            # auth, payment, invalid_request and model fail the same way every time
            raise ValueError(f"these error kinds are never retried: {', '.join(sorted(unknown))}")
        object.__setattr__(self, "retry_kinds", frozenset(self.retry_kinds))

    def backoff(self, retry: int, rand: Callable[[], float] = _random.random) -> float:
        """The jittered wait before the ``retry``-th retry (1-based)."""
        ceiling = min(self.max_delay, self.base_delay * 2 ** max(0, retry - 1))
        if self.jitter == "full":
            return ceiling * rand()
        if self.jitter == "equal":
            return ceiling / 2 + ceiling / 2 * rand()
        return ceiling

    def delay(
        self, error: LLMError, retry: int, rand: Callable[[], float] = _random.random
    ) -> float | None:
        """Seconds to wait before retry number ``retry`` after ``error``; None: don't retry."""
        if retry >= self.max_attempts or error.kind not in self.retry_kinds:
            return None
        if not error.retryable:
            return None
        wait = self.backoff(retry, rand)
        if error.retry_after is not None:
            if error.retry_after > self.max_retry_after:
                return None
            wait = max(wait, error.retry_after)
        return wait


# ---------------------------------------------------------------------------------------------
# Circuit breakers
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BreakerTransition:
    breaker: str
    at: float  # the breaker's clock
    old: BreakerState
    new: BreakerState


# The longest a Retry-After is remembered for the other requests: a provider's header asking
# for an hour (or a bogus one) must not take a model out of service for everyone that long.
MAX_PAUSE = 300.0


def _check_breaker_settings(failure_threshold: int, cool_down: float, max_pause: float) -> None:
    """For a breaker, and for a board at once (its breakers are made on first use)."""
    if failure_threshold < 1:
        raise ValueError("failure_threshold must be >= 1")
    if cool_down < 0:
        raise ValueError("cool_down must not be negative")
    if max_pause < 0:
        raise ValueError("max_pause must not be negative")


class CircuitBreaker:
    """Closed → open after ``failure_threshold`` consecutive failures → half-open after
    ``cool_down`` seconds (one probe request at a time) → closed on the probe's success, open
    again on its failure. Thread-safe; ``now`` is injectable so tests need not sleep.

    A success reported by any request closes it (a request that started before it opened and
    succeeded is evidence enough). A probe whose caller never reports back (the stream was
    abandoned) frees its slot after another ``cool_down``, so it cannot stay half-open forever.

    It also holds the model's pause: ``pause(seconds)`` after a ``Retry-After``, read back by
    ``paused_for()`` (at most ``max_pause`` seconds; a success does not lift it).
    """

    def __init__(
        self,
        name: str,
        *,
        failure_threshold: int = 5,
        cool_down: float = 30.0,
        max_pause: float = MAX_PAUSE,
        now: Callable[[], float] = time.monotonic,
        on_change: Callable[[BreakerTransition], None] | None = None,
    ) -> None:
        _check_breaker_settings(failure_threshold, cool_down, max_pause)
        self.name = name
        self.failure_threshold = failure_threshold
        self.cool_down = cool_down
        self.max_pause = max_pause
        self._now = now
        self._on_change = on_change
        self._lock = threading.Lock()
        self._state: BreakerState = "closed"
        self._failures = 0
        self._opened_at = 0.0
        self._probe_since: float | None = None
        self._paused_until = 0.0
        self.transitions: deque[BreakerTransition] = deque(maxlen=1000)

    def __repr__(self) -> str:
        return f"CircuitBreaker({self.name!r}, state={self.state!r})"

    @property
    def state(self) -> BreakerState:
        """The current state; an open breaker whose cool-down is over reads as half-open."""
        with self._lock:
            if self._state == "open" and self._now() - self._opened_at >= self.cool_down:
                return "half_open"
            return self._state

    @property
    def consecutive_failures(self) -> int:
        with self._lock:
            return self._failures

    def retry_in(self) -> float:
        """Seconds until an open breaker lets a probe through (0 when not open)."""
        with self._lock:
            if self._state != "open":
                return 0.0
            return max(0.0, self.cool_down - (self._now() - self._opened_at))

    def allow(self) -> bool:
        """May a request go through now? In half-open, only the first caller (the probe) may."""
        with self._lock:
            now = self._now()
            if self._state == "closed":
                return True
            if self._state == "open":
                if now - self._opened_at < self.cool_down:
                    return False
                self._move("half_open", now)
            # half-open: one probe at a time; a probe never reported back expires
            if self._probe_since is not None and now - self._probe_since < self.cool_down:
                return False
            self._probe_since = now
            return True

    def record_success(self) -> None:
        with self._lock:
            self._failures = 0
            self._probe_since = None
            if self._state != "closed":
                self._move("closed", self._now())

    def record_failure(self) -> None:
        with self._lock:
            now = self._now()
            self._failures += 1
            self._probe_since = None
            if self._state == "half_open" or (
                self._state == "closed" and self._failures >= self.failure_threshold
            ):
                self._opened_at = now
                self._move("open", now)
            # A failure while open (a request that started before it opened) changes nothing:
            # the cool-down runs from the opening.

    def release(self) -> None:
        """The request ended without a verdict (abandoned, or not the provider's fault)."""
        with self._lock:
            self._probe_since = None

    def pause(self, seconds: float) -> None:
        """The provider asked not to be called for ``seconds`` (Retry-After); never shortens."""
        seconds = min(seconds, self.max_pause)
        if seconds <= 0:
            return
        with self._lock:
            self._paused_until = max(self._paused_until, self._now() + seconds)

    def paused_for(self) -> float:
        """Seconds until the provider may be called again after a Retry-After (0: now)."""
        with self._lock:
            return max(0.0, self._paused_until - self._now())

    def _move(self, new: BreakerState, now: float) -> None:
        transition = BreakerTransition(self.name, now, self._state, new)
        self._state = new
        self.transitions.append(transition)
        if self._on_change is not None:
            self._on_change(transition)


class SharedCache(Protocol):
    """What a ``SharedCircuitBreaker`` needs of a cache: the subset of Django's cache API it
    uses (``django.core.cache.cache`` fits; on Redis, ``add`` is SET NX and ``incr`` INCR, both
    atomic). ``rag`` does not import Django: the app hands its cache in."""

    def add(self, key: str, value: Any, timeout: float | None = ...) -> bool: ...

    def get(self, key: str, default: Any = None) -> Any: ...

    def get_many(self, keys: Iterable[str]) -> dict[str, Any]: ...

    def set(self, key: str, value: Any, timeout: float | None = ...) -> None: ...

    def delete(self, key: str) -> Any: ...

    def delete_many(self, keys: Iterable[str]) -> Any: ...

    def incr(self, key: str, delta: int = 1) -> int: ...


# How long a shared failure count or a "tripped" mark outlives its last change: state left by a
# provider nobody has asked for a day is not worth keeping.
STATE_TTL = 24 * 3600


def _ttl(seconds: float) -> int:
    """A cache timeout that outlasts ``seconds``: Django's Redis cache truncates timeouts to
    whole seconds (and 0 means "expire now"), so deadlines are stored in the values and the
    timeouts only collect the keys."""
    return math.ceil(seconds) + 1


class SharedCircuitBreaker:
    """A ``CircuitBreaker`` whose state lives in a cache every process reads, so what one
    process learns about a provider holds for all of them. Same states, same rules, same
    methods; only ``transitions`` stays per process (the changes this process made or saw).

    Keys, under ``{prefix}:{name}:``: ``failures`` (consecutive, ``incr``), ``open`` (the
    wall-clock time the cool-down ends), ``tripped`` (set while open or half-open), ``probe``
    (the half-open probe's claim: ``add``, so one process at a time sends it) and ``pause`` (the
    end of a Retry-After). Deadlines are wall-clock time (``clock``, ``time.time``): processes
    on several machines need synchronised clocks (NTP), as the cool-downs are seconds long.

    One race is accepted: a probe whose caller never reported back is taken over after a
    ``cool_down`` by a plain ``set``, so two processes doing that at the same instant may both
    probe. It only happens after a lost probe, and costs one extra request.
    """

    def __init__(
        self,
        name: str,
        cache: SharedCache,
        *,
        failure_threshold: int = 5,
        cool_down: float = 30.0,
        max_pause: float = MAX_PAUSE,
        prefix: str = "breaker",
        clock: Callable[[], float] = time.time,
        on_change: Callable[[BreakerTransition], None] | None = None,
    ) -> None:
        _check_breaker_settings(failure_threshold, cool_down, max_pause)
        self.name = name
        self.failure_threshold = failure_threshold
        self.cool_down = cool_down
        self.max_pause = max_pause
        self._cache = cache
        self._clock = clock
        self._on_change = on_change
        self._failures_key = f"{prefix}:{name}:failures"
        self._open_key = f"{prefix}:{name}:open"
        self._tripped_key = f"{prefix}:{name}:tripped"
        self._probe_key = f"{prefix}:{name}:probe"
        self._pause_key = f"{prefix}:{name}:pause"
        self._lock = threading.Lock()  # guards what this process saw, not the shared state
        self._seen: BreakerState = "closed"
        self._probe_token: str | None = None  # this process's claim on the probe
        self.transitions: deque[BreakerTransition] = deque(maxlen=1000)

    @property
    def keys(self) -> tuple[str, ...]:
        return (
            self._failures_key,
            self._open_key,
            self._tripped_key,
            self._probe_key,
            self._pause_key,
        )

    def __repr__(self) -> str:
        return f"SharedCircuitBreaker({self.name!r}, state={self.state!r})"

    def _read(self) -> tuple[BreakerState, float]:
        """The shared state, and the seconds an open breaker still has to wait."""
        values = self._cache.get_many([self._open_key, self._tripped_key])
        deadline = values.get(self._open_key)
        now = self._clock()
        if deadline is not None and now < deadline:
            return "open", deadline - now
        if deadline is not None or values.get(self._tripped_key):
            return "half_open", 0.0
        return "closed", 0.0

    @property
    def state(self) -> BreakerState:
        return self._read()[0]

    @property
    def consecutive_failures(self) -> int:
        return int(self._cache.get(self._failures_key) or 0)

    def retry_in(self) -> float:
        return self._read()[1]

    def allow(self) -> bool:
        state, _ = self._read()
        if state != "half_open":
            self._observe(state)
            return state == "closed"
        # half-open: one probe for all processes; a probe never reported back expires
        now = self._clock()
        token = secrets.token_hex(8)
        claim = (token, now)
        if not self._cache.add(self._probe_key, claim, _ttl(self.cool_down)):
            held = self._cache.get(self._probe_key)
            if held is not None and now - held[1] < self.cool_down:
                self._observe("half_open")
                return False
            self._cache.set(self._probe_key, claim, _ttl(self.cool_down))  # see the docstring
        self._probe_token = token
        self._observe("half_open")
        return True

    def record_success(self) -> None:
        self._cache.delete_many(
            [self._failures_key, self._open_key, self._tripped_key, self._probe_key]
        )
        self._probe_token = None
        self._observe("closed")

    def record_failure(self) -> None:
        failures = self._count_failure()
        state, _ = self._read()
        if state == "half_open" or (state == "closed" and failures >= self.failure_threshold):
            self._open()
            # after opening, so no other process slips a probe in between
            self._cache.delete(self._probe_key)
            self._probe_token = None
        else:
            # A failure while open (a request that started before it opened) changes nothing.
            self._observe(state)

    def release(self) -> None:
        token, self._probe_token = self._probe_token, None
        if token is None:
            return  # not this process's probe: another process's claim stands
        held = self._cache.get(self._probe_key)
        if held is not None and held[0] == token:
            self._cache.delete(self._probe_key)

    def pause(self, seconds: float) -> None:
        seconds = min(seconds, self.max_pause)
        if seconds <= 0:
            return
        until = self._clock() + seconds
        held = self._cache.get(self._pause_key)
        if held is None or held < until:
            self._cache.set(self._pause_key, until, _ttl(seconds))

    def paused_for(self) -> float:
        until = self._cache.get(self._pause_key)
        return 0.0 if until is None else max(0.0, until - self._clock())

    def forget(self) -> None:
        """Delete the shared state (tests and a board's reset)."""
        self._cache.delete_many(self.keys)
        self._probe_token = None
        with self._lock:
            self._seen = "closed"

    def _count_failure(self) -> int:
        self._cache.add(self._failures_key, 0, STATE_TTL)
        try:
            return self._cache.incr(self._failures_key)
        except ValueError:  # a success deleted it in between: this failure is the first
            self._cache.add(self._failures_key, 1, STATE_TTL)
            return 1

    def _open(self) -> None:
        now = self._clock()
        deadline = now + self.cool_down
        if not self._cache.add(self._open_key, deadline, _ttl(self.cool_down)):
            held = self._cache.get(self._open_key)
            if held is not None and now < held:
                self._observe("open")  # another process opened it meanwhile
                return
            # the key of an earlier opening outlives its deadline by under a second
            self._cache.set(self._open_key, deadline, _ttl(self.cool_down))
        self._cache.set(self._tripped_key, True, STATE_TTL)
        self._observe("open")

    def _observe(self, new: BreakerState) -> None:
        """Record a change of state this process made or saw."""
        with self._lock:
            if new == self._seen:
                return
            transition = BreakerTransition(self.name, self._clock(), self._seen, new)
            self._seen = new
            self.transitions.append(transition)
        if self._on_change is not None:
            self._on_change(transition)


Breaker = CircuitBreaker | SharedCircuitBreaker


class BreakerBoard:
    """The breakers of a process, one per key (a model id), created on first use.

    Keep one board for the process and hand it to every ``ResilientLLM``: breakers only help if
    the requests of all users share them. With ``shared`` (a cache all processes reach), its
    breakers are ``SharedCircuitBreaker``: the requests of all processes share them too.
    ``now`` is the clock of in-process breakers and of the trace; shared breakers use
    ``shared_clock``, wall-clock time, which means the same in every process.
    """

    def __init__(
        self,
        *,
        failure_threshold: int = 5,
        cool_down: float = 30.0,
        max_pause: float = MAX_PAUSE,
        now: Callable[[], float] = time.monotonic,
        on_change: Callable[[BreakerTransition], None] | None = None,
        shared: SharedCache | None = None,
        shared_prefix: str = "breaker",
        shared_clock: Callable[[], float] = time.time,
    ) -> None:
        _check_breaker_settings(failure_threshold, cool_down, max_pause)
        self.failure_threshold = failure_threshold
        self.cool_down = cool_down
        self.max_pause = max_pause
        self.now = now
        self.shared = shared
        self._shared_prefix = shared_prefix
        self._shared_clock = shared_clock
        self._on_change = on_change
        self._lock = threading.Lock()
        self._breakers: dict[str, Breaker] = {}

    def get(self, key: str) -> Breaker:
        with self._lock:
            breaker = self._breakers.get(key)
            if breaker is None:
                breaker = self._make(key)
                self._breakers[key] = breaker
            return breaker

    def _make(self, key: str) -> Breaker:
        if self.shared is not None:
            return SharedCircuitBreaker(
                key,
                self.shared,
                failure_threshold=self.failure_threshold,
                cool_down=self.cool_down,
                max_pause=self.max_pause,
                prefix=self._shared_prefix,
                clock=self._shared_clock,
                on_change=self._on_change,
            )
        return CircuitBreaker(
            key,
            failure_threshold=self.failure_threshold,
            cool_down=self.cool_down,
            max_pause=self.max_pause,
            now=self.now,
            on_change=self._on_change,
        )

    def reset(self) -> None:
        """Forget every breaker, and for a shared board the state it holds of them, for all
        processes (tests and changed settings; a deployment has no other use for it)."""
        with self._lock:
            breakers, self._breakers = list(self._breakers.values()), {}
        for breaker in breakers:
            if isinstance(breaker, SharedCircuitBreaker):
                breaker.forget()

    def states(self) -> dict[str, BreakerState]:
        with self._lock:
            breakers = list(self._breakers.values())
        return {b.name: b.state for b in breakers}

    def transitions(self) -> list[BreakerTransition]:
        with self._lock:
            breakers = list(self._breakers.values())
        return sorted((t for b in breakers for t in b.transitions), key=lambda t: t.at)


# ---------------------------------------------------------------------------------------------
# The trace of one stream
# ---------------------------------------------------------------------------------------------

CIRCUIT_OPEN = "circuit_open"
PAUSED = "paused"  # skipped without a request: its Retry-After runs longer than we may wait
SKIPPED = frozenset({CIRCUIT_OPEN, PAUSED})


@dataclass(frozen=True, slots=True)
class Attempt:
    """One try of one model. ``outcome`` is "ok", an ``LLMError`` kind, "circuit_open" or
    "paused" (the model was skipped without a request)."""

    llm_id: str
    started_at: float  # the ResilientLLM's clock (time.monotonic by default)
    waited_s: float  # slept before this attempt
    outcome: str
    status: int | None = None
    retry_after: float | None = None
    duration_s: float = 0.0
    streamed: bool = False  # text had been shown when it failed
    message: str = ""  # the error's user message

    @property
    def reached_provider(self) -> bool:
        return self.outcome not in SKIPPED


@dataclass(slots=True)
class Trace:
    """What one ``stream()`` did; filled while the stream runs (read it once it ended)."""

    attempts: list[Attempt] = field(default_factory=list)
    answered_by: str | None = None  # the id of the model that produced the Completion

    @property
    def waited_s(self) -> float:
        return sum(a.waited_s for a in self.attempts)

    @property
    def requests(self) -> int:
        """Attempts that reached a provider (skips by an open breaker excluded)."""
        return sum(1 for a in self.attempts if a.reached_provider)

    @property
    def fell_back(self) -> bool:
        return bool(self.attempts) and (
            self.answered_by is not None and self.answered_by != self.attempts[0].llm_id
        )

    def as_record(self) -> dict[str, Any]:
        """JSON-ready, for the audit record."""
        return {
            "answered_by": self.answered_by,
            "waited_s": round(self.waited_s, 3),
            "attempts": [
                {
                    "llm_id": a.llm_id,
                    "started_at": a.started_at,
                    "waited_s": round(a.waited_s, 3),
                    "outcome": a.outcome,
                    "status": a.status,
                    "retry_after": a.retry_after,
                    "duration_s": round(a.duration_s, 3),
                    "streamed": a.streamed,
                    "message": a.message,
                }
                for a in self.attempts
            ],
        }


class AllModelsFailed(LLMError):
    """Every model of the chain failed before showing anything. ``attempts`` tells how."""

    def __init__(self, last: LLMError, attempts: Sequence[Attempt], summary: str) -> None:
        super().__init__(
            last.kind,
            summary,
            status=last.status,
            retryable=last.retryable,
            retry_after=last.retry_after,
        )
        self.attempts = tuple(attempts)


# ---------------------------------------------------------------------------------------------
# ResilientLLM
# ---------------------------------------------------------------------------------------------


class ResilientLLM:
    """An ``LLM`` over an ordered chain of models: retries, breakers, fallback.

    ``id``, ``model`` and ``provider`` are the primary's, so it can stand in for it in a registry;
    the model that actually answered is ``Completion.model``/``provider`` and
    ``Trace.answered_by``. ``sleep``, ``now`` and ``random`` are injectable for tests.
    Exceptions other than ``LLMError`` (and ``LocalModelError``, read as the local model being
    unavailable) are bugs and propagate untouched.
    """

    def __init__(
        self,
        chain: Sequence[LLM],
        *,
        retry: RetryPolicy | None = None,
        breakers: BreakerBoard | None = None,
        sleep: Callable[[float], None] = time.sleep,
        now: Callable[[], float] | None = None,
        random: Callable[[], float] = _random.random,
    ) -> None:
        chain = tuple(chain)
        if not chain:
            raise ValueError("ResilientLLM needs at least one model")
        ids = [llm.id for llm in chain]
        if len(set(ids)) != len(ids):
            raise ValueError(f"model ids in the chain must be unique, got {ids}")
        self.chain = chain
        self.retry = retry or RetryPolicy()
        self.breakers = breakers or BreakerBoard()
        self.id = chain[0].id
        self.model = chain[0].model
        self.provider = chain[0].provider
        self._sleep = sleep
        self._now = now or self.breakers.now
        self._random = random

    def __repr__(self) -> str:
        return f"ResilientLLM({[llm.id for llm in self.chain]})"

    def stream(
        self,
        messages: Sequence[Message],
        *,
        max_tokens: int = 1024,
        temperature: float | None = None,
    ) -> Iterator[Delta | Completion]:
        return self.stream_with_trace(messages, max_tokens=max_tokens, temperature=temperature)[0]

    def stream_with_trace(
        self,
        messages: Sequence[Message],
        *,
        max_tokens: int = 1024,
        temperature: float | None = None,
    ) -> tuple[Iterator[Delta | Completion], Trace]:
        trace = Trace()
        iterator = self._run(
            tuple(messages), trace, {"max_tokens": max_tokens, "temperature": temperature}
        )
        return iterator, trace

    def _run(
        self, messages: tuple[Message, ...], trace: Trace, options: dict[str, Any]
    ) -> Iterator[Delta | Completion]:
        last_error: LLMError | None = None
        budget = self.retry.max_total_wait
        for llm in self.chain:
            breaker = self.breakers.get(llm.id)
            waited = 0.0
            retry = 0
            while True:
                allowed = breaker.allow()
                if allowed and retry == 0:
                    # A Retry-After another request (of any process, with a shared board) got.
                    # A half-open probe keeps its claim while it waits: the others skip.
                    hold = breaker.paused_for()
                    if hold > min(self.retry.max_retry_after, budget):
                        breaker.release()
                        last_error = LLMError(
                            "rate_limit",
                            f"{llm.id} asked us to wait {hold:.0f} s before asking again.",
                        )
                        trace.attempts.append(
                            Attempt(
                                llm.id, self._now(), 0.0, PAUSED, message=last_error.user_message
                            )
                        )
                        break  # next model
                    if hold > 0:
                        self._sleep(hold)
                        budget -= hold
                        waited = hold
                        if breaker.state == "open":  # opened by others while we waited
                            breaker.release()
                            allowed = False
                if not allowed:
                    last_error = LLMError(
                        "server",
                        f"{llm.id} is paused after repeated failures "
                        f"(retrying it in {breaker.retry_in():.0f} s).",
                    )
                    trace.attempts.append(
                        Attempt(
                            llm.id,
                            self._now(),
                            waited,
                            CIRCUIT_OPEN,
                            message=last_error.user_message,
                        )
                    )
                    break
                started = self._now()
                streamed = False
                completion: Completion | None = None
                inner: Iterator[Delta | Completion] | None = None
                try:
                    inner = llm.stream(messages, **options)
                    for item in inner:
                        if isinstance(item, Completion):
                            completion = item  # held back until the attempt is recorded
                            continue
                        if item.answer or item.reasoning:
                            streamed = True
                        yield item
                    if completion is None:
                        raise LLMError(
                            "incomplete",
                            f"{llm.id} ended its stream without finishing the answer.",
                        )
                except GeneratorExit:
                    breaker.release()  # the consumer stopped reading: no verdict on the model
                    raise
                except (LLMError, LocalModelError) as exc:
                    error = _as_llm_error(exc)
                    trace.attempts.append(
                        Attempt(
                            llm.id,
                            started,
                            waited,
                            error.kind,
                            status=error.status,
                            retry_after=error.retry_after,
                            duration_s=self._now() - started,
                            streamed=streamed,
                            message=error.user_message,
                        )
                    )
                    if error.kind in BREAKER_KINDS:
                        breaker.record_failure()
                    else:
                        breaker.release()
                    if error.retry_after is not None:
                        breaker.pause(error.retry_after)  # for the other requests too
                    if streamed:
                        # The user saw part of an answer: never restart it (module docstring).
                        if error.kind == "incomplete":
                            raise  # only an LLMError can be incomplete: error is exc
                        raise LLMError(
                            "incomplete",
                            f"{error.user_message} The answer above is incomplete.",
                            status=error.status,
                        ) from exc
                    last_error = error
                    retry += 1
                    wait = self.retry.delay(error, retry, self._random)
                    if wait is not None:
                        # a longer Retry-After learned meanwhile by another request is a floor
                        hold = breaker.paused_for()
                        wait = None if hold > self.retry.max_retry_after else max(wait, hold)
                    if wait is None or wait > budget or breaker.state == "open":
                        break  # next model
                    self._sleep(wait)
                    budget -= wait
                    waited = wait
                    continue
                except BaseException:
                    breaker.release()
                    raise
                finally:
                    close = getattr(inner, "close", None)
                    if close is not None:
                        close()
                breaker.record_success()
                trace.attempts.append(
                    Attempt(llm.id, started, waited, "ok", duration_s=self._now() - started)
                )
                trace.answered_by = llm.id
                yield completion
                return
        assert last_error is not None
        summary = _summary(trace.attempts)
        if last_error.user_message and last_error.user_message not in summary:
            # the provider's own words say what to do ("check DEEPSEEK_API_KEY")
            summary = f"{summary} Last error: {last_error.user_message}"
        raise AllModelsFailed(last_error, trace.attempts, summary)


def _as_llm_error(exc: BaseException) -> LLMError:
    if isinstance(exc, LLMError):
        return exc
    message = getattr(exc, "user_message", None) or str(exc)
    return LLMError("model", message, retryable=False)


_KIND_PHRASES = {
    "rate_limit": "rate-limited us",
    "server": "had a server error",
    "timeout": "timed out",
    "connection": "could not be reached",
    "incomplete": "broke off its answer",
}


def _summary(attempts: Sequence[Attempt]) -> str:
    """One sentence per model, in the order tried: "a rate-limited us 3 times; b is …"."""
    parts: list[str] = []
    order: list[str] = []
    by_model: dict[str, list[Attempt]] = {}
    for attempt in attempts:
        if attempt.llm_id not in by_model:
            order.append(attempt.llm_id)
        by_model.setdefault(attempt.llm_id, []).append(attempt)
    for llm_id in order:
        tried = by_model[llm_id]
        phrases: list[str] = []
        kinds: dict[str, int] = {}
        for attempt in tried:
            kinds[attempt.outcome] = kinds.get(attempt.outcome, 0) + 1
        for kind, count in kinds.items():
            if kind == CIRCUIT_OPEN:
                phrases.append("was skipped after repeated failures")
            elif kind == PAUSED:
                phrases.append("asked us to wait before asking again")
            elif kind in _KIND_PHRASES:
                times = "once" if count == 1 else f"{count} times"
                phrases.append(f"{_KIND_PHRASES[kind]} {times}")
            else:
                last = next(a for a in reversed(tried) if a.outcome == kind)
                phrases.append(f"is unavailable: {last.message.rstrip('.')}")
        parts.append(f"{llm_id} " + " and ".join(phrases))
    return "No model could answer: " + "; ".join(parts) + ". Try again in a moment."
