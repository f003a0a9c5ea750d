"""Structure-aware chunking: headings -> paragraphs -> sentences -> words.

A chunk never crosses a page (citations stay page-exact), a heading (a passage keeps one
topic) or the border between navigation text (contents, index) and content: a chunk of a contents
page is ``kind="navigation"`` and never carries prose, so it can be ranked and filtered apart.
Paragraphs are packed greedily up to ``target_tokens``; a paragraph that is too long is split
into sentences, a sentence that is too long into word windows, and a "word" that is too long
(a megabyte without a space) into fixed character windows. Consecutive chunks of one section share
about ``overlap`` of their tokens, taken as whole trailing units of the previous chunk.

The default of 256 tokens is the input window of all-MiniLM-L6-v2: a longer chunk would be
silently truncated by the embedder, its tail invisible to dense retrieval.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

from .types import Chunk, ChunkKind, Page, ParsedDocument

# Recorded on every document at ingestion; bumped whenever parsing or chunking changes what a
# document's passages are, so documents indexed by an older version can be found and re-indexed.
# 2: page furniture removed, hyphenation joined, navigation pages, PDF section paths.
# 3: BM25 terms stemmed (rag.lexical): the stored sparse vectors differ.
CHUNKER_VERSION = "3"

CHUNK_NAMESPACE = uuid.UUID("6f1c0c4e-8a5e-4d59-9a53-0b6a3c1f8d21")

_TOKEN_RE = re.compile(r"\w+|[^\w\s]")
_SENTENCE_RE = re.compile(r"\S.*?(?:[.!?…]+[\"')\]]*(?=\s)|\Z)", re.DOTALL)
_WORD_RE = re.compile(r"\S+")
_MAX_WORD_CHARS = 200  # longer runs without spaces are cut into windows of this many characters


def count_tokens(text: str) -> int:
    """Estimate WordPiece tokens without a tokenizer: words and punctuation, long words count more.

    On English prose this lands within ~10% of the MiniLM tokenizer and costs a regex scan.
    """
    return sum(1 + len(token) // 10 for token in _TOKEN_RE.findall(text))


def chunk_id_for(doc_sha256: str, index: int) -> str:
    """Deterministic: the same bytes always give the same ids, so re-runs overwrite, never add."""
    return str(uuid.uuid5(CHUNK_NAMESPACE, f"{doc_sha256}:{index}"))


@dataclass(frozen=True, slots=True)
class _Unit:
    start: int
    end: int
    tokens: int


@dataclass(frozen=True)
class Chunker:
    target_tokens: int = 256
    overlap: float = 0.15

    def __post_init__(self) -> None:
        if self.target_tokens < 16:
            raise ValueError("target_tokens must be at least 16")
        if not 0 <= self.overlap < 0.5:
            raise ValueError("overlap must be in [0, 0.5)")

    def split(self, document: ParsedDocument, *, doc_id: str, doc_sha256: str) -> list[Chunk]:
        chunks: list[Chunk] = []
        # (level, text, from a navigation page) stack, carried across pages
        headings: list[tuple[int, str, bool]] = []
        for page in document.pages:
            section: list[_Unit] = []
            kind: ChunkKind = "content"
            for block in page.blocks:
                navigation = block.navigation or page.navigation
                if block.kind == "heading":
                    self._emit(chunks, page, section, headings, kind, doc_id, doc_sha256)
                    section = []
                    title = " ".join((block.title or page.text[block.start : block.end]).split())
                    if not title:
                        continue
                    while headings and headings[-1][0] >= block.level:
                        headings.pop()
                    headings.append((block.level, title, navigation))
                    continue
                block_kind: ChunkKind = "navigation" if navigation else "content"
                if block_kind != kind:  # contents and index text never share a chunk with prose
                    self._emit(chunks, page, section, headings, kind, doc_id, doc_sha256)
                    section, kind = [], block_kind
                if not navigation:  # "Contents" is not the section of the text that follows it
                    headings[:] = [h for h in headings if not h[2]]
                section.extend(self._units(page.text, block.start, block.end))
            self._emit(chunks, page, section, headings, kind, doc_id, doc_sha256)
        return chunks

    # -- units ---------------------------------------------------------------------------------

    def _units(self, text: str, start: int, end: int) -> Iterator[_Unit]:
        tokens = count_tokens(text[start:end])
        if tokens <= self.target_tokens:
            yield _Unit(start, end, tokens)
            return
        for sentence in _SENTENCE_RE.finditer(text, start, end):
            s_start, s_end = sentence.start(), sentence.end()
            s_tokens = count_tokens(text[s_start:s_end])
            if s_tokens <= self.target_tokens:
                yield _Unit(s_start, s_end, s_tokens)
            else:
                yield from self._word_windows(text, s_start, s_end)

    def _word_windows(self, text: str, start: int, end: int) -> Iterator[_Unit]:
        window_start, window_tokens, window_end = -1, 0, start
        for word in _WORD_RE.finditer(text, start, end):
            for w_start, w_end, w_tokens in self._word_pieces(text, word.start(), word.end()):
                if window_start >= 0 and window_tokens + w_tokens > self.target_tokens:
                    yield _Unit(window_start, window_end, window_tokens)
                    window_start, window_tokens = -1, 0
                if window_start < 0:
                    window_start = w_start
                window_tokens += w_tokens
                window_end = w_end
        if window_start >= 0:
            yield _Unit(window_start, window_end, window_tokens)

    def _word_pieces(self, text: str, start: int, end: int) -> Iterator[tuple[int, int, int]]:
        """Cut a space-free run (URL, minified JSON, a rule of "=") at token boundaries so each
        piece fits the target; a single over-long token is cut into character windows short
        enough to count at most ``target_tokens``. Pieces are packed back together greedily."""
        tokens = count_tokens(text[start:end]) or 1
        if tokens <= self.target_tokens and end - start <= _MAX_WORD_CHARS:
            yield start, end, tokens
            return
        # count_tokens gives a run of n word characters 1 + n // 10 tokens.
        window = min(_MAX_WORD_CHARS, 10 * self.target_tokens - 1)
        piece_start, piece_tokens = start, 0
        for token in _TOKEN_RE.finditer(text, start, end):
            for t_start, t_end in _char_windows(token.start(), token.end(), window):
                t_tokens = count_tokens(text[t_start:t_end])
                too_long = t_end - piece_start > _MAX_WORD_CHARS
                if piece_tokens and (piece_tokens + t_tokens > self.target_tokens or too_long):
                    yield piece_start, t_start, piece_tokens
                    piece_start, piece_tokens = t_start, 0
                piece_tokens += t_tokens
        yield piece_start, end, piece_tokens

    # -- packing -------------------------------------------------------------------------------

    def _emit(
        self,
        chunks: list[Chunk],
        page: Page,
        units: list[_Unit],
        headings: list[tuple[int, str, bool]],
        kind: ChunkKind,
        doc_id: str,
        doc_sha256: str,
    ) -> None:
        path = tuple(text for _, text, _ in headings)
        overlap_budget = int(self.target_tokens * self.overlap)
        current: list[_Unit] = []
        tokens = 0
        fresh = False  # does `current` hold a unit not yet emitted?
        for unit in units:
            if current and tokens + unit.tokens > self.target_tokens:
                self._append(chunks, page, current, path, kind, doc_id, doc_sha256)
                current, tokens = self._tail(current, overlap_budget, unit.tokens)
            current.append(unit)
            tokens += unit.tokens
            fresh = True
        if fresh:
            self._append(chunks, page, current, path, kind, doc_id, doc_sha256)

    def _tail(self, units: list[_Unit], budget: int, incoming: int) -> tuple[list[_Unit], int]:
        """Trailing units of the chunk just emitted that fit the overlap budget and leave room."""
        tail: list[_Unit] = []
        tokens = 0
        for unit in reversed(units[1:]):  # never the whole previous chunk again
            if (
                tokens + unit.tokens > budget
                or tokens + unit.tokens + incoming > self.target_tokens
            ):
                break
            tail.insert(0, unit)
            tokens += unit.tokens
        return tail, tokens

    @staticmethod
    def _append(
        chunks: list[Chunk],
        page: Page,
        units: list[_Unit],
        path: tuple[str, ...],
        kind: ChunkKind,
        doc_id: str,
        doc_sha256: str,
    ) -> None:
        start, end = units[0].start, units[-1].end
        text = page.text[start:end]
        index = len(chunks)
        chunks.append(
            Chunk(
                id=chunk_id_for(doc_sha256, index),
                doc_id=doc_id,
                index=index,
                page=page.number,
                start=start,
                end=end,
                text=text,
                heading_path=path,
                content_hash=hashlib.sha256(text.encode()).hexdigest()[:16],
                kind=kind,
            )
        )


def _char_windows(start: int, end: int, size: int) -> Iterator[tuple[int, int]]:
    for window_start in range(start, end, size):
        yield window_start, min(window_start + size, end)
