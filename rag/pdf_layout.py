"""Page structure recovered from the text lines a PDF gives: furniture, navigation, headings, reflow.

pypdf returns each page as lines of text in drawing order, with no notion of header, paragraph or
heading. Software manuals then answer badly: the contents pages win retrieval, "Chapter 5:
Packages 23" sits inside passages, words are split ("Ex-" / "cel") and nothing says which section a
passage belongs to. This module turns the raw lines of every page into the cleaned page text and
its blocks, using only the text, the PDF outline and the page labels (no fonts or coordinates:
robust across producers and cheap, well under the cost of the extraction itself).

Rules, in the order they run (thresholds are module constants):

1. **Furniture** (running headers and footers). The first and last ``EDGE_LINES`` non-blank lines
   of a page are candidates, unless they look like code or a list item; a line's key is its text
   with whitespace collapsed, case folded and every number (arabic, or a roman numeral word)
   replaced by ``#``. A key is furniture when it is on at least ``FURNITURE_MIN_PAGES`` pages and
   on ``FURNITURE_SHARE`` of the pages with text, or of the pages of one parity (books alternate
   left and right headers); a numbered key also when it is on a run of ``RUN_MIN_PAGES``
   consecutive or same-parity pages (a chapter's running title changes every chapter), or when
   numbered keys sharing their first two words ("chapter #: ...") are that frequent together
   (short chapters). A bare number ("12", "iv", "Page 3 of 9") on an edge is removed when the
   document numbers its pages and the number is this page's: its page label, or at the distance
   from the physical page most bare edge numbers have. Removal goes from each edge inwards (a
   short line between two furniture lines goes too) and never takes a page's last line.
2. **Navigation pages** (contents, index, lists of figures): a page whose lines are mostly dotted
   leaders, or that carries a contents/index title with many lines ending in page numbers, or a
   roman-numbered front-matter page made of such lines; pages next to a navigation page with
   mostly page-number-ending lines continue it, and so do the pages of an outline entry titled
   "Contents", "Index"... (up to the next entry of its level) shaped like one. Navigation text
   keeps one entry per line, leaders collapsed.
3. **Headings**: from the outline when it has entries on at least two pages (each title searched
   on its destination page, tolerant of spacing, case and a missing section number; a title not
   found starts its section at the top of that page); otherwise from numbered lines ("5.3 How ...",
   "Chapter 5 Packages", "A.2 Foo") that are short, do not end like a sentence or a contents line,
   and form the longest chain of plausibly consecutive numbers (5 -> 5.1 -> 5.2 -> 6 ...), at least
   two long: a numbered list item or a line of data never forms such a chain.
4. **Reflow**: a line continues the previous one only when the previous line is long (it reached
   the right margin: at least ``WRAP_SHARE`` of the document's typical line length) and neither
   line looks like code or starts a list item; a long line ending a sentence right before a capital
   still continues unless it is clearly shorter (``SENTENCE_END_SHARE``). Joined lines get a space,
   except a word split by a hyphen: see ``_join_hyphenated``.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from .types import Block, Page

EDGE_LINES = 3  # lines at the top and at the bottom of a page that may be header or footer
FURNITURE_MIN_PAGES = 4  # below this a repeated line is never furniture (a 3-page letter keeps it)
FURNITURE_SHARE = 0.3  # of the pages with text (or of one parity) carrying the line
SANDWICH_MAX_CHARS = 60  # a line between two furniture lines is removed with them if this short
RUN_MIN_PAGES = 3  # consecutive (or same-parity) pages carrying a numbered chapter running title
WRAP_SHARE = 0.7  # a line this long (share of the typical full line) may have wrapped
SENTENCE_END_SHARE = 0.85  # ...but one ending a sentence must be longer still to continue
MIN_LINE_WIDTH = 30  # typical line length floor, for short documents of short lines
PAGE_WIDTH_MIN_LINES = 10  # lines a page needs before its own line length is trusted
MAX_HEADING_CHARS = 100
MAX_HEADING_WORDS = 14
MAX_HEADING_CANDIDATES = 3000  # these two bound the chain search on pathological documents
CHAIN_LOOKBACK = 150  # candidates looked back at for a predecessor
# Bounds that keep hostile pages (a megabyte line, a page of 100,000 lines) linear:
MAX_ENTRY_CHARS = 300  # longer lines are never contents or index entries
MAX_WORD_CHARS = 200  # the part of a line end examined for a split word
MAX_TITLE_SEARCH_LINES = 300  # lines searched for one outline title
MAX_TITLES_PER_PAGE = 100  # outline titles searched on one page (the rest start at its top)

_LIGATURES = str.maketrans(
    {"\ufb00": "ff", "\ufb01": "fi", "\ufb02": "fl", "\ufb03": "ffi", "\ufb04": "ffl",
     "\ufb05": "st", "\ufb06": "st", "\u00ad": "\u2027"}  # soft hyphen: a marker, resolved below
)  # fmt: skip
_SOFT = "\u2027"  # stands for a soft hyphen while lines are joined; never left in the text

_ROMAN = r"m{0,3}(?:cm|cd|d?c{0,3})(?:xc|xl|l?x{0,3})(?:ix|iv|v?i{0,3})"
_ROMAN_WORD = re.compile(rf"(?<![\w#])(?=[ivxlcdm])({_ROMAN})(?![\w#])")
_DIGITS = re.compile(r"\d+")
# The key of a bare page number: "12", "- 12 -", "iv", "Page 3 of 9", "3 / 9".
_BARE_NUMBER = re.compile(r"(?:page\s+)?[-–(\[]?\s*#\s*[-–)\]]?(?:\s*(?:/|of)\s*#)?")

# Page references at the end of a contents or index line: "7", "xii", "45-47", "12, 45-47, 80,".
_REFS = r"(?:\d{1,5}|[ivxlc]{1,6})(?:\s*[-–]\s*\d{1,5})?(?:\s*,\s*\d{1,5}(?:\s*[-–]\s*\d{1,5})?)*,?"
# A contents or index line with dotted leaders: "Packages . . . . 23", "Foo ......", ". . . 7".
_LEADERS = re.compile(rf"(?:[.·…_]\s*){{4,}}\s*(?:{_REFS})?\s*$", re.IGNORECASE)
_ENTRY_END = re.compile(r"[\divxlc,.·…_]$", re.IGNORECASE)
_DOT_RUN = re.compile(r"(?:\s*[.·…_]){4,}\s*|(?:\s*[.·…](?=\s)){2,}\s*|^\s*[.·…]\s+")
# After leaders are gone: a word, then page references ("colour, 12, 45-47", "Started 7"), or
# the continuation of an index entry's list of pages ("399, 408, 420,").
_REF_END = re.compile(
    rf"[^\W\d_]\S*(?:\s+[\d.]+)?[\s,]\s*{_REFS}\s*$|^\d{{1,5}}(?:\s*[-–,]\s*\d{{1,5}})*,?$"
)
_REF_LIST = re.compile(r"\d{1,5}(?:\s*[-–]\s*\d{1,5})?(?:\s*,\s*\d{1,5}(?:\s*[-–]\s*\d{1,5})?)*,?")
_NAV_TITLE = re.compile(
    r"(?:(?:table\s+of\s+)?contents?|short\s+contents|brief\s+contents"
    r"|(?:general\s+)?index(?:,\s*\w+|\s+of\s+[\w\s-]{1,50})?"
    r"|list\s+of\s+(?:figures|tables|illustrations|listings|examples|abbreviations)"
    r"|sommaire|table\s+des\s+mati[eè]res|inhalt|inhaltsverzeichnis|[íi]ndice"
    r"|contenido|contenuti|inhoud(?:sopgave)?|sisällys|spis\s+treści)\s*",
    re.IGNORECASE,
)

# Bullets, "1.", "a)", "(iv)"; U+0088 is how pypdf renders the bullet of some LaTeX fonts.
_LIST_ITEM = re.compile(
    r"\s*(?:[•●▪◦‣∙·○■□➢►✓✔\u0088*+–—-]|\(?(?:\d{1,3}|[a-zA-Z]|[ivxIVX]{1,4})[.)])\s+\S"
)
_CODE_START = ("\\", "$ ", "# ", ">>>", "//", "<", "{", "}", "%", "@")
_CODE_END = ("{", "}", "\\")
_LETTER = re.compile(r"[^\W\d_]")
_CODE_SYMBOL = re.compile(r"[{}\[\]<>=;\\/$#@_|~^*&%`]")

_NUMBERED = re.compile(
    r"(?:(?P<word>chapter|section|part|appendix)\s+(?P<wnum>\d{1,3}|[IVXLC]{1,6}|[A-Z])"
    r"(?:\s*[.:—–-])?\s+(?P<wtitle>\S.*)"
    r"|(?P<num>(?:\d{1,2}|[A-Z])(?:\.\d{1,2}){0,4})(?P<dot>\.)?\s+(?P<title>\S.*))",
    re.IGNORECASE,
)
# A section number before a title: "5.3 ", "Chapter 5: ", "A.2 ", "5.4.10Separate" (no space).
_NUMBER_PREFIX = re.compile(
    r"\s*(?:(?:(?i:chapter|section|part|appendix)\s+(?:\d{1,3}|[A-Z]|[IVXLC]{1,6})"
    r"|\d{1,3})\.?(?:\s*[:—–-])?\s+"
    r"|(?:\d{1,3}|[A-Z])(?:\.\d{1,3})+\.?(?:\s*[:—–-])?\s*)(?=[^\W\d_])"
)
_WORD = re.compile(r"[^\W\d_]+(?:-[^\W\d_]+)*")
_HYPHEN_END = re.compile(r"([^\W\d_]+)-$")
_FIRST_WORD = re.compile(r"[^\W\d_]+")


@dataclass(frozen=True, slots=True)
class OutlineEntry:
    """A bookmark: ``level`` 1 for top-level entries, ``page`` the 0-based destination page."""

    title: str
    level: int
    page: int


@dataclass(frozen=True, slots=True)
class Layout:
    pages: tuple[Page, ...]
    furniture: tuple[str, ...]  # keys of the header/footer lines removed, most frequent first
    headings_from: str  # "outline", "numbered" or "" (none found)


@dataclass(slots=True)
class _Heading:
    line: int  # index in the page's body lines; -1: not found, placed before line ``anchor``
    span: int  # how many lines the heading takes (titles may wrap once)
    level: int
    title: str
    anchor: int = 0


def layout_pages(
    texts: Sequence[str],
    *,
    numbers: Sequence[int],
    outline: Sequence[OutlineEntry] = (),
    labels: Sequence[str] = (),
) -> Layout:
    """Cleaned pages from the raw extracted text of each page (``numbers``: physical numbers)."""
    lines = [_split_lines(text) for text in texts]
    body, furniture = _strip_furniture(lines, labels)
    navigation = _navigation_pages(body, outline, labels)
    width = _typical_width(body, navigation)
    vocabulary = _Vocabulary(body)

    headings: dict[int, list[_Heading]] = {}
    headings_from = ""
    outline_pages = {entry.page for entry in outline if 0 <= entry.page < len(body)}
    if len(outline_pages) >= 2:
        headings = _outline_headings(body, outline)
        headings_from = "outline"
    else:
        headings = _numbered_headings(body, navigation)
        headings_from = "numbered" if headings else ""

    pages = []
    for index, page_lines in enumerate(body):
        page_headings = headings.get(index, [])
        if index in navigation:
            page = _navigation_page(numbers[index], page_lines, page_headings)
        else:
            page_width = _page_width(page_lines, width)
            page = _content_page(numbers[index], page_lines, page_headings, page_width, vocabulary)
        pages.append(page)
    return Layout(pages=tuple(pages), furniture=furniture, headings_from=headings_from)


def _split_lines(text: str) -> list[str]:
    """Lines without trailing blanks; ligatures spelled out (search needs "fi", not "\ufb01"); a
    soft hyphen kept only at a line end, where it marks a split word."""
    lines = []
    for line in text.translate(_LIGATURES).split("\n"):
        line = line.rstrip()
        if _SOFT in line[:-1]:
            line = line[:-1].replace(_SOFT, "") + line[-1]
        lines.append(line)
    return lines


# ---------------------------------------------------------------------------------------------
# Furniture: running headers and footers
# ---------------------------------------------------------------------------------------------


def furniture_key(line: str) -> str:
    """A header line with its page number and whitespace normalised away."""
    key = " ".join(line.split()).casefold()
    return _ROMAN_WORD.sub("#", _DIGITS.sub("#", key))


def _edge_lines(page: list[str]) -> list[tuple[int, int]]:
    """(line index, distance from the nearer edge) of the header and footer candidates."""
    filled = [i for i, line in enumerate(page) if line.strip()]
    if len(filled) < 2:  # a page of one line is all body: nothing to be a header *of*
        return []
    ranks: dict[int, int] = {}
    for rank in range(min(EDGE_LINES, len(filled))):
        for i in (filled[rank], filled[-1 - rank]):
            ranks[i] = min(ranks.get(i, rank), rank)
    return sorted(ranks.items())


def _longest_run(pages: list[int], step: int) -> int:
    present = set(pages)
    best = 0
    for page in pages:
        if page - step in present:
            continue
        length = 1
        while page + step * length in present:
            length += 1
        best = max(best, length)
    return best


def _can_be_furniture(line: str) -> bool:
    """Headers are words and numbers: a bullet item or a line of code that recurs is content."""
    if _BARE_NUMBER.fullmatch(furniture_key(line)):
        return True
    return not _LIST_ITEM.match(line) and not _is_code(line)


def _strip_furniture(
    lines: list[list[str]], labels: Sequence[str] = ()
) -> tuple[list[list[str]], tuple[str, ...]]:
    seen: dict[str, set[int]] = defaultdict(set)
    outer: dict[str, set[int]] = defaultdict(set)  # pages where the key is outermost or next
    with_text = [0, 0]  # pages with at least two lines, by parity of the page index
    for index, page in enumerate(lines):
        edges = _edge_lines(page)
        if edges:
            with_text[index % 2] += 1
        for i, rank in edges:
            if _can_be_furniture(page[i]):
                key = furniture_key(page[i])
                seen[key].add(index)
                if rank <= 1:
                    outer[key].add(index)
    total = sum(with_text)

    def frequent(count: int, pages: int) -> bool:
        return count >= max(FURNITURE_MIN_PAGES, math.ceil(FURNITURE_SHARE * pages))

    def frequent_pages(pages: set[int]) -> bool:
        by_parity = [sum(1 for p in pages if p % 2 == parity) for parity in (0, 1)]
        return frequent(len(pages), total) or any(
            frequent(by_parity[p], with_text[p]) for p in (0, 1)
        )

    furniture: set[str] = set()

    for key, pages in seen.items():
        if len(pages) < FURNITURE_MIN_PAGES or not re.search(r"[^\W\d_#]", key):
            continue
        if frequent_pages(pages):
            furniture.add(key)
        elif "#" in key:  # a numbered running title that changes with each chapter
            runs = sorted(outer[key])
            if max(_longest_run(runs, 1), _longest_run(runs, 2)) >= RUN_MIN_PAGES:
                furniture.add(key)
    # Running titles of short chapters ("Chapter 6: Contour Plots 25" on two pages) are frequent
    # as a family: numbered keys sharing their first two words, each on two outer lines or more.
    families: dict[str, set[str]] = defaultdict(set)
    for key, pages in outer.items():
        if "#" in key and len(pages) >= 2 and len(key.split()) >= 3:
            families[" ".join(key.split()[:2])].add(key)
    for members in families.values():
        if len(members) >= 2 and frequent_pages(set().union(*(outer[k] for k in members))):
            furniture |= members

    bare = {key for key in seen if _BARE_NUMBER.fullmatch(key)}
    numbering = _Numbering(lines, labels)
    bare_pages = {
        index
        for index, page in enumerate(lines)
        for i, _ in _edge_lines(page)
        if furniture_key(page[i]) in bare and numbering.is_page_number(page[i], index)
    }
    if any("#" in key for key in furniture) or frequent(len(bare_pages), total):
        furniture |= bare
    else:
        bare = set()

    removed: Counter[str] = Counter()
    body = []
    for index, page in enumerate(lines):
        if furniture:
            page = _remove_edges(page, furniture, bare, numbering, index, removed)
        body.append(page)
    return body, tuple(key for key, _ in removed.most_common())


class _Numbering:
    """Tells a printed page number from a number that merely stands alone on an edge line (a
    numbered code line, a total). A bare number is the page's number when it is its page label,
    or when its distance to the physical page is the one most bare edge numbers have (documents
    without labels whose numbering starts after the front matter)."""

    def __init__(self, lines: list[list[str]], labels: Sequence[str]) -> None:
        self.labels = [str(label).strip().casefold() for label in labels]
        offsets: Counter[tuple[bool, int]] = Counter()  # (roman?, page index - value)
        for index, page in enumerate(lines):
            for i, _ in _edge_lines(page):
                value = self._value(page[i])
                if value is not None:
                    offsets[value[0], index - value[1]] += 1
        # Front matter numbered i, ii, iii and the body 1, 2, 3 each have their own offset.
        self.offsets = {key for key, count in offsets.items() if count >= FURNITURE_MIN_PAGES}

    @staticmethod
    def _value(line: str) -> tuple[bool, int] | None:
        if not _BARE_NUMBER.fullmatch(furniture_key(line)):
            return None
        number = _DIGITS.search(line)
        if number:
            return False, int(number.group())
        roman = _ROMAN_WORD.search(line.casefold())
        return (True, _roman_value(roman.group())) if roman else None

    def is_page_number(self, line: str, index: int) -> bool:
        token = re.search(r"\d+|[ivxlcdm]+", line, re.IGNORECASE)
        if token and index < len(self.labels) and token.group().casefold() == self.labels[index]:
            return True
        value = self._value(line)
        return value is not None and (value[0], index - value[1]) in self.offsets


def _remove_edges(
    page: list[str],
    furniture: set[str],
    bare: set[str],
    numbering: _Numbering,
    index: int,
    removed: Counter[str],
) -> list[str]:
    """Drop furniture from each edge inwards. A short line between two furniture lines goes too:
    the middle of a footer "User Guide / Table of contents / Page 2" need not be frequent."""
    filled = [i for i, line in enumerate(page) if line.strip()]
    drop: list[int] = []
    for order in (filled, filled[::-1]):
        zone = [i for i in order[:EDGE_LINES] if i not in drop]
        cut = 0
        for n, i in enumerate(zone):
            key = furniture_key(page[i])
            if key in furniture and (key not in bare or numbering.is_page_number(page[i], index)):
                cut = n + 1
            elif n == 0 or len(page[i].strip()) > SANDWICH_MAX_CHARS:
                break
        for i in zone[:cut]:
            if len(drop) + 1 >= len(filled):  # never the last line of a page
                break
            drop.append(i)
            removed[furniture_key(page[i])] += 1
    if not drop:
        return page
    dropped = set(drop)
    return [line for i, line in enumerate(page) if i not in dropped]


# ---------------------------------------------------------------------------------------------
# Navigation pages: contents, index, lists of figures
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _NavShape:
    lines: int
    leaders: int
    refs: int
    titled: bool

    @property
    def strong(self) -> bool:
        if self.lines < 3:
            return False
        if self.leaders >= 3 and self.leaders >= 0.25 * self.lines:
            return True
        return self.titled and self.leaders + self.refs >= max(3, 0.3 * self.lines)

    @property
    def weak(self) -> bool:
        """Shaped like the continuation of a contents or index page."""
        return self.lines >= 3 and self.leaders + self.refs >= 0.5 * self.lines


def _collapse_leaders(line: str) -> str:
    return _DOT_RUN.sub(" ", " ".join(line.split())).strip()


def _nav_shape(page: list[str]) -> _NavShape:
    filled = [line.strip() for line in page if line.strip()]
    leaders = refs = 0
    for line in filled:
        # Cheap tests first: most lines end otherwise, and entries are short (the patterns
        # would be slow on a megabyte line).
        if len(line) > MAX_ENTRY_CHARS or not _ENTRY_END.search(line):
            continue
        if _LEADERS.search(line):
            leaders += 1
        elif _REF_END.search(_collapse_leaders(line)):
            refs += 1
    titled = any(_NAV_TITLE.fullmatch(line) for line in filled[:3])
    return _NavShape(len(filled), leaders, refs, titled)


def _navigation_pages(
    body: list[list[str]], outline: Sequence[OutlineEntry], labels: Sequence[str]
) -> set[int]:
    shapes = [_nav_shape(page) for page in body]
    navigation = {i for i, shape in enumerate(shapes) if shape.strong}
    for i, shape in enumerate(shapes):  # front matter (roman page labels) made of entries
        roman = i < len(labels) and re.fullmatch(r"[ivxlcdm]+", labels[i] or "", re.IGNORECASE)
        if roman and shape.lines >= 3 and shape.leaders + shape.refs >= 0.3 * shape.lines:
            navigation.add(i)
    for position, entry in enumerate(outline):
        if not _NAV_TITLE.fullmatch(entry.title.strip()) or not 0 <= entry.page < len(body):
            continue
        end = len(body)
        for later in outline[position + 1 :]:
            if later.level <= entry.level and later.page > entry.page:
                end = later.page
                break
        # The outline names the pages; their shape must agree (a chapter titled "Index of
        # tables" in a database manual is prose).
        navigation.update(i for i in range(entry.page, end) if shapes[i].weak)
        if shapes[entry.page].titled:  # an index that is empty but for its title
            navigation.add(entry.page)
    # A contents or index runs over several pages: extend through neighbours of the same shape,
    # stepping over blank pages.
    changed = True
    while changed:
        changed = False
        for i in sorted(navigation):
            for step in (-1, 1):
                j = i + step
                while 0 <= j < len(body) and shapes[j].lines == 0:
                    j += step
                if 0 <= j < len(body) and j not in navigation and shapes[j].weak:
                    navigation.add(j)
                    changed = True
    return navigation


def _navigation_page(number: int, page: list[str], headings: list[_Heading]) -> Page:
    """One entry per line, leaders collapsed; a line of bare leaders joins the entry above."""
    at_line = {h.line: h for h in headings if h.line >= 0}
    builder = _PageBuilder()
    for heading in headings:
        if heading.line < 0:
            builder.heading(heading.level, heading.title, placed=False, navigation=True)
    entries: list[str] = []

    def flush() -> None:
        for entry in entries:
            builder.block(entry, navigation=True, separator="\n")
        entries.clear()

    i = 0
    while i < len(page):
        heading = at_line.get(i)
        if heading is not None:  # the page's own title ("Contents"), found from the outline
            flush()
            text = " ".join(" ".join(page[i : i + heading.span]).split())
            builder.heading(heading.level, heading.title, text=text, navigation=True)
            i += heading.span
            continue
        raw = page[i]
        i += 1
        line = _collapse_leaders(raw) if len(raw) <= MAX_ENTRY_CHARS else " ".join(raw.split())
        if not line:
            continue
        if entries and (raw.strip()[:1] in ".·…_" or _REF_LIST.fullmatch(line)):
            entries[-1] = f"{entries[-1]} {line}"  # "1.1 About\n. . . . 6" -> "1.1 About 6"
        else:
            entries.append(line)
    flush()
    return builder.page(number, navigation=True)


# ---------------------------------------------------------------------------------------------
# Headings
# ---------------------------------------------------------------------------------------------


def _norm(text: str) -> str:
    return re.sub(r"[\W_]+", "", text.casefold())


def _strip_number(text: str) -> str:
    match = _NUMBER_PREFIX.match(text)
    return text[match.end() :] if match else text


def _outline_headings(
    body: list[list[str]], outline: Sequence[OutlineEntry]
) -> dict[int, list[_Heading]]:
    by_page: dict[int, list[OutlineEntry]] = defaultdict(list)
    for entry in outline:
        if 0 <= entry.page < len(body) and entry.title.strip():
            by_page[entry.page].append(entry)
    found: dict[int, list[_Heading]] = {}
    for index, entries in by_page.items():
        page = body[index]
        norms = [_norm(line) for line in page]
        bare = [_norm(_strip_number(line)) for line in page]
        cursor = 0
        headings = []
        for entry in entries:
            title = " ".join(entry.title.split())
            level = min(entry.level, 6)
            searched = len(headings) < MAX_TITLES_PER_PAGE
            match = _find_title(page, norms, bare, title, cursor) if searched else None
            if match is None:
                headings.append(_Heading(-1, 0, level, title, anchor=cursor))
                continue
            line, span = match
            text = " ".join(" ".join(page[line : line + span]).split())
            prefix = _NUMBER_PREFIX.match(text)
            if prefix and not _NUMBER_PREFIX.match(title):
                title = f"{text[: prefix.end()].strip()} {title}"  # "License" -> "1 License"
            headings.append(_Heading(line, span, level, title))
            cursor = line + span
        found[index] = headings
    return found


def _find_title(
    page: list[str], norms: list[str], bare: list[str], title: str, cursor: int
) -> tuple[int, int] | None:
    target, target_bare = _norm(title), _norm(_strip_number(title))
    if not target:
        return None
    limit = 2 * len(title) + 30
    for i in range(cursor, min(len(page), cursor + MAX_TITLE_SEARCH_LINES)):
        if not norms[i] or len(page[i].strip()) > limit:
            continue
        if norms[i] == target or (target_bare and bare[i] == target_bare):
            return i, 1
        wraps = re.search(r"[^\W\d_]", page[i]) and norms[i + 1 : i + 2] != [""]
        if wraps and i + 1 < len(page) and target.endswith(norms[i + 1]):
            joined = page[i] + " " + page[i + 1]
            if _norm(joined) == target or _norm(_strip_number(joined)) == target_bare:
                return i, 2
    return None


def _heading_number(line: str) -> tuple[tuple[int, ...], str] | None:
    """(number parts, title) of a plausible numbered heading line, else None."""
    text = " ".join(line.split())
    if len(text) > MAX_HEADING_CHARS or len(text.split()) > MAX_HEADING_WORDS:
        return None
    match = _NUMBERED.fullmatch(text)
    if match is None or _LEADERS.search(text):
        return None
    if match.group("word"):
        title = match.group("wtitle")
        raw = match.group("wnum")
        if raw.isdigit():
            parts: tuple[int, ...] = (int(raw),)
        elif re.fullmatch(r"[IVXLC]{2,}|[IVX]", raw, re.IGNORECASE):
            parts = (_roman_value(raw),)
        else:  # "Appendix A": after every numbered chapter
            parts = (100 + ord(raw.upper()) - ord("A"),)
    else:
        raw = match.group("num")
        title = match.group("title")
        pieces = raw.split(".")
        if pieces[0].isalpha():
            if len(pieces) == 1 or not pieces[0].isupper():
                return None  # "A Foo" is a sentence, not appendix A
            head = 100 + ord(pieces[0]) - ord("A")
        else:
            if len(pieces) == 1 and match.group("dot"):
                return None  # "1. Open the lid": a numbered list item
            head = int(pieces[0])
        parts = (head, *(int(p) for p in pieces[1:]))
    if not title[:1].isupper() or title.endswith((".", ",", ";", ":")):
        return None
    if title[-1].isdigit() or sum(c.isdigit() for c in title) > 0.3 * len(title):
        return None  # a contents line ("Packages 23") or data ("Run 2 3 4")
    if 0 in parts or parts[0] > 60 and parts[0] < 100:
        return None
    return parts, text


def _roman_value(raw: str) -> int:
    values = {"i": 1, "v": 5, "x": 10, "l": 50, "c": 100, "d": 500, "m": 1000}
    total = 0
    digits = [values[c] for c in raw.lower()]
    for i, value in enumerate(digits):
        total += -value if i + 1 < len(digits) and digits[i + 1] > value else value
    return total


def _follows(previous: tuple[int, ...], current: tuple[int, ...]) -> bool:
    """Could ``current`` be the next heading after ``previous``? One missed heading is allowed."""
    if current[: len(previous)] == previous and len(current) == len(previous) + 1:
        return current[-1] in (1, 2)  # 5.3 -> 5.3.1
    for depth in range(min(len(previous), len(current))):
        if current[:depth] != previous[:depth]:
            return False
        if current[depth] != previous[depth]:
            step = current[depth] - previous[depth]
            appendix = depth == 0 and current[0] == 100 and previous[0] < 100
            if not (1 <= step <= 2 or appendix):
                return False
            return all(part in (1, 2) for part in current[depth + 1 :])
    return False


def _numbered_headings(body: list[list[str]], navigation: set[int]) -> dict[int, list[_Heading]]:
    candidates: list[tuple[int, int, tuple[int, ...], str]] = []
    for index, page in enumerate(body):
        if index in navigation:
            continue
        for i, line in enumerate(page):
            parsed = _heading_number(line) if line.strip() else None
            if parsed is not None:
                candidates.append((index, i, *parsed))
    candidates = candidates[:MAX_HEADING_CANDIDATES]
    # Longest chain of plausibly consecutive numbers (a longest-path search over the candidates).
    best = [1] * len(candidates)
    previous = [-1] * len(candidates)
    for j in range(len(candidates)):
        for i in range(max(0, j - CHAIN_LOOKBACK), j):
            if best[i] + 1 > best[j] and _follows(candidates[i][2], candidates[j][2]):
                best[j], previous[j] = best[i] + 1, i
    if not candidates or max(best) < 2:
        return {}
    chain = []
    j = best.index(max(best))
    while j >= 0:
        chain.append(candidates[j])
        j = previous[j]
    found: dict[int, list[_Heading]] = defaultdict(list)
    for index, line, parts, text in reversed(chain):
        found[index].append(_Heading(line, 1, min(len(parts), 6), text))
    return dict(found)


# ---------------------------------------------------------------------------------------------
# Reflow: lines -> paragraphs, list items and code lines
# ---------------------------------------------------------------------------------------------


def _typical_width(body: list[list[str]], navigation: set[int]) -> float:
    """The length of a full line of text: the 90th percentile of the lines of content pages."""
    lengths = sorted(
        len(line.strip())
        for index, page in enumerate(body)
        if index not in navigation
        for line in page
        if len(line.strip()) >= 8
    )
    if not lengths:
        return MIN_LINE_WIDTH
    return max(MIN_LINE_WIDTH, lengths[int(0.9 * (len(lengths) - 1))])


def _page_width(page: list[str], width: float) -> float:
    """A page set in other columns (a two-column licence, a wide table) has its own full line:
    used when most of its lines are near that length, as running text is; a page of code or
    data, whose lines vary, keeps the document's."""
    lengths = sorted(len(line.strip()) for line in page if len(line.strip()) >= 8)
    if len(lengths) < PAGE_WIDTH_MIN_LINES:
        return width
    own = lengths[int(0.9 * (len(lengths) - 1))]
    near = sum(1 for length in lengths if length >= 0.8 * own)
    return max(MIN_LINE_WIDTH, own) if near >= 0.6 * len(lengths) else width


@lru_cache(maxsize=4096)
def _is_code(line: str) -> bool:
    """Indented, starting or ending like code, or dense in symbols prose rarely uses."""
    stripped = line.strip()
    if line.startswith(("  ", "\t")) or stripped.startswith(_CODE_START):
        return True
    if stripped.endswith(_CODE_END) or not _LETTER.search(stripped):
        return True  # ...or a line of numbers and symbols: data
    visible = len(stripped) - stripped.count(" ")
    return visible >= 4 and len(_CODE_SYMBOL.findall(stripped)) >= 0.15 * visible


class _Vocabulary:
    """Word counts of the whole document, for deciding what a line-end hyphen was."""

    def __init__(self, body: list[list[str]]) -> None:
        self.words: Counter[str] = Counter()
        self.compounds: Counter[str] = Counter()
        for page in body:
            split_before = False
            for line in page:
                tokens = _WORD.findall(line.casefold())
                split_after = line.endswith("-") and bool(
                    _HYPHEN_END.search(line[-MAX_WORD_CHARS:])
                )
                if split_after and tokens:
                    tokens.pop()  # the first half of a split word is not a word
                if split_before and tokens and line[:1].isalpha():
                    tokens.pop(0)  # nor is the second half
                for token in tokens:
                    if "-" in token:
                        self.compounds[token] += 1
                        self.words.update(token.split("-"))
                    else:
                        self.words[token] += 1
                split_before = split_after

    def keeps_hyphen(self, first: str, second: str) -> bool:
        """``first-`` at a line end, ``second`` starting the next: a compound or a split word?

        The document decides: whichever of "first-second" and "firstsecond" it uses elsewhere
        more often wins; if it uses neither, the hyphen stays only when both halves are words the
        document uses on their own (three letters or more, twice or more: "well-known",
        "read-only"), since an invented word ("Ex-cel" -> "Excel" is fine; "ex" and "cel" are not
        both words) is the usual result of a hyphenation split.
        """
        a, b = first.casefold(), second.casefold()
        compound, joined = self.compounds[f"{a}-{b}"], self.words[a + b]
        if compound or joined:
            return compound > joined
        return len(a) >= 3 and len(b) >= 3 and self.words[a] >= 2 and self.words[b] >= 2


def _join_hyphenated(previous: str, line: str, vocabulary: _Vocabulary) -> str | None:
    """The joined text if ``previous`` ends with a word split at a hyphen, else None.

    A hyphen stays (without a space) in a URL or path, before a capital or a digit ("non-English",
    "Windows-1252"), and for compounds (see ``_Vocabulary.keeps_hyphen``); otherwise it goes.
    """
    if previous.endswith(_SOFT):
        return previous[:-1] + line.lstrip()
    if not previous.endswith("-") or previous.endswith("--"):
        return None
    tail = previous[-MAX_WORD_CHARS:]  # bounded: a line may be a megabyte without a space
    match = _HYPHEN_END.search(tail)
    if match is None:
        return None
    rest = line.lstrip()
    first_word = _FIRST_WORD.match(rest[:MAX_WORD_CHARS])
    last_token = tail.rsplit(None, 1)[-1]
    keep = (
        first_word is None
        or not rest[:1].islower()
        or any(mark in last_token for mark in ("/", "\\", "@", "_", "://", "."))
        or vocabulary.keeps_hyphen(match.group(1), first_word.group(0))
    )
    return previous + rest if keep else previous[:-1] + rest


def _content_page(
    number: int,
    page: list[str],
    headings: list[_Heading],
    width: float,
    vocabulary: _Vocabulary,
) -> Page:
    at_line = {h.line: h for h in headings if h.line >= 0}
    unplaced: dict[int, list[_Heading]] = defaultdict(list)
    for heading in headings:
        if heading.line < 0:
            unplaced[heading.anchor].append(heading)
    builder = _PageBuilder()
    paragraph: list[str] = []  # the physical lines of the logical line being built
    previous = ""  # the last physical line of it, as extracted
    gap = False  # a blank line or a heading since the last block

    def flush() -> None:
        nonlocal paragraph, previous, gap
        if paragraph:
            builder.block(" ".join(paragraph), separator="\n\n" if gap else "\n")
            gap = False
        paragraph, previous = [], ""

    i = 0
    while i <= len(page):
        for heading in unplaced.get(i, ()):
            flush()
            builder.heading(heading.level, heading.title, placed=False)
            gap = True
        if i == len(page):
            break
        heading = at_line.get(i)
        if heading is not None:
            flush()
            text = " ".join(" ".join(page[i : i + heading.span]).split())
            builder.heading(heading.level, heading.title, text=text)
            gap = True
            i += heading.span
            continue
        line = page[i]
        i += 1
        if not line.strip():
            flush()
            gap = True
            continue
        code = _is_code(line)
        text = line.rstrip() if code else " ".join(line.split())
        if paragraph and _continues(previous, line, width):
            joined = _join_hyphenated(paragraph[-1], text, vocabulary)
            if joined is None:
                paragraph.append(text)
            else:
                paragraph[-1] = joined
            previous = line
            continue
        flush()
        paragraph, previous = [text], line
        if code:
            flush()  # a code line is a line of its own, whatever follows
    flush()
    return builder.page(number)


def _continues(previous: str, line: str, width: float) -> bool:
    """Does ``line`` continue the paragraph whose last physical line is ``previous``?"""
    if _is_code(previous) or _is_code(line) or _LIST_ITEM.match(line):
        return False
    prev = previous.strip()
    if (prev.endswith("-") or prev.endswith(_SOFT)) and line.strip()[:1].isalpha():
        return len(prev) >= 0.5 * width  # a split word, if the line was anywhere near full
    if len(prev) < WRAP_SHARE * width:
        return False  # the line stopped short of the margin: the paragraph (or item) ended
    ends_sentence = prev.endswith((".", "!", "?", ":")) and line.strip()[:1].isupper()
    return not (ends_sentence and len(prev) < SENTENCE_END_SHARE * width)


class _PageBuilder:
    """Builds one page's cleaned text and its blocks, with exact offsets."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.blocks: list[Block] = []
        self.length = 0

    def _add(self, text: str, separator: str) -> tuple[int, int]:
        if self.parts:
            self.parts.append(separator)
            self.length += len(separator)
        start = self.length
        self.parts.append(text)
        self.length += len(text)
        return start, self.length

    def block(self, text: str, *, navigation: bool = False, separator: str = "\n") -> None:
        text = text.replace(_SOFT, "").rstrip()
        if not text.strip():
            return
        start, end = self._add(text, separator)
        start += len(text) - len(text.lstrip())  # a code line keeps its indent, outside the block
        self.blocks.append(Block("paragraph", start, end, navigation=navigation))

    def heading(
        self,
        level: int,
        title: str,
        *,
        text: str = "",
        placed: bool = True,
        navigation: bool = False,
    ) -> None:
        if placed and text:
            start, end = self._add(text, "\n\n")
        else:  # not found on the page: an empty heading where its section starts
            start = end = self.length
        self.blocks.append(Block("heading", start, end, level, title=title, navigation=navigation))

    def page(self, number: int, *, navigation: bool = False) -> Page:
        return Page(
            number=number,
            text="".join(self.parts),
            blocks=tuple(self.blocks),
            navigation=navigation,
        )
