"""A passage as the search page shows it: clean text with the query's terms marked.

Display only: the stored passage (what answers quote and `manage.py search --json` prints)
keeps its line breaks."""

from __future__ import annotations

import re

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from rag.lexical import term_spans

# a word broken across a line by a hyphen: "infor-\nmation"
_BROKEN_WORD = re.compile(r"(\w+)-[ \t]*\n\s*([a-z]\w*)")
_SPACE = re.compile(r"\s+")
SNIPPET_CHARS = 600
_LEAD = 120  # characters shown before the first term marked


def passage_clean(text: str) -> str:
    """One line of text: words broken at a line end joined again, whitespace runs as one space.
    A compound the passage also writes with its hyphen on one line ("self-service") keeps it."""

    def join(match: re.Match) -> str:
        head, tail = match.groups()
        return f"{head}-{tail}" if f"{head}-{tail}" in text else head + tail

    return _SPACE.sub(" ", _BROKEN_WORD.sub(join, text)).strip()


def passage_html(
    text: str, query: str, *, language: str | None, limit: int = SNIPPET_CHARS
) -> SafeString:
    """``text`` cleaned, escaped, with each word matching a term of ``query`` in ``<mark>``;
    past ``limit`` characters, the stretch of that length with the most marked words."""
    clean = passage_clean(text)
    spans = term_spans(clean, query, language)
    start, end = _window(clean, spans, limit)
    parts = ["…"] if start > 0 else []
    position = start
    for span_start, span_end in spans:
        if span_start < start or span_end > end:
            continue
        parts += [escape(clean[position:span_start]), "<mark>", escape(clean[span_start:span_end])]
        parts.append("</mark>")
        position = span_end
    parts.append(escape(clean[position:end]))
    if end < len(clean):
        parts.append("…")
    return mark_safe("".join(parts))  # every piece of the passage went through escape()


def _window(text: str, spans: list[tuple[int, int]], limit: int) -> tuple[int, int]:
    """The [start, end) of at most ``limit`` characters, cut at spaces, that starts a little
    before a marked word and holds the most of them (the passage's start if none is marked)."""
    if len(text) <= limit:
        return 0, len(text)
    best, best_count, lead = 0, -1, min(_LEAD, limit // 4)
    for span_start, _ in spans:
        start = max(0, span_start - lead)
        count = sum(1 for s, e in spans if s >= start and e <= start + limit)
        if count > best_count:
            best, best_count = start, count
    if best > 0:  # begin at a word, not before the first one marked
        first_mark = min(s for s, _ in spans if s >= best)
        space = text.find(" ", best, first_mark)
        best = space + 1 if space >= 0 else best
    end = min(len(text), best + limit)
    if end < len(text):
        space = text.rfind(" ", best, end)
        end = space if space > best else end
    return best, end
