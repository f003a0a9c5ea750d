"""Bytes + file name -> ParsedDocument, keeping the physical page of every character.

The media type is decided from the *content*; the file name only breaks ties between text formats
(Markdown, HTML, plain text) and makes error messages precise ("named .pdf but it is a PNG image").
Every failure a user can cause raises ``ParseError`` with a reason written for that user.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import PurePath

import filetype
from charset_normalizer import from_bytes

from .pdf_layout import OutlineEntry, layout_pages
from .types import Block, Page, ParsedDocument

PDF = "application/pdf"
TXT = "text/plain"
MARKDOWN = "text/markdown"
HTML = "text/html"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
SUPPORTED_MEDIA_TYPES = (PDF, TXT, MARKDOWN, HTML, DOCX)

EXTENSIONS = {
    ".pdf": PDF,
    ".txt": TXT,
    ".text": TXT,
    ".md": MARKDOWN,
    ".markdown": MARKDOWN,
    ".html": HTML,
    ".htm": HTML,
    ".docx": DOCX,
}
FRIENDLY = {PDF: "a PDF", TXT: "text", MARKDOWN: "Markdown", HTML: "HTML", DOCX: "a DOCX document"}

ProgressFn = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class ParseLimits:
    """Bounds checked before or while a format's parser reads the bytes (bombs, floods).

    A DOCX is a ZIP archive that python-docx inflates whole into XML trees: 3.5 MB can inflate to
    gigabytes of tiny paragraphs. The archive's directory says what each member inflates to, and
    zipfile never inflates a member past its declared size, so checking the directory first bounds
    the memory parsing can take.

    BeautifulSoup takes about 1 KB per element and markdown-it about 0.5 KB per token: 5 MB of
    ``<p>x</p>`` took 0.8 GB, 2 MB of Markdown paragraphs 1.2 GB. Elements and nesting are counted
    by a pass of lxml's event parser (no tree) before BeautifulSoup builds one.

    pypdf inflates each stream up to a limit of its own (``pypdf.Configuration``); it is pinned
    here so that it is ours, not whatever the installed version defaults to."""

    zip_max_bytes: int = 200 * 1024 * 1024  # all members together, inflated
    zip_max_ratio: float = 100.0  # inflated / compressed, over the whole archive
    zip_max_members: int = 10_000
    pdf_max_pages: int = 10_000
    pdf_max_stream_bytes: int = 75 * 1024 * 1024  # one PDF stream, inflated
    html_max_bytes: int = 20 * 1024 * 1024  # an HTML or Markdown file, before decoding
    html_max_depth: int = 512  # elements open inside one another
    html_max_elements: int = 200_000  # elements in the whole document (Markdown: once rendered)

    def __post_init__(self) -> None:
        sizes = (self.zip_max_bytes, self.zip_max_ratio, self.zip_max_members)
        if min(*sizes, self.pdf_max_stream_bytes, self.html_max_bytes) <= 0:
            raise ValueError("parse limits must be positive")
        if min(self.pdf_max_pages, self.html_max_depth, self.html_max_elements) < 1:
            raise ValueError("page, depth and element limits must be at least 1")


DEFAULT_LIMITS = ParseLimits()

# A small archive may legitimately compress better than the ratio (repetitive XML): the ratio is
# only held against archives that inflate past this.
_RATIO_FLOOR = 10 * 1024 * 1024


class ParseError(Exception):
    """The document cannot be read; ``reason`` is shown to the admin as is. Never worth a retry."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# ---------------------------------------------------------------------------------------------
# Media type detection
# ---------------------------------------------------------------------------------------------


def detect_media_type(data: bytes, filename: str) -> str:
    """Decide what ``data`` is from its content. Raises ParseError for empty or unsupported files."""
    if not data:
        raise ParseError("empty file (0 bytes)")
    ext = PurePath(filename).suffix.lower()
    named = EXTENSIONS.get(ext)
    head = data[:2048]

    if _has_pdf_header(head):
        return PDF
    if head.startswith(b"PK\x03\x04"):
        if _is_docx(data):
            return DOCX
        raise ParseError(_mismatch(ext, named, "a ZIP archive"))
    if not _is_clean_text(head):
        # Magic numbers only for data that is not plainly text: some are two or three bytes
        # ("BM", "ID3", "MZ") and would refuse a note that merely starts with those letters.
        kind = filetype.guess(head)
        if kind is not None:
            raise ParseError(_mismatch(ext, named, f"{kind.mime} ({kind.extension})"))
        if _looks_binary(head):
            raise ParseError(_mismatch(ext, named, "binary data"))

    if named in (PDF, DOCX):
        raise ParseError(
            f"named {ext} but the content is not {FRIENDLY[named]} (it looks like text)"
        )
    if named in (MARKDOWN, HTML, TXT):
        return named
    if re.match(rb"\s*(<!doctype html|<html)", head, re.IGNORECASE):
        return HTML
    return TXT  # any other textual file (csv, log, no extension...) is read as plain text


def _mismatch(ext: str, named: str | None, actual: str) -> str:
    if named:
        return f"named {ext} but the content is {actual}: not a supported document type"
    return f"unsupported file type: {actual}"


def _is_docx(data: bytes) -> bool:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return "word/document.xml" in archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return False


def _has_pdf_header(head: bytes) -> bool:
    """PDF readers accept the header anywhere in the first 1024 bytes, after junk such as a mail
    or HTTP header; a text file that merely *mentions* "%PDF-" is still text."""
    position = head.find(b"%PDF-", 0, 1024)
    if position < 0:
        return False
    prefix = head[:position]
    if not prefix.strip() or not _is_clean_text(prefix):
        return True  # at the start, or after binary junk
    # After text: only a header on a line of its own followed by PDF objects is a PDF.
    return prefix.endswith((b"\n", b"\r")) and re.search(rb"\d+ \d+ obj", head) is not None


_CONTROL = re.compile(rb"[\x00-\x08\x0e-\x1a\x1c-\x1f\x7f]")


def _is_clean_text(head: bytes) -> bool:
    """No NUL and no control characters but whitespace and ESC: what text files look like in
    any 8-bit or UTF-8 encoding (UTF-16 is caught by its byte order mark)."""
    return not _CONTROL.search(head)


def _looks_binary(head: bytes) -> bool:
    if head.startswith((b"\xff\xfe", b"\xfe\xff", b"\xef\xbb\xbf")):
        return False  # UTF-16 / UTF-8 byte order marks: text
    return b"\x00" in head


# ---------------------------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------------------------


def parse(
    data: bytes,
    filename: str,
    *,
    progress: ProgressFn | None = None,
    limits: ParseLimits = DEFAULT_LIMITS,
) -> ParsedDocument:
    """Parse ``data``. ``progress(done, total)`` is called as pages are read (PDFs page by page).
    A breach of ``limits`` is a ParseError that names the limit and the number."""
    media_type = detect_media_type(data, filename)
    report = progress or (lambda done, total: None)
    if media_type == PDF:
        document = _parse_pdf(data, report, limits)
    elif media_type == DOCX:
        check_archive(data, limits)
        document = _parse_docx(data)
    elif media_type == HTML:
        _check_markup_size(data, media_type, limits)
        document = _parse_html(decode_text(data), limits=limits)
    elif media_type == MARKDOWN:
        _check_markup_size(data, media_type, limits)
        document = _parse_markdown(decode_text(data), limits)
    else:
        document = _parse_text(decode_text(data))
    if not any(page.text.strip() for page in document.pages):
        raise ParseError("no extractable text: the document is empty once markup is removed")
    if media_type != PDF:  # a PDF reported page by page already
        report(1, 1)
    return document


def check_archive(data: bytes, limits: ParseLimits) -> None:
    """Refuse a ZIP archive whose directory promises too much: before anything is inflated."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise ParseError(f"corrupt DOCX document: {_short(exc)}") from exc
    if len(members) > limits.zip_max_members:
        raise ParseError(
            f"refused: the archive holds {len(members):,} files (the limit is "
            f"{limits.zip_max_members:,}): not an ordinary DOCX document"
        )
    inflated = sum(member.file_size for member in members)
    if inflated > limits.zip_max_bytes:
        raise ParseError(
            f"refused: the document inflates to {inflated / 2**20:,.0f} MB (the limit is "
            f"{limits.zip_max_bytes / 2**20:,.0f} MB): a compression bomb or far too large"
        )
    compressed = max(1, sum(member.compress_size for member in members))
    if inflated > _RATIO_FLOOR and inflated / compressed > limits.zip_max_ratio:
        raise ParseError(
            f"refused: the document inflates {inflated / compressed:,.0f} times its size "
            f"(the limit is {limits.zip_max_ratio:,.0f}): a compression bomb"
        )


def _check_markup_size(data: bytes, media_type: str, limits: ParseLimits) -> None:
    if len(data) > limits.html_max_bytes:
        raise ParseError(
            f"refused: the {FRIENDLY[media_type]} file is {len(data) / 2**20:,.1f} MB (the limit "
            f"is {limits.html_max_bytes / 2**20:,.1f} MB for {FRIENDLY[media_type]})"
        )


def decode_text(data: bytes) -> str:
    """Decode bytes of unknown encoding; UTF-8 first (fast, exact), then detection."""
    for encoding in ("utf-8-sig",):
        try:
            return _normalise(data.decode(encoding))
        except UnicodeDecodeError:
            pass
    # Detection on a sample keeps a 100 MB file from taking minutes; the sample decides the codec.
    matches = from_bytes(data[:200_000])
    best = matches.best()
    if best is None:
        raise ParseError("the text encoding could not be recognised (is it really a text file?)")
    encoding = best.encoding
    # Short Western text scores the same in cp1252, cp1250 and cp1257; charset_normalizer then
    # picks the first, turning "è" into "č". Among equally good candidates, Windows-1252 is by far
    # the most common legacy encoding of documents.
    tied = {m.encoding for m in matches if (m.chaos, m.coherence) == (best.chaos, best.coherence)}
    if "cp1252" in tied:
        encoding = "cp1252"
    return _normalise(data.decode(encoding, errors="replace"))


def _normalise(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")


def _paragraph_blocks(text: str, offset: int = 0) -> list[Block]:
    """Paragraphs are runs of non-blank lines."""
    blocks = []
    for match in re.finditer(r"\S(?:.*?\S)?(?=\n[ \t\f\v]*\n|\s*\Z)", text, re.DOTALL):
        blocks.append(Block("paragraph", offset + match.start(), offset + match.end()))
    return blocks


def _parse_text(text: str) -> ParsedDocument:
    page = Page(number=None, text=text, blocks=tuple(_paragraph_blocks(text)))
    return ParsedDocument(media_type=TXT, pages=(page,))


# pypdf's own bounds on what one stream may inflate to (pypdf.Configuration), pinned to
# ParseLimits.pdf_max_stream_bytes: the declared length, each decoding filter, an array of streams.
_PYPDF_STREAM_LIMITS = (
    "maximum_declared_stream_length",
    "array_based_stream_maximum_output_length",
    "zlib_maximum_output_length",
    "lzw_maximum_output_length",
    "run_length_maximum_output_length",
    "brotli_maximum_output_length",
    "jbig2_maximum_output_length",
    "image_maximum_buffer_size",
)


def _parse_pdf(data: bytes, report: ProgressFn, limits: ParseLimits) -> ParsedDocument:
    import dataclasses

    from pypdf import Configuration, apply_configuration

    known = {field.name for field in dataclasses.fields(Configuration)}
    pinned = {name: limits.pdf_max_stream_bytes for name in _PYPDF_STREAM_LIMITS if name in known}
    with apply_configuration(**pinned):  # a context variable: this thread, this call only
        return _read_pdf(data, report, limits)


def _read_pdf(data: bytes, report: ProgressFn, limits: ParseLimits) -> ParsedDocument:
    from pypdf import PdfReader
    from pypdf.errors import FileNotDecryptedError, LimitReachedError, PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            try:
                unlocked = reader.decrypt(
                    ""
                )  # owner-password-only PDFs open with an empty password
            except (FileNotDecryptedError, NotImplementedError, PdfReadError):
                unlocked = 0
            if not unlocked:
                raise ParseError(
                    "encrypted PDF: it needs a password to open; upload an unprotected copy"
                )
        total = len(reader.pages)
    except ParseError:
        raise
    except LimitReachedError as exc:
        raise ParseError(_pdf_limit_reason(exc, limits)) from exc
    except Exception as exc:  # pypdf raises many types on damaged files
        raise ParseError(f"corrupt or truncated PDF: {_short(exc)}") from exc
    if total == 0:
        raise ParseError("corrupt or truncated PDF: no pages could be read")
    if total > limits.pdf_max_pages:
        raise ParseError(
            f"refused: the PDF has {total:,} pages (the limit is {limits.pdf_max_pages:,})"
        )

    texts: list[str] = []
    warnings: list[str] = []
    failed_pages = 0
    for number in range(1, total + 1):
        page = reader.pages[number - 1]
        try:
            text = _normalise(page.extract_text() or "")
        except LimitReachedError as exc:  # a bomb, not damage: the document is refused
            raise ParseError(_pdf_limit_reason(exc, limits, page=number)) from exc
        except Exception as exc:  # one damaged page must not lose the rest of the document
            failed_pages += 1
            warnings.append(f"page {number}: text could not be extracted ({_short(exc)})")
            text = ""
        finally:
            _release_decoded_streams(reader, page)
        texts.append(text)
        report(number, total)
    if failed_pages == total:
        raise ParseError(f"corrupt or truncated PDF: no page could be read ({warnings[0]})")
    if not any(text.strip() for text in texts):
        raise ParseError(
            f"no extractable text — scanned PDF? ({total} page{'s' if total != 1 else ''} "
            "without a text layer; OCR is not enabled)"
        )
    title = ""
    try:
        title = str((reader.metadata or {}).get("/Title") or "").strip()
    except Exception:  # metadata is decoration: a broken info dictionary is not worth a failure
        pass
    # Outline and page labels only guide the structure: a broken one costs the structure, never
    # the document.
    outline = _pdf_outline(reader, warnings)
    labels: list[str] = []
    try:
        labels = list(reader.page_labels)
    except Exception:
        pass
    layout = layout_pages(texts, numbers=range(1, total + 1), outline=outline, labels=labels)
    return ParsedDocument(
        media_type=PDF,
        pages=layout.pages,
        title=title,
        warnings=tuple(warnings),
        furniture=layout.furniture,
        headings_from=layout.headings_from,
    )


def _pdf_limit_reason(exc: Exception, limits: ParseLimits, *, page: int | None = None) -> str:
    where = f"page {page} of the PDF" if page else "the PDF"
    message = str(exc)
    if "decompress" in message or "output bytes" in message or "stream length" in message:
        limit = limits.pdf_max_stream_bytes / 2**20
        return (
            f"refused: {where} holds a stream that inflates to more than {limit:,.0f} MB "
            f"(the limit is {limit:,.0f} MB): a compression bomb or far too large"
        )
    return f"refused: {where} goes past a safety limit of the PDF reader ({_short(exc)})"


def _release_decoded_streams(reader, page) -> None:
    """pypdf keeps every stream it decoded cached on the reader: 20 pages of 70 MB content
    streams held 1.5 GB. Once a page's text is read, its content streams and form XObjects
    (what text extraction decodes) are dropped. Only objects already in the reader's cache are
    looked at: the walk never reads anything new from the file."""
    from pypdf.generic import IndirectObject

    def cached(item):
        if isinstance(item, IndirectObject):
            return reader.cache_get_indirect_object(item.generation, item.idnum)
        return item

    def members(item) -> list:
        item = cached(item)
        return list(item) if isinstance(item, list) else [item]

    streams = members(page.get("/Contents"))
    resources = [page.get("/Resources")]
    visited = 0
    while resources and visited < _RELEASE_WALK_LIMIT:
        found = cached(resources.pop())
        xobjects = cached(found.get("/XObject")) if isinstance(found, dict) else None
        if not isinstance(xobjects, dict):
            continue
        for xobject in list(xobjects.values())[:_RELEASE_WALK_LIMIT]:
            visited += 1
            xobject = cached(xobject)
            if isinstance(xobject, dict) and xobject.get("/Subtype") == "/Form":
                streams.append(xobject)
                if xobject.get("/Resources") is not None:
                    resources.append(xobject.get("/Resources"))
    for stream in streams:
        stream = cached(stream)
        if getattr(stream, "decoded_self", None) is not None:
            stream.decoded_self = None


_RELEASE_WALK_LIMIT = 1000


MAX_OUTLINE_ENTRIES = 5000
MAX_OUTLINE_DEPTH = 12


def _pdf_outline(reader, warnings: list[str]) -> list[OutlineEntry]:
    """The bookmarks in document order, with 0-based destination pages; [] if unreadable."""
    entries: list[OutlineEntry] = []
    try:
        outline = reader.outline
    except Exception as exc:
        warnings.append(f"the bookmarks could not be read ({_short(exc)})")
        return []
    # An explicit stack, bounded in depth and size: a hostile outline must not recurse forever.
    stack: list[tuple[Iterator, int]] = [(iter(outline), 1)]
    while stack and len(entries) < MAX_OUTLINE_ENTRIES:
        items, level = stack[-1]
        item = next(items, None)
        if item is None:
            stack.pop()
            continue
        if isinstance(item, list):
            if level < MAX_OUTLINE_DEPTH:
                stack.append((iter(item), level + 1))
            continue
        try:
            page = reader.get_destination_page_number(item)
            title = str(item.title or "")
        except Exception:
            continue
        if page is not None and page >= 0 and title.strip():
            entries.append(OutlineEntry(title=title, level=level, page=page))
    return entries


def _short(exc: BaseException) -> str:
    message = str(exc).strip() or type(exc).__name__
    return message if len(message) <= 200 else message[:197] + "..."


# --- structured formats: HTML, Markdown (rendered to HTML), DOCX -------------------------------


class _BlockBuilder:
    """Accumulates headings and paragraphs into one page text with block offsets."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.blocks: list[Block] = []
        self.length = 0

    def add(self, kind: str, text: str, level: int = 0, *, navigation: bool = False) -> None:
        text = " ".join(text.split())
        if not text:
            return
        if self.parts:
            self.parts.append("\n\n")
            self.length += 2
        end = self.length + len(text)
        self.blocks.append(Block(kind, self.length, end, level, navigation=navigation))  # type: ignore[arg-type]
        self.parts.append(text)
        self.length += len(text)

    def page(self) -> Page:
        return Page(number=None, text="".join(self.parts), blocks=tuple(self.blocks))

    def document(self, media_type: str, title: str) -> ParsedDocument:
        markup = any(block.kind == "heading" for block in self.blocks)
        return ParsedDocument(
            media_type=media_type,
            pages=(self.page(),),
            title=title,
            headings_from="markup" if markup else "",
        )


_HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
_BLOCK_TAGS = {
    "p", "div", "section", "article", "main", "aside", "header", "footer", "nav", "li", "ul",
    "ol", "pre", "blockquote", "table", "tr", "td", "th", "dt", "dd", "dl", "figcaption",
    "caption", "address", "form", "fieldset", "details", "summary", "hr", "body",
}  # fmt: skip
_DROPPED_TAGS = ["script", "style", "noscript", "template", "svg", "iframe", "object", "head"]


def _parse_html(
    html: str, media_type: str = HTML, *, limits: ParseLimits = DEFAULT_LIMITS
) -> ParsedDocument:
    from bs4 import BeautifulSoup, Comment, NavigableString

    _check_markup_shape(html, media_type, limits)
    soup = BeautifulSoup(html, "lxml")
    title = soup.title.get_text(" ", strip=True) if soup.title else ""
    for tag in soup(_DROPPED_TAGS):
        tag.decompose()
    builder = _BlockBuilder()
    inline: list[str] = []
    navigation = 0  # depth of <nav> (or table of contents) elements we are inside

    def flush() -> None:
        builder.add("paragraph", "".join(inline), navigation=navigation > 0)
        inline.clear()

    # An explicit stack instead of recursion: deeply nested markup must not hit the recursion limit.
    stack: list = [iter((soup.body or soup).children)]
    while stack:
        node = next(stack[-1], None)
        if node is None:
            left = stack.pop()
            if not isinstance(left, _InlineIter):
                flush()  # closing a block element ends its paragraph
            if isinstance(left, _NavIter):
                navigation -= 1
            continue
        if isinstance(node, Comment):
            continue
        if isinstance(node, NavigableString):
            inline.append(str(node))
            continue
        name = node.name
        if name in _HEADINGS:
            flush()
            text = node.get_text(" ", strip=True)
            builder.add("heading", text, _HEADINGS[name], navigation=navigation > 0)
        elif name == "br":
            inline.append(" ")
        elif _is_html_navigation(node):
            flush()
            navigation += 1
            stack.append(_NavIter(node.children))
        elif name in _BLOCK_TAGS:
            flush()
            stack.append(iter(node.children))
        else:
            # Inline element: walk its children without ending the paragraph.
            stack.append(_InlineIter(node.children))
    flush()
    return builder.document(media_type, title)


_TOC_NAMES = {"toc", "table-of-contents", "tableofcontents"}


def _is_html_navigation(node) -> bool:
    """<nav>, role="navigation", or a block whose id or class says it is a table of contents."""
    if node.name == "nav" or node.get("role") == "navigation":
        return True
    names = {str(node.get("id") or "").lower(), *(c.lower() for c in node.get("class") or ())}
    return node.name in _BLOCK_TAGS and bool(names & _TOC_NAMES)


class _Children:
    """An iterator over an element's children whose type says how leaving them ends."""

    def __init__(self, children) -> None:
        self._it = iter(children)

    def __iter__(self):
        return self

    def __next__(self):
        return next(self._it)


class _InlineIter(_Children):
    """Inline children: leaving them does not flush the paragraph."""


class _NavIter(_Children):
    """Children of a navigation element: leaving them ends the paragraph and the navigation."""


class _MarkupBudget:
    """lxml parser target: the elements BeautifulSoup would build from the same events, counted
    without building anything; stops at the first breach."""

    def __init__(self, media_type: str, limits: ParseLimits) -> None:
        self.what = FRIENDLY[media_type]
        self.limits = limits
        self.depth = 0
        self.elements = 0

    def start(self, tag, attrib) -> None:
        self.depth += 1
        self.elements += 1
        if self.depth > self.limits.html_max_depth:
            raise ParseError(
                f"refused: the {self.what} nests elements more than "
                f"{self.limits.html_max_depth:,} levels deep (the limit is "
                f"{self.limits.html_max_depth:,})"
            )
        if self.elements > self.limits.html_max_elements:
            raise ParseError(_too_many_elements(self.what, self.limits))

    def end(self, tag) -> None:
        self.depth -= 1

    def data(self, data) -> None:
        pass

    def close(self) -> None:
        return None


def _too_many_elements(what: str, limits: ParseLimits) -> str:
    return (
        f"refused: the {what} has more than {limits.html_max_elements:,} elements (the limit is "
        f"{limits.html_max_elements:,})"
    )


def _check_markup_shape(html: str, media_type: str, limits: ParseLimits) -> None:
    """Depth and element count, as BeautifulSoup's lxml builder will see them (libxml2 events)."""
    from lxml import etree

    parser = etree.HTMLParser(target=_MarkupBudget(media_type, limits), recover=True)
    try:
        for start in range(0, len(html), 1 << 16):
            parser.feed(html[start : start + (1 << 16)])
        parser.close()
    except etree.LxmlError:
        pass  # what lxml cannot read, BeautifulSoup reports (or reads as nothing)


def _parse_markdown(text: str, limits: ParseLimits = DEFAULT_LIMITS) -> ParsedDocument:
    from markdown_it import MarkdownIt

    # markdown-it holds all of a document at once: per-line arrays, then every token (2 MB of
    # one-line paragraphs took 1.2 GB). Any line can open an element, so the element limit bounds
    # the lines; rules placed first in the block and inline chains count every attempt to start a
    # token and stop the parse once the document must be over the limit. (Measured on real
    # Markdown: fewer block attempts than elements, about four inline attempts per element.)
    what = FRIENDLY[MARKDOWN]
    lines = text.count("\n") + 1
    if lines > _MARKDOWN_LINES_PER_ELEMENT * limits.html_max_elements:
        raise ParseError(
            f"refused: the {what} has {lines:,} lines (the limit is "
            f"{_MARKDOWN_LINES_PER_ELEMENT * limits.html_max_elements:,}, "
            f"{_MARKDOWN_LINES_PER_ELEMENT} per element of the element limit)"
        )
    budget = {"block": limits.html_max_elements, "inline": 5 * limits.html_max_elements}

    def spender(chain: str):
        def spend(*_args) -> bool:
            budget[chain] -= 1
            if budget[chain] < 0:
                raise ParseError(_too_many_elements(what, limits))
            return False  # never matches: the real rules go on

        return spend

    # html=False: raw HTML in Markdown is shown as text, never interpreted (scripts stay inert).
    md = MarkdownIt("commonmark", {"html": False}).enable("table")
    md.block.ruler.before("table", "budget", spender("block"))
    md.inline.ruler.before("text", "budget", spender("inline"))
    html = md.render(text)
    return _parse_html(f"<body>{html}</body>", media_type=MARKDOWN, limits=limits)


_MARKDOWN_LINES_PER_ELEMENT = 2


def _parse_docx(data: bytes) -> ParsedDocument:
    import docx
    from docx.table import Table

    try:
        document = docx.Document(io.BytesIO(data))
    except Exception as exc:
        raise ParseError(f"corrupt DOCX document: {_short(exc)}") from exc
    builder = _BlockBuilder()
    for item in document.iter_inner_content():
        if isinstance(item, Table):
            for row in item.rows:
                builder.add("paragraph", " | ".join(cell.text for cell in row.cells))
            continue
        style = (item.style.name if item.style is not None else "") or ""
        match = re.match(r"Heading (\d)", style)
        if style == "Title":
            builder.add("heading", item.text, 1)
        elif match:
            builder.add("heading", item.text, min(int(match.group(1)), 6))
        elif _DOCX_TOC_HEADING.fullmatch(style):
            builder.add("heading", item.text, 1, navigation=True)
        else:
            navigation = bool(_DOCX_TOC_STYLE.fullmatch(style))
            builder.add("paragraph", item.text, navigation=navigation)
    title = (document.core_properties.title or "").strip()
    return builder.document(DOCX, title)


# Word's built-in styles of a generated table of contents / table of figures and of an index.
_DOCX_TOC_STYLE = re.compile(r"(?:toc|index) \d|table of figures|table of authorities", re.I)
_DOCX_TOC_HEADING = re.compile(r"toc heading|index heading", re.I)
