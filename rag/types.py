"""Value types shared by every stage of the pipeline. All frozen: stages never mutate their inputs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

BlockKind = Literal["heading", "paragraph"]
# "navigation": a table of contents, an index, a list of figures or tables. Such passages stay
# searchable by name but are never given to a model, never quoted as an answer and rank after
# content when answering.
ChunkKind = Literal["content", "navigation"]


@dataclass(frozen=True, slots=True)
class Block:
    """A structural unit of a page: ``page.text[start:end]`` is its text."""

    kind: BlockKind
    start: int
    end: int
    level: int = 0  # heading level 1..6; 0 for paragraphs
    # A heading's text for the section path when it is not ``page.text[start:end]``: a PDF
    # outline title (a heading not found on its page is an empty block, start == end).
    title: str = ""
    navigation: bool = False  # part of a table of contents, an index, a list of figures


@dataclass(frozen=True, slots=True)
class Page:
    """One physical page (PDF: 1-based page index) or the whole text of a page-less format."""

    number: int | None
    text: str
    blocks: tuple[Block, ...]
    navigation: bool = False  # the whole page is a contents, index or list-of-figures page


@dataclass(frozen=True, slots=True)
class ParsedDocument:
    media_type: str
    pages: tuple[Page, ...]
    title: str = ""
    warnings: tuple[str, ...] = ()
    # Running header/footer lines removed from the pages (PDF), as normalised keys ("# gri").
    furniture: tuple[str, ...] = ()
    # Where the section headings came from: "outline", "numbered" (PDF heading lines), "markup"
    # (HTML, Markdown, DOCX styles) or "" (none).
    headings_from: str = ""

    @property
    def page_count(self) -> int | None:
        """Physical pages for paged formats (PDF); None for formats without pages."""
        if len(self.pages) == 1 and self.pages[0].number is None:
            return None
        return len(self.pages)


@dataclass(frozen=True, slots=True)
class Chunk:
    """A retrievable passage. ``page_text[start:end] == text`` for the page it came from."""

    id: str
    doc_id: str
    index: int
    page: int | None
    start: int
    end: int
    text: str
    heading_path: tuple[str, ...] = ()
    content_hash: str = ""
    kind: ChunkKind = "content"

    @property
    def embedding_text(self) -> str:
        """What the embedder sees: the heading path gives a short passage its context."""
        if not self.heading_path:
            return self.text
        return " > ".join(self.heading_path) + "\n" + self.text


@dataclass(frozen=True, slots=True)
class SparseVector:
    indices: tuple[int, ...]
    values: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class IndexedChunk:
    """A chunk with its vectors, ready for the store."""

    chunk: Chunk
    dense: tuple[float, ...]
    sparse: SparseVector
    payload: dict = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ScoredChunk:
    chunk_id: str
    document_id: str
    collection: str
    page: int | None
    start: int
    end: int
    text: str
    score: float
    heading_path: tuple[str, ...] = ()
    document_name: str = ""
    # Component scores kept for the audit record: cosine similarity, BM25, and the 1-based rank
    # in each list (None when the chunk was not in that list).
    dense_score: float | None = None
    lexical_score: float | None = None
    dense_rank: int | None = None
    lexical_rank: int | None = None
    # Set when ingestion screening found instruction-like or hidden text (rag.injection).
    injection_reasons: tuple[str, ...] = ()
    kind: ChunkKind = "content"


# ---------------------------------------------------------------------------------------------
# Answering: prompt, model output, citations
# ---------------------------------------------------------------------------------------------

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True, slots=True)
class Message:
    role: Role
    content: str


@dataclass(frozen=True, slots=True)
class Prompt:
    """The exact messages sent to a model; ``sources[n - 1]`` is source ``[n]``."""

    messages: tuple[Message, ...]
    sources: tuple[ScoredChunk, ...]
    template_version: str


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, slots=True)
class Delta:
    """A piece of a streamed answer: reasoning text, answer text, or both empty (keep-alive)."""

    reasoning: str = ""
    answer: str = ""


@dataclass(frozen=True, slots=True)
class Completion:
    """A finished generation, normalised across providers."""

    answer: str
    reasoning: str
    model: str  # the model name/version string the provider reported
    provider: str  # "deepseek", "openai-compatible", "local", "fake"...
    usage: Usage = Usage()
    finish_reason: str | None = None


# "quoted": a sentence shown verbatim from a passage (an extractive answer), never a model's claim;
# the other three are the verifier's judgement of a model's sentence.
Verdict = Literal["supported", "partial", "unsupported", "quoted"]


@dataclass(frozen=True, slots=True)
class Citation:
    """One ``[n]`` in an answer, checked against the passage it points to."""

    marker: int
    chunk: ScoredChunk
    sentence: str  # the answer sentence carrying the marker, markers removed
    quote: str  # the best supporting span of ``chunk.text`` ("" when nothing supports it)
    quote_start: int  # offsets of ``quote`` in ``chunk.text``
    quote_end: int
    verdict: Verdict
    score: float  # the verifier's combined score in [0, 1]


@dataclass(frozen=True, slots=True)
class CitationReport:
    citations: tuple[Citation, ...]
    invalid_markers: tuple[int, ...] = ()  # markers with no such source: dropped and flagged
    uncited_sentences: tuple[str, ...] = ()  # answer sentences making a claim without a marker

    @property
    def has_unsupported(self) -> bool:
        return any(c.verdict == "unsupported" for c in self.citations) or bool(self.invalid_markers)
