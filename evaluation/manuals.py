"""Real software manuals as a development set: PDFs of 50-135 pages with contents pages, running
headers and footers and hyphenation, where clean one-paragraph sets (HaluEval) hide what goes
wrong. Shared by ``bench/manuals.py`` and ``manage.py eval retrieval --dataset manuals``.

The manuals come from Debian documentation packages, fetched when first needed with ``apt-get
download`` (no root needed, but the package lists must be there: ``apt-get update``), unpacked
with ``dpkg-deb -x`` and cached (``RAG_MANUALS_CACHE``, default
``~/.cache/rag-assistant/manuals``), each pinned by package version and by the PDF's sha256: the
labels name physical pages, so another edition of a manual is refused, not silently scored.
The PDFs are never committed.

``evaluation/data/manuals.json`` holds the manifest and the questions. Every answerable question
names the 1-based physical pages that answer it and an ``evidence`` phrase found on one of them
(checked by :func:`labels_check`); ``heading`` questions are the manual's own section headings
(from the PDF outline: the page the section starts on, plus the next when the section runs on),
``reworded`` ones ask the way a user would, ``unanswerable`` ones no manual answers. Each
manual's ``navigation_pages`` (contents, indexes) are labelled so that "a navigation page came
first" can be measured on code that does not mark navigation chunks itself.

No Django at import time, like ``evaluation.halueval``: the components are imported when a set
is opened.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

DATA_FILE = Path(__file__).resolve().parent / "data" / "manuals.json"
CACHE_ENV = "RAG_MANUALS_CACHE"
COLLECTION = "manuals"
KINDS = ("heading", "reworded", "unanswerable")
ANSWERABLE = ("heading", "reworded")
# A shown answer "quotes the page" when it contains a sentence of at least this many words from
# the answering page: shorter runs (a heading, "See Section 4.") match by accident.
QUOTE_MIN_WORDS = 6

Log = Callable[[str], None]


def _quiet(message: str) -> None:
    pass


class ManualsError(Exception):
    """The set cannot be used: a malformed data file, a manual that cannot be fetched or is not
    the edition the labels were made on. The message says what to do."""


# ---------------------------------------------------------------------------------------------
# The data file
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Manual:
    name: str
    document: str  # the file name the manual is indexed under (payload ``document_name``)
    package: str  # the Debian package that ships it
    version: str
    member: str  # its path inside the package (``.gz``: gzip-compressed)
    sha256: str  # of the PDF itself
    pages: int
    title: str
    toolchain: str
    navigation_pages: frozenset[int]  # contents and index pages


@dataclass(frozen=True)
class Question:
    id: str
    manual: str | None  # None for an unanswerable question
    kind: str  # "heading" | "reworded" | "unanswerable"
    question: str
    pages: tuple[int, ...]  # 1-based physical pages that answer it (empty: unanswerable)
    evidence: str = ""  # a phrase on one of ``pages`` that answers it


@dataclass(frozen=True)
class ManualSet:
    manuals: tuple[Manual, ...]
    questions: tuple[Question, ...]
    digest: str  # of the data file

    def manual(self, name: str) -> Manual:
        return next(m for m in self.manuals if m.name == name)

    def relevant(self, question: Question) -> frozenset[str]:
        """The question's answer pages as relevance keys (:func:`page_key`)."""
        if question.manual is None:
            return frozenset()
        document = self.manual(question.manual).document
        return frozenset(f"{document}#{page}" for page in question.pages)

    def navigation_keys(self) -> frozenset[str]:
        return frozenset(
            f"{m.document}#{page}" for m in self.manuals for page in m.navigation_pages
        )


def page_key(hit) -> str:
    """What a retrieved chunk is judged as: its document and physical page (``Dataset``'s
    ``relevance_key`` for this set)."""
    return f"{hit.document_name}#{hit.page}"


def manuals_load(path: Path = DATA_FILE) -> ManualSet:
    """The manifest and the questions, checked: raises ManualsError naming what is wrong."""
    try:
        raw = path.read_bytes()
        data = json.loads(raw)
    except (OSError, json.JSONDecodeError) as exc:
        raise ManualsError(f"{path}: {exc}") from None
    try:
        manuals = tuple(
            Manual(
                name=m["name"],
                document=m["document"],
                package=m["package"],
                version=m["version"],
                member=m["member"],
                sha256=m["sha256"],
                pages=int(m["pages"]),
                title=m["title"],
                toolchain=m["toolchain"],
                navigation_pages=frozenset(m["navigation_pages"]),
            )
            for m in data["manuals"]
        )
        questions = tuple(
            Question(
                id=q["id"],
                manual=q["manual"],
                kind=q["kind"],
                question=q["question"],
                pages=tuple(q["pages"]),
                evidence=q.get("evidence", ""),
            )
            for q in data["questions"]
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ManualsError(f"{path}: malformed entry ({exc!r})") from None
    problems = _problems(manuals, questions)
    if problems:
        raise ManualsError(f"{path}: " + "; ".join(problems))
    return ManualSet(manuals, questions, hashlib.sha256(raw).hexdigest()[:16])


def _problems(manuals: Sequence[Manual], questions: Sequence[Question]) -> list[str]:
    problems = []
    names = [m.name for m in manuals]
    by_name = {m.name: m for m in manuals}
    if len(set(names)) != len(names):
        problems.append("two manuals share a name")
    ids = [q.id for q in questions]
    if len(set(ids)) != len(ids):
        problems.append("two questions share an id")
    for q in questions:
        if q.kind not in KINDS:
            problems.append(f"{q.id}: kind {q.kind!r} is not one of {', '.join(KINDS)}")
        elif q.kind == "unanswerable":
            if q.manual is not None or q.pages:
                problems.append(f"{q.id}: an unanswerable question names no manual and no page")
        elif q.manual not in by_name:
            problems.append(f"{q.id}: manual {q.manual!r} is not in the manifest")
        elif not q.pages or not all(
            isinstance(p, int) and not isinstance(p, bool) and 1 <= p <= by_name[q.manual].pages
            for p in q.pages
        ):
            problems.append(f"{q.id}: pages must be 1-based page numbers of {q.manual}")
        if not q.question.strip():
            problems.append(f"{q.id}: empty question")
    for m in manuals:
        if not all(1 <= p <= m.pages for p in m.navigation_pages):
            problems.append(f"{m.name}: a navigation page is beyond its {m.pages} pages")
        if not re.fullmatch(r"[0-9a-f]{64}", m.sha256):
            problems.append(f"{m.name}: sha256 must be 64 hex digits")
    return problems


def _squash(text: str) -> str:
    """Letters and digits only, lower case: a label still matches a page whose text extraction
    lost spaces, split a word at a line-end hyphen or kept page furniture."""
    return re.sub(r"[^0-9a-z]+", "", text.lower())


def labels_check(data: ManualSet, page_texts: dict[str, str]) -> list[str]:
    """Every answerable question whose evidence is on none of its pages, as ``page_texts``
    (:func:`page_key` -> the page's text) has them: a wrong label, or a parser that lost the
    text."""
    squashed = {key: _squash(text) for key, text in page_texts.items()}
    problems = []
    for q in data.questions:
        if q.kind == "unanswerable" or not q.evidence:
            continue
        needle = _squash(q.evidence)
        if not any(needle in squashed.get(key, "") for key in data.relevant(q)):
            problems.append(f"{q.id}: {q.evidence!r} is not on pages {list(q.pages)}")
    return problems


# ---------------------------------------------------------------------------------------------
# Fetching the manuals
# ---------------------------------------------------------------------------------------------


def cache_dir() -> Path:
    configured = os.environ.get(CACHE_ENV)
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".cache" / "rag-assistant" / "manuals"


def manual_path(manual: Manual, cache: Path) -> Path:
    return cache / f"{manual.package}_{manual.version}" / manual.document


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def manuals_fetch(
    manuals: Sequence[Manual],
    *,
    cache: Path | None = None,
    allow_changed: bool = False,
    log: Log = _quiet,
) -> dict[str, Path]:
    """The PDF of every manual, from the cache or downloaded into it: ``{name: path}``.

    A PDF whose sha256 differs from the manifest's is refused (ManualsError), unless
    ``allow_changed``: then it is used with a warning, and labels may point at wrong pages."""
    cache = cache or cache_dir()
    paths = {}
    for manual in manuals:
        target = manual_path(manual, cache)
        if target.is_file() and file_sha256(target) == manual.sha256:
            paths[manual.name] = target
            continue
        log(f"fetching {manual.document} from the Debian package {manual.package}")
        data = _package_member(manual, cache=cache, log=log)
        digest = hashlib.sha256(data).hexdigest()
        if digest != manual.sha256:
            message = (
                f"{manual.document} from {manual.package} has sha256 {digest}, not the "
                f"{manual.sha256} its questions were labelled on (version {manual.version})"
            )
            if not allow_changed:
                raise ManualsError(
                    message + ": its pages may have moved. Relabel it in evaluation/data/"
                    "manuals.json, or accept it knowingly (bench/manuals.py --allow-changed)"
                )
            log(f"warning: {message}; using it anyway")
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(".part")
        partial.write_bytes(data)
        partial.replace(target)
        paths[manual.name] = target
    return paths


def _package_member(manual: Manual, *, cache: Path, log: Log) -> bytes:
    """``manual.member`` of its package: ``apt-get download`` of the pinned version (after an
    ``apt-get update`` when the lists do not know it and we are root), else of whatever version
    the lists offer (the sha256 check decides), unpacked with ``dpkg-deb -x``."""
    for tool in ("apt-get", "dpkg-deb"):
        if shutil.which(tool) is None:
            raise ManualsError(
                f"the manuals are Debian packages, fetched with apt-get and dpkg-deb, and "
                f"{tool} was not found. On another system put {manual.document} (sha256 "
                f"{manual.sha256}, from the package {manual.package} {manual.version}) at "
                f"{manual_path(manual, cache)}"
            )
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="fetch-", dir=cache) as work:
        folder = Path(work)
        attempts = [f"{manual.package}={manual.version}", manual.package]
        errors = []
        updated = False
        deb = None
        for spec in attempts:
            result = _apt_download(spec, folder)
            if result.returncode != 0 and not updated and _is_root():
                log("apt-get download failed: running apt-get update once")
                subprocess.run(["apt-get", "update"], capture_output=True, check=False)
                updated = True
                result = _apt_download(spec, folder)
            if result.returncode == 0:
                deb = next(folder.glob("*.deb"), None)
                if deb is not None and spec == manual.package:
                    log(f"warning: {manual.package} {manual.version} is gone; trying {deb.name}")
                break
            errors.append(f"apt-get download {spec}: {result.stderr.strip()[-300:]}")
        if deb is None:
            hint = "" if _is_root() else " (run `apt-get update` as root first)"
            raise ManualsError(f"could not download {manual.package}{hint}:\n" + "\n".join(errors))
        tree = folder / "tree"
        unpack = subprocess.run(
            ["dpkg-deb", "-x", str(deb), str(tree)], capture_output=True, text=True
        )
        if unpack.returncode != 0:
            raise ManualsError(f"dpkg-deb -x {deb.name}: {unpack.stderr.strip()}")
        member = tree / manual.member
        if not member.is_file():
            raise ManualsError(f"{deb.name} has no {manual.member}")
        data = member.read_bytes()
    return gzip.decompress(data) if manual.member.endswith(".gz") else data


def _apt_download(spec: str, folder: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["apt-get", "download", spec], cwd=folder, capture_output=True, text=True, check=False
    )


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


# ---------------------------------------------------------------------------------------------
# Indexing them as the app does
# ---------------------------------------------------------------------------------------------


@dataclass
class IndexedManuals:
    """The set, indexed into a temporary store, with what scoring needs."""

    data: ManualSet
    questions: list[Question]
    retriever: object  # rag.retrieval.Retriever
    collection: str
    page_texts: dict[str, str]  # page key -> the page's text as the app parsed it
    navigation_keys: frozenset[str]  # labelled pages plus pages with navigation chunks
    chunks: dict[str, dict[str, int]]  # manual -> {"content": n, "navigation": n}
    label_problems: list[str]
    seconds: dict[str, float] = field(default_factory=dict)

    def is_navigation(self, hit) -> bool:
        return getattr(hit, "kind", "content") == "navigation" or page_key(hit) in (
            self.navigation_keys
        )

    @property
    def corpus_version(self) -> str:
        return hashlib.sha256(
            "\n".join([self.data.digest, *(m.sha256 for m in self.data.manuals)]).encode()
        ).hexdigest()[:16]

    @property
    def description(self) -> str:
        manuals = ", ".join(f"{m.document} ({m.pages} pages)" for m in self.data.manuals)
        total = sum(sum(c.values()) for c in self.chunks.values())
        return (
            f"{len(self.data.manuals)} Debian manuals ({manuals}) as {total} passages "
            "in a temporary embedded Qdrant store"
        )


@contextlib.contextmanager
def manuals_open(
    *,
    data: ManualSet | None = None,
    cache: Path | None = None,
    allow_changed: bool = False,
    log: Log = _quiet,
) -> Iterator[IndexedManuals]:
    """Fetch the manuals, parse, chunk, embed and index them with the app's own components
    (``rag.parsing.parse``, the configured chunker, embedder and BM25 encoder) into a temporary
    embedded store, and yield them with a ``Retriever`` built from ``settings.RAG_RETRIEVER``.
    Needs Django's settings; the store is removed afterwards."""
    from django.conf import settings

    from core.components import get_chunker, get_embedder, get_lexical_encoder
    from rag.parsing import parse
    from rag.retrieval import Retriever

    from .datasets import temporary_store
    from .halueval import index_chunks

    data = data or manuals_load()
    started = time.perf_counter()
    paths = manuals_fetch(data.manuals, cache=cache, allow_changed=allow_changed, log=log)
    fetched = time.perf_counter()
    chunker = get_chunker()
    chunks, page_texts, counts, navigation = [], {}, {}, set(data.navigation_keys())
    for manual in data.manuals:
        parsed = parse(paths[manual.name].read_bytes(), manual.document)
        if parsed.page_count != manual.pages:
            raise ManualsError(
                f"{manual.document}: parsed {parsed.page_count} pages, the manifest says "
                f"{manual.pages}"
            )
        for page in parsed.pages:
            page_texts[f"{manual.document}#{page.number}"] = page.text
        pieces = chunker.split(parsed, doc_id=manual.name, doc_sha256=manual.sha256)
        kinds = [getattr(chunk, "kind", "content") for chunk in pieces]
        counts[manual.name] = {
            "content": kinds.count("content"),
            "navigation": kinds.count("navigation"),
        }
        navigation |= {
            f"{manual.document}#{chunk.page}"
            for chunk, kind in zip(pieces, kinds, strict=True)
            if kind == "navigation"
        }
        chunks.extend(pieces)
        log(f"{manual.document}: {parsed.page_count} pages, {len(pieces)} passages")
    parsed_at = time.perf_counter()
    documents = {m.name: m.document for m in data.manuals}
    embedder, encoder = get_embedder(), get_lexical_encoder()
    with temporary_store(prefix="eval-manuals-", dimension=embedder.dimension) as store:
        index_chunks(
            chunks,
            embedder=embedder,
            encoder=encoder,
            store=store,
            collection=COLLECTION,
            document_name=lambda chunk: documents[chunk.doc_id],
            log=log,
        )
        indexed = time.perf_counter()
        yield IndexedManuals(
            data=data,
            questions=list(data.questions),
            retriever=Retriever(
                embedder=embedder, store=store, lexical=encoder, **settings.RAG_RETRIEVER
            ),
            collection=COLLECTION,
            page_texts=page_texts,
            navigation_keys=frozenset(navigation),
            chunks=counts,
            label_problems=labels_check(data, page_texts),
            seconds={
                "fetch": round(fetched - started, 2),
                "parse_chunk": round(parsed_at - fetched, 2),
                "index": round(indexed - parsed_at, 2),
            },
        )


@contextlib.contextmanager
def manuals_dataset(*, limit: int | None = None, log: Log = _quiet) -> Iterator:
    """The answerable questions as an ``evaluation.datasets.Dataset`` judged by page
    (``manage.py eval retrieval --dataset manuals``); ``limit``: the first N of each kind."""
    from .datasets import Case, Dataset

    with manuals_open(log=log) as indexed:
        for problem in indexed.label_problems:
            log(f"warning: {problem}")
        questions = questions_select(indexed.questions, kinds=ANSWERABLE, limit=limit)
        yield Dataset(
            name="manuals",
            cases=[Case(query=q.question, relevant=indexed.data.relevant(q)) for q in questions],
            retriever=indexed.retriever,
            corpus_version=indexed.corpus_version,
            corpus_description=indexed.description,
            collections=[indexed.collection],
            relevance_key=page_key,
            details={"chunks": indexed.chunks, "kinds": _kind_counts(questions)},
        )


def questions_select(
    questions: Sequence[Question], *, kinds: Sequence[str] = KINDS, limit: int | None = None
) -> list[Question]:
    """The questions of ``kinds``, the first ``limit`` of each kind (all when None), in file
    order."""
    taken: dict[str, int] = {}
    chosen = []
    for q in questions:
        if q.kind in kinds and (limit is None or taken.get(q.kind, 0) < limit):
            taken[q.kind] = taken.get(q.kind, 0) + 1
            chosen.append(q)
    return chosen


def _kind_counts(questions: Sequence[Question]) -> dict[str, int]:
    return {kind: sum(q.kind == kind for q in questions) for kind in KINDS}


# ---------------------------------------------------------------------------------------------
# Metrics
# ---------------------------------------------------------------------------------------------


def page_hit(hits: Sequence, relevant: frozenset[str], k: int) -> bool:
    """Whether one of the first ``k`` hits is on one of the answer pages of the right manual."""
    return any(page_key(hit) in relevant for hit in hits[:k])


def page_sentences(text: str, *, min_words: int = QUOTE_MIN_WORDS) -> list[str]:
    """The page's sentences of at least ``min_words`` words, whitespace normalised."""
    flat = " ".join(text.split())
    sentences = re.split(r"(?<=[.!?])\s+(?=[\"'(\[A-Z0-9])", flat)
    return [s for s in sentences if len(s.split()) >= min_words]


_MARKER_RE = re.compile(r"\s*\[\d+(?:\s*,\s*\d+)*\]")


def quotes_page(
    answer: str, page_texts: Sequence[str], *, min_words: int = QUOTE_MIN_WORDS
) -> bool:
    """Whether ``answer`` and one of ``page_texts`` share a whole sentence of at least
    ``min_words`` words (citation markers like ``[1]``, quote marks ``>``, code backticks and
    whitespace ignored): a sentence of the page that the answer holds, or a complete sentence of
    the answer (ending in . ! or ?) that stands in the page. The second direction counts a quote
    whose page sentence runs on from a heading line the parser could not separate."""
    shown = " ".join(_MARKER_RE.sub("", answer).replace("`", "").split())
    if not shown:
        return False
    pages = [" ".join(text.split()) for text in page_texts]
    if any(
        sentence in shown
        for text in pages
        for sentence in page_sentences(text, min_words=min_words)
    ):
        return True
    quotes = [
        " ".join(_MARKER_RE.sub("", line).replace("`", "").lstrip("> ").split())
        for line in answer.splitlines()
        if line.startswith(">")
    ]
    return any(
        sentence.endswith((".", "!", "?")) and sentence in text
        for quote in quotes
        for sentence in page_sentences(quote, min_words=min_words)
        for text in pages
    )


def bootstrap_interval(
    values: Sequence[float], *, resamples: int = 2000, seed: int = 0, confidence: float = 0.95
) -> list[float] | None:
    """The percentile bootstrap ``confidence`` interval of the mean of ``values`` (fixed seed:
    the same values always give the same interval); None without values."""
    if not len(values):
        return None
    sample = np.asarray(values, dtype=float)
    rng = np.random.default_rng(seed)
    means = sample[rng.integers(0, len(sample), size=(resamples, len(sample)))].mean(axis=1)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return [round(float(low), 4), round(float(high), 4)]
