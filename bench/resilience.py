"""Resilience benchmark: a primary provider in a 429 storm, a healthy secondary, many users.

Two fake DeepSeek servers on 127.0.0.1 (``tests/fakes/deepseek.py``): the primary answers every
request with ``429`` and ``Retry-After: 1``, the secondary answers normally. ``--questions``
questions are asked by ``--concurrency`` threads through one shared ``ResilientLLM`` (real
``OpenAICompatibleLLM`` clients, real sleeps, one ``BreakerBoard`` for the process, as the app
would hold it). Prints one JSON object on stdout:

- ``answered_share``: questions that got a complete answer;
- ``refused_share``: questions that ended in ``AllModelsFailed``, a clean message and no partial
  text (target: answered + refused = 100%, so ``errors`` = 0);
- ``latency_ms``: p50/p95/max per question, from the call to the ``Completion`` or the error;
- ``attempts_per_answer``: requests that reached a provider per answered question (mean, max),
  plus breaker skips and the time spent waiting for Retry-After / back-off;
- ``breaker``: the primary's state transitions (seconds since start) and its final state.

    python bench/resilience.py [--questions 200] [--concurrency 10] [--cool-down 0.5] [--out FILE]
    python bench/resilience.py --no-fallback      # primary only: everything is refused cleanly
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._machine import machine_facts  # noqa: E402
from rag.llm import LLMError, OpenAICompatibleLLM  # noqa: E402
from rag.resilience import AllModelsFailed, BreakerBoard, ResilientLLM, RetryPolicy  # noqa: E402
from rag.types import Completion, Message  # noqa: E402
from tests.fakes.deepseek import ErrorResponse, FakeDeepSeek, Reply  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def client(server: FakeDeepSeek, llm_id: str, timeout: float) -> OpenAICompatibleLLM:
    return OpenAICompatibleLLM(
        id=llm_id,
        base_url=server.base_url,
        api_key="sk-bench",
        model="deepseek-chat",
        provider="deepseek",
        timeout=timeout,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--retry-after", default="1", help="the primary's Retry-After header")
    parser.add_argument("--threshold", type=int, default=5, help="breaker failure threshold")
    # Short, so the ~1 s run shows the open → half-open probe → open cycle; production: ~30 s.
    parser.add_argument("--cool-down", type=float, default=0.5, help="breaker cool-down, s")
    parser.add_argument("--max-attempts", type=int, default=3, help="tries per model")
    parser.add_argument("--timeout", type=float, default=5.0, help="per-provider timeout, s")
    parser.add_argument("--no-fallback", action="store_true", help="primary only")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    load_before = os.getloadavg()

    policy = RetryPolicy(
        max_attempts=args.max_attempts,
        base_delay=0.2,
        max_delay=2.0,
        jitter="full",
        max_retry_after=5.0,
        max_total_wait=5.0,
    )
    board = BreakerBoard(failure_threshold=args.threshold, cool_down=args.cool_down)
    primary_server = FakeDeepSeek(default=ErrorResponse(429, retry_after=args.retry_after))
    secondary_server = FakeDeepSeek(
        default=Reply(answer="The office opens at 8:30 [1].", keep_alives=0)
    )
    with primary_server, secondary_server:
        chain = [client(primary_server, "primary", args.timeout)]
        if not args.no_fallback:
            chain.append(client(secondary_server, "secondary", args.timeout))
        llm = ResilientLLM(chain, retry=policy, breakers=board)

        lock = threading.Lock()
        results: list[dict] = []
        started = time.monotonic()

        def ask(number: int) -> None:
            messages = [
                Message(role="system", content="Answer from the sources."),
                Message(role="user", content=f"Question {number}: when does the office open?"),
            ]
            began = time.monotonic()
            iterator, trace = llm.stream_with_trace(messages, max_tokens=64)
            outcome, message = "error", ""
            try:
                completion = None
                for item in iterator:
                    if isinstance(item, Completion):
                        completion = item
                outcome = "answered" if completion is not None else "error"
            except AllModelsFailed as exc:
                outcome, message = "refused", exc.user_message
            except LLMError as exc:
                outcome, message = f"error:{exc.kind}", exc.user_message
            except Exception as exc:  # a bug: counted, not hidden
                outcome, message = f"error:{type(exc).__name__}", str(exc)
            row = {
                "outcome": outcome,
                "latency_s": time.monotonic() - began,
                "requests": trace.requests,
                "skips": len(trace.attempts) - trace.requests,
                "waited_s": trace.waited_s,
                "answered_by": trace.answered_by,
                "message": message,
            }
            with lock:
                results.append(row)

        with ThreadPoolExecutor(max_workers=args.concurrency) as pool:
            list(pool.map(ask, range(args.questions)))
        runtime = time.monotonic() - started

        answered = [r for r in results if r["outcome"] == "answered"]
        refused = [r for r in results if r["outcome"] == "refused"]
        errors = Counter(r["outcome"] for r in results if r["outcome"].startswith("error"))
        latencies = [r["latency_s"] * 1000 for r in results]
        requests = [r["requests"] for r in answered]
        report = {
            "questions": args.questions,
            "concurrency": args.concurrency,
            "answered_share": round(len(answered) / args.questions, 4),
            "refused_share": round(len(refused) / args.questions, 4),
            "errors": dict(errors),
            "latency_ms": {
                "p50": round(percentile(latencies, 50), 1),
                "p95": round(percentile(latencies, 95), 1),
                "max": round(max(latencies, default=0.0), 1),
            },
            "attempts_per_answer": {
                "mean": round(statistics.fmean(requests), 3) if requests else None,
                "max": max(requests, default=None),
                "breaker_skips_total": sum(r["skips"] for r in results),
                "answers_that_waited": sum(1 for r in answered if r["waited_s"] > 0),
                "waited_s_total": round(sum(r["waited_s"] for r in results), 2),
            },
            "answered_by": dict(Counter(r["answered_by"] for r in answered)),
            "provider_requests": {
                "primary": len(primary_server.requests),
                "secondary": len(secondary_server.requests),
            },
            "breaker": {
                "transitions": [
                    {
                        "breaker": t.breaker,
                        "at_s": round(t.at - started, 3),
                        "from": t.old,
                        "to": t.new,
                    }
                    for t in board.transitions()
                ],
                "final_states": board.states(),
            },
            "refusal_example": refused[0]["message"] if refused else None,
            "runtime_s": round(runtime, 2),
            "settings": {
                "retry_after": args.retry_after,
                "retry": {
                    "max_attempts": policy.max_attempts,
                    "base_delay": policy.base_delay,
                    "max_delay": policy.max_delay,
                    "jitter": policy.jitter,
                    "max_retry_after": policy.max_retry_after,
                    "max_total_wait": policy.max_total_wait,
                },
                "breaker": {"failure_threshold": args.threshold, "cool_down_s": args.cool_down},
                "timeout_s": args.timeout,
                "fallback": not args.no_fallback,
            },
            "machine": machine_facts(load_before),
        }
        for model in chain:
            model.close()

    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    return 0 if not errors else 1


if __name__ == "__main__":
    raise SystemExit(main())
