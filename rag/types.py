"""Value types shared by every stage of the pipeline. All frozen: stages never mutate their inputs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

BlockKind = Literal["heading", "paragraph"]


@dataclass(frozen=True, slots=True)
class Block:
    """A structural unit of a page: ``page.text[start:end]`` is its text."""

    kind: BlockKind
    start: int
    end: int
    level: int = 0  # heading level 1..6; 0 for paragraphs


@dataclass(frozen=True, slots=True)
class Page:
    """One physical page (PDF: 1-based page index) or the whole text of a page-less format."""

    number: int | None
    text: str
    blocks: tuple[Block, ...]


@dataclass(frozen=True, slots=True)
class ParsedDocument:
    media_type: str
    pages: tuple[Page, ...]
    title: str = ""
    warnings: tuple[str, ...] = ()

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
