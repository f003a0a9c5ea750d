"""Properties of rag.parsing and rag.chunking over generated inputs (Hypothesis).

Any bytes under any supported name end as a ParsedDocument or a ParseError: never another
exception, which the worker would record as "an unexpected error" instead of the reason. And
whatever the parser makes of a text, every block and every chunk names a range of its page's text
whose slice is exactly the text it carries (citations point into ``page.text[start:end]``).
"""

from __future__ import annotations

import time

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from rag.chunking import Chunker, chunk_id_for
from rag.parsing import ParseError, parse
from rag.types import ParsedDocument
from tests.docs import make_docx, make_pdf

EXTENSIONS = [".txt", ".md", ".html", ".pdf", ".docx", ""]
# Per example, once the parsers' imports are warm: far above what a few KB take, far below what
# a parser stuck in a loop would.
SECONDS_PER_INPUT = 5.0

# Real documents, mutated by the strategies below: random bytes alone almost never reach the PDF
# or DOCX readers past the first check of their header.
VALID = {
    ".pdf": make_pdf(["First page.\nA second line.", "Second page (of two)."], title="T"),
    ".docx": make_docx([("h1", "Title"), ("p", "A paragraph."), ("h2", "Sub"), ("p", "More.")]),
    ".html": b"<html><head><title>T</title></head><body><h1>A</h1><p>Text <b>bold</b>.</p>"
    b"<nav><ul><li>x</li></ul></nav><table><tr><td>1</td></tr></table></body></html>",
    ".md": b"# Heading\n\nA paragraph with *emphasis* and `code`.\n\n- a list\n- item\n\n> quote\n",
    ".txt": "Caf\xe9 cr\xe8me.\r\n\r\nSecond paragraph here.".encode("cp1252"),
}
PREFIXES = [b"", b"%PDF-1.7\n", b"PK\x03\x04", b"<html>", b"\xef\xbb\xbf", b"\xff\xfe", b"\x00"]


@pytest.fixture(scope="module", autouse=True)
def warm_parsers():
    """Import every format's parser once, so the per-input bound measures parsing, not imports."""
    for extension, data in VALID.items():
        parse(data, "warm" + extension)


@st.composite
def mutated(draw) -> tuple[bytes, str]:
    """A valid document of one format with a few bytes overwritten, a run cut out, truncated."""
    extension = draw(st.sampled_from(sorted(VALID)))
    data = bytearray(VALID[extension])
    for _ in range(draw(st.integers(0, 6))):
        position = draw(st.integers(0, len(data) - 1))
        data[position] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        start = draw(st.integers(0, len(data)))
        del data[start : start + draw(st.integers(0, 64))]
    data = data[: draw(st.integers(0, len(data)))] if draw(st.booleans()) else data
    named = draw(st.sampled_from([extension, *EXTENSIONS]))  # also misnamed
    return bytes(data), "upload" + named


def parse_or_reason(data: bytes, filename: str) -> ParsedDocument | ParseError:
    started = time.monotonic()
    try:
        result: ParsedDocument | ParseError = parse(data, filename)
    except ParseError as exc:
        assert exc.reason and str(exc) == exc.reason
        result = exc
    # In the statistics (--hypothesis-show-statistics): how far the inputs got.
    event(result.reason.split(":")[0][:40] if isinstance(result, ParseError) else "parsed")
    assert time.monotonic() - started < SECONDS_PER_INPUT, filename
    return result


def assert_well_formed(document: ParsedDocument) -> None:
    assert document.pages
    assert any(page.text.strip() for page in document.pages)
    for page in document.pages:
        for block in page.blocks:
            assert 0 <= block.start <= block.end <= len(page.text), block


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    prefix=st.sampled_from(PREFIXES),
    body=st.binary(max_size=2048),
    extension=st.sampled_from(EXTENSIONS),
)
@example(
    prefix=b"%PDF-1.4\n", body=b"1 0 obj\n<<>>\nendobj\ntrailer<</Root 1 0 R>>", extension=".pdf"
)
@example(prefix=b"PK\x03\x04", body=b"\x00" * 64, extension=".docx")
def test_any_bytes_parse_or_fail_with_a_reason(prefix, body, extension):
    result = parse_or_reason(prefix + body, "upload" + extension)
    if isinstance(result, ParsedDocument):
        assert_well_formed(result)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_damaged_documents_parse_or_fail_with_a_reason(case):
    result = parse_or_reason(*case)
    if isinstance(result, ParsedDocument):
        assert_well_formed(result)


# --- chunk offsets -----------------------------------------------------------------------------

# Letters, digits, spaces, line breaks, sentence ends, markup characters, accents and a few
# characters whose case or normalisation changes their length: offsets must still hold.
ALPHABET = st.sampled_from(
    list("abcXYZ019 \n\n\t.!?…,;:-*_#>`[]()<>&/\"'")
    + ["é", "ß", "İ", "ﬁ", "\u00a0", "\u200b", "\r"]
)
WORDS = st.one_of(
    st.text(ALPHABET, min_size=1, max_size=12),
    st.text(st.sampled_from("ab-=/"), min_size=150, max_size=450),  # a run without spaces
)
TEXTS = st.lists(WORDS, max_size=80).map(" ".join)

MARKDOWN_LINES = st.tuples(
    st.sampled_from(["", "# ", "## ", "### ", "- ", "1. ", "> ", "    ", "| a | ", "```"]),
    TEXTS,
).map("".join)
MARKDOWN = st.lists(MARKDOWN_LINES, max_size=20).map("\n".join)

TAGS = ["p", "div", "h1", "h2", "h3", "li", "nav", "span", "b", "br", "td", "script", "pre"]


@st.composite
def html_documents(draw) -> str:
    parts = ["<html><body>"]
    for _ in range(draw(st.integers(0, 25))):
        tag = draw(st.sampled_from(TAGS))
        text = draw(TEXTS).replace("<", "&lt;")
        closed = draw(st.booleans())  # unclosed tags too: browsers and lxml recover
        parts.append(f"<{tag}>{text}" + (f"</{tag}>" if closed else ""))
    return "".join(parts) + "</body></html>"


FORMATS = st.one_of(
    TEXTS.map(lambda text: (text, ".txt")),
    MARKDOWN.map(lambda text: (text, ".md")),
    html_documents().map(lambda text: (text, ".html")),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    case=FORMATS,
    target=st.integers(16, 80),
    overlap=st.sampled_from([0.0, 0.15, 0.3, 0.49]),
)
@example(case=("x" * 5000, ".txt"), target=16, overlap=0.15)
@example(case=("# A\n\n## \n\nText. " * 40, ".md"), target=16, overlap=0.3)
def test_chunks_are_exact_slices_of_their_page(case, target, overlap):
    text, extension = case
    result = parse_or_reason(text.encode("utf-8"), "doc" + extension)
    if isinstance(result, ParseError):
        # Only text with nothing left to read may fail: no other reason for a text format.
        assert result.reason.startswith(("no extractable text", "empty file")), result.reason
        assert extension != ".txt" or not text.strip()
        return
    assert_well_formed(result)
    chunks = Chunker(target_tokens=target, overlap=overlap).split(
        result, doc_id="1", doc_sha256="abc"
    )
    # Heading text only names sections (ingestion then fails the document: "no text to index").
    body = [
        page.text[block.start : block.end]
        for page in result.pages
        for block in page.blocks
        if block.kind == "paragraph"
    ]
    assert bool(chunks) == any(text.strip() for text in body)
    pages = {page.number: page for page in result.pages}
    for index, chunk in enumerate(chunks):
        page = pages[chunk.page]
        assert 0 <= chunk.start < chunk.end <= len(page.text), chunk
        assert chunk.text == page.text[chunk.start : chunk.end]
        assert chunk.text.strip()
        assert (chunk.index, chunk.id) == (index, chunk_id_for("abc", index))
    # Nothing is lost: every character of every paragraph block lies in some chunk of its page.
    covered = {number: set() for number in pages}
    for chunk in chunks:
        covered[chunk.page].update(range(chunk.start, chunk.end))
    for page in result.pages:
        for block in page.blocks:
            if block.kind != "paragraph":
                continue
            missing = [
                i
                for i in range(block.start, block.end)
                if not page.text[i].isspace() and i not in covered[page.number]
            ]
            assert not missing, (block, page.text[block.start : block.end])
