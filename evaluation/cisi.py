"""The CISI test collection: 1,460 library-science abstracts, 111 queries, binary judgements (76
queries have at least one relevant document). A second development set beside HaluEval-QA, and a
very different one: long natural-language queries, short abstracts, many relevant documents per
query. No Django here, like ``evaluation.halueval``.

The files (``CISI.ALL``, ``CISI.QRY``, ``CISI.REL``) use the SMART format: a record starts with
``.I <id>`` and its fields with a line ``.T`` (title), ``.A`` (authors), ``.W`` (text), ``.X``
(cross-references), ``.B`` (a query's bibliographic source); a field runs to the next field line.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rag.chunking import Chunker
from rag.types import Block, Chunk, Page, ParsedDocument

FILES = ("CISI.ALL", "CISI.QRY", "CISI.REL")
SETTING = "CISI_DIR"

_FIELD_RE = re.compile(r"^\.([A-Z])\b[ \t]*(.*)$")


class CisiMissing(FileNotFoundError):
    """The collection's files are not where ``CISI_DIR`` says; the message says what to do."""


class CisiFormatError(ValueError):
    """A file that is not in the expected format; the message names the file and line."""


@dataclass(frozen=True)
class CisiDocument:
    id: str
    title: str
    abstract: str


@dataclass(frozen=True)
class CisiQuery:
    id: str
    text: str


@dataclass(frozen=True)
class CisiCollection:
    documents: tuple[CisiDocument, ...]
    queries: tuple[CisiQuery, ...]
    relevant: dict[str, frozenset[str]]  # query id -> relevant document ids (judged queries only)
    digest: str  # of the three files' bytes

    @property
    def judged(self) -> list[CisiQuery]:
        """The queries with at least one relevant document, in file order: the only ones a
        ranking metric is defined for."""
        return [query for query in self.queries if self.relevant.get(query.id)]


def cisi_load(folder: Path) -> CisiCollection:
    """Read the three files of ``folder``. Raises CisiMissing or CisiFormatError."""
    missing = [name for name in FILES if not (folder / name).is_file()]
    if missing:
        raise CisiMissing(
            f"the CISI collection was not found: {', '.join(missing)} missing in {folder}. "
            f"Set {SETTING} to the folder holding {', '.join(FILES)} (in CI it is "
            "../shared/data/cisi beside the repository)."
        )
    raw = {name: (folder / name).read_bytes() for name in FILES}
    texts = {name: data.decode("utf-8", errors="replace") for name, data in raw.items()}
    documents = tuple(
        CisiDocument(id=id_, title=fields.get("T", ""), abstract=fields.get("W", ""))
        for id_, fields in _records(texts["CISI.ALL"], "CISI.ALL")
    )
    queries = tuple(
        CisiQuery(id=id_, text=fields.get("W", ""))
        for id_, fields in _records(texts["CISI.QRY"], "CISI.QRY")
    )
    known = {document.id for document in documents}
    relevant: dict[str, set[str]] = {}
    for number, line in enumerate(texts["CISI.REL"].splitlines(), start=1):
        words = line.split()
        if not words:
            continue
        if len(words) < 2 or not (words[0].isdigit() and words[1].isdigit()):
            raise CisiFormatError(f"CISI.REL, line {number}: expected 'query_id doc_id ...'")
        if words[1] in known:  # a judgement about a document not in the collection cannot count
            relevant.setdefault(words[0], set()).add(words[1])
    digest = hashlib.sha256(b"".join(raw[name] for name in FILES)).hexdigest()[:16]
    return CisiCollection(
        documents=documents,
        queries=queries,
        relevant={query: frozenset(docs) for query, docs in relevant.items()},
        digest=digest,
    )


def cisi_select(
    collection: CisiCollection, *, limit: int | None, passages: int | None
) -> tuple[list[CisiQuery], list[CisiDocument]]:
    """The first ``limit`` judged queries (all when None) and the corpus to index: every document
    when ``passages`` is None or covers them all, else the chosen queries' relevant documents
    first, then the others in file order (distractors), ``passages`` in all or as many as the
    relevant ones need."""
    queries = collection.judged[:limit]
    documents = list(collection.documents)
    if passages is None or passages >= len(documents):
        return queries, documents
    needed = set().union(*(collection.relevant[query.id] for query in queries))
    corpus = [document for document in documents if document.id in needed]
    for document in documents:
        if len(corpus) >= passages:
            break
        if document.id not in needed:
            corpus.append(document)
    return queries, corpus


def cisi_chunks(document: CisiDocument, *, chunker: Chunker) -> list[Chunk]:
    """The document's passages, split by the app's chunker as an uploaded file would be: the
    title is the heading (so every passage's embedding and BM25 text starts with it), the
    abstract its paragraph. ``doc_id`` is the CISI id, which the judgements name."""
    if document.title and document.abstract:
        text = f"{document.title}\n\n{document.abstract}"
        blocks = (
            Block("heading", 0, len(document.title), level=1),
            Block("paragraph", len(document.title) + 2, len(text)),
        )
    else:  # a heading alone would give no passage at all
        text = document.title or document.abstract
        blocks = (Block("paragraph", 0, len(text)),)
    parsed = ParsedDocument(
        media_type="text/plain", pages=(Page(number=None, text=text, blocks=blocks),)
    )
    # the id is part of the hash: two records with the same text must not share point ids
    sha = hashlib.sha256(f"cisi:{document.id}:{text}".encode()).hexdigest()
    return chunker.split(parsed, doc_id=document.id, doc_sha256=sha)


def cisi_corpus_digest(collection: CisiCollection, corpus: Sequence[CisiDocument]) -> str:
    """Identifies the files and the slice of documents indexed from them."""
    ids = ",".join(document.id for document in corpus)
    return hashlib.sha256(f"{collection.digest}:{ids}".encode()).hexdigest()[:16]


def _records(text: str, name: str) -> list[tuple[str, dict[str, str]]]:
    """``(id, {field letter: text with lines joined by spaces})`` per record, in file order."""
    records: list[tuple[str, dict[str, list[str]]]] = []
    current: list[str] | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        match = _FIELD_RE.match(line)
        if match and match.group(1) == "I":
            id_ = match.group(2).strip()
            if not id_.isdigit():
                raise CisiFormatError(f"{name}, line {number}: '.I' without a numeric id")
            records.append((id_, {}))
            current = None
        elif match:
            if not records:
                raise CisiFormatError(f"{name}, line {number}: a field before the first '.I'")
            current = records[-1][1].setdefault(match.group(1), [])
            if match.group(2).strip():  # "T text" on the field line itself
                current.append(match.group(2))
        elif current is not None:
            current.append(line)
        elif line.strip():
            raise CisiFormatError(f"{name}, line {number}: text outside a field")
    if not records:
        raise CisiFormatError(f"{name}: no records")
    return [
        (id_, {key: " ".join(" ".join(lines).split()) for key, lines in fields.items()})
        for id_, fields in records
    ]
