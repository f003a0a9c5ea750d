"""PDF structure at parse time: running headers and footers, navigation pages, section paths from
the outline or from numbered headings, hyphenation and reflow; always with exact page offsets."""

from __future__ import annotations

import random
import textwrap

import pytest

from rag.chunking import Chunker, chunk_id_for
from rag.parsing import parse
from rag.pdf_layout import furniture_key, layout_pages
from rag.types import Chunk, ParsedDocument
from tests.docs import make_book_pdf, make_docx, make_pdf

WORDS = (
    "widget sensor cable firmware panel battery schedule report backup network device "
    "display storage module gateway channel signal update button profile meter"
).split()


def prose(seed: int, sentences: int = 6) -> str:
    rng = random.Random(seed)
    return " ".join(
        " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 16))).capitalize() + "."
        for _ in range(sentences)
    )


def wrapped(text: str) -> str:
    """A paragraph as a PDF prints it: lines cut at the right margin (~88 characters)."""
    return "\n".join(textwrap.wrap(text, 88))


def chunks_of(document: ParsedDocument, target: int = 128) -> list[Chunk]:
    chunker = Chunker(target_tokens=target)
    chunks = chunker.split(document, doc_id="d", doc_sha256="sha")
    for index, chunk in enumerate(chunks):  # the invariants citations rely on
        (page,) = [p for p in document.pages if p.number == chunk.page]
        assert page.text[chunk.start : chunk.end] == chunk.text
        assert chunk.text and chunk.text == chunk.text.strip()
        assert chunk.id == chunk_id_for("sha", index)
        for block in page.blocks:
            if block.kind == "heading":
                assert block.end <= chunk.start or block.start >= chunk.end, (block, chunk)
    return chunks


# A small manual: title page, contents with dotted leaders, four chapters, an index.
CONTENTS = "\n".join(
    [
        "Contents",
        "1 Introduction .................................................. 3",
        "1.1 Scope ....................................................... 3",
        "2 Installation .................................................. 5",
        "2.1 Requirements ................................................ 5",
        "2.2 Steps ....................................................... 6",
        "3 Configuration ................................................. 7",
        "3.1 Network settings ............................................ 7",
        "4 Troubleshooting ............................................... 9",
    ]
)
INDEX = "\n".join(
    [
        "Index",
        "backup, 4, 8",
        "battery, 3",
        "cable, 5-6",
        "firmware, 7, 9",
        "gateway, 7",
        "network settings, 7-8",
        "requirements, 5",
        "troubleshooting, 9-10",
    ]
)
MANUAL = [
    "Widget Manual\nVersion 2.1\nAcme Devices",
    CONTENTS,
    "1 Introduction\n" + wrapped(prose(1)) + "\n1.1 Scope\n" + wrapped("SCOPEMARK " + prose(2)),
    wrapped("CARRYMARK " + prose(3)) + "\n" + wrapped(prose(4)),
    "2 Installation\n" + wrapped(prose(5)) + "\n2.1 Requirements\nThe installer needs:\n"
    "• Python 3.11 or newer\n• two gigabytes of free disk space\n" + wrapped(prose(6)),
    "2.2 Steps\n1. Download the archive\n2. Run the installer\n"
    "    widget install --prefix /opt/widget\n    widget check --verbose\n" + wrapped(prose(7)),
    "3 Configuration\n" + wrapped(prose(8)) + "\n3.1 Network settings\n" + wrapped(prose(9)),
    wrapped("NETMARK " + prose(10)),
    "4 Troubleshooting\n" + wrapped(prose(11)),
    wrapped(prose(12)),
    INDEX,
]
OUTLINE = [
    (1, "Contents", 2),
    (1, "1 Introduction", 3),
    (2, "1.1 Scope", 3),
    (1, "2 Installation", 5),
    (2, "2.1 Requirements", 5),
    (2, "2.2 Steps", 6),
    (1, "3 Configuration", 7),
    (2, "3.1 Network settings", 7),
    (1, "4 Troubleshooting", 9),
    (1, "Index", 11),
]


@pytest.fixture(scope="module")
def manual() -> ParsedDocument:
    data = make_book_pdf(
        MANUAL, header="Widget Manual - User Guide", footer="Page {n} of 11", outline=OUTLINE
    )
    return parse(data, "manual.pdf")


@pytest.fixture(scope="module")
def manual_without_outline() -> ParsedDocument:
    data = make_book_pdf(MANUAL, header="Widget Manual - User Guide", footer="Page {n} of 11")
    return parse(data, "manual.pdf")


def path_of(chunks: list[Chunk], marker: str) -> tuple[str, ...]:
    (chunk,) = [c for c in chunks if marker in c.text]
    return chunk.heading_path


# ---------------------------------------------------------------------------------------------
# Running headers and footers
# ---------------------------------------------------------------------------------------------


class TestFurniture:
    def test_header_and_page_numbers_are_removed_from_every_page_and_chunk(self, manual):
        assert "widget manual - user guide" in manual.furniture
        assert "page # of #" in manual.furniture
        for page in manual.pages:
            assert "User Guide" not in page.text
            assert "of 11" not in page.text
        for chunk in chunks_of(manual):
            assert "User Guide" not in chunk.text and "Page " not in chunk.text
        # The body stays whole: the title page keeps its first line, chapters their text.
        assert manual.pages[0].text.startswith("Widget Manual\nVersion 2.1")
        assert "SCOPEMARK" in manual.pages[2].text

    def test_short_documents_keep_a_repeated_first_line(self):
        for count in (2, 3):
            pages = [f"Acme Corp Memo\nItem {n}: the budget for site {n} is approved." for n in
                     range(1, count + 1)]  # fmt: skip
            document = parse(make_pdf(pages), "memo.pdf")
            assert document.furniture == ()
            assert all(page.text.startswith("Acme Corp Memo") for page in document.pages)

    def test_the_same_lines_on_four_pages_are_furniture(self):
        pages = [f"Acme Corp Memo\nItem {n}: the budget for site {n} is approved." for n in
                 range(1, 5)]  # fmt: skip
        document = parse(make_pdf(pages), "memo.pdf")
        assert document.furniture == ("acme corp memo",)
        assert [p.text for p in document.pages][0] == "Item 1: the budget for site 1 is approved."

    def test_alternating_book_headers_and_chapter_running_titles(self):
        # Even pages carry the book title, odd pages the running title of a two-page chapter:
        # each chapter title is on too few pages to be frequent by itself.
        chapters = ["Getting started", "Sensors", "Cables", "Firmware", "Storage", "Backups"]
        pages = []
        for c, name in enumerate(chapters, start=1):
            pages += [f"{c} {name}\n" + wrapped(prose(c))]
            pages += [wrapped(prose(c * 10 + n)) for n in range(3)]
        headers = {}
        for index in range(len(pages)):
            number = index + 1
            chapter = chapters[index // 4]
            headers[index] = (
                f"{number} Widget Manual"
                if number % 2 == 0
                else f"Chapter {index // 4 + 1}: {chapter} {number}"
            )
        data = make_pdf([f"{headers[i]}\n{text}" for i, text in enumerate(pages)])
        document = parse(data, "book.pdf")
        for index, page in enumerate(document.pages):
            assert headers[index] not in page.text, index
            assert "Widget Manual" not in page.text and "Chapter " not in page.text
        assert "# widget manual" in document.furniture

    def test_bare_page_numbers_arabic_and_roman(self):
        front = ["Preface\n" + wrapped(prose(n)) + "\n" + roman for n, roman in
                 enumerate(["i", "ii", "iii", "iv"])]  # fmt: skip
        body = [wrapped(prose(n + 10)) + f"\n{n}" for n in range(1, 7)]
        document = parse(make_pdf(front + body), "numbers.pdf")
        for page in document.pages:
            last = page.text.splitlines()[-1]
            assert not last.strip().isdigit() and last.strip() not in ("i", "ii", "iii", "iv")

    def test_bare_arabic_page_numbers_starting_after_the_front_matter(self):
        front = [wrapped(prose(1)), wrapped(prose(2))]  # unnumbered
        body = [f"{n}\n" + wrapped(f"PAGEMARK{n} " + prose(n + 2)) for n in range(1, 7)]
        document = parse(make_pdf(front + body), "offset.pdf")
        assert document.furniture == ("#",)
        for n, page in enumerate(document.pages[2:], start=1):
            assert page.text.startswith(f"PAGEMARK{n} ")

    def test_a_number_that_is_not_the_page_number_stays(self):
        # Numbered code lines at the top of pages: bare numbers, but not these pages' numbers.
        numbers = [41, 17, 41, 9, 23, 41, 5, 30]
        pages = [f"Widget Manual {n}\n{numbers[n - 1]}\n{prose(n, 1)}" for n in range(1, 9)]
        document = parse(make_pdf(pages), "listing.pdf")
        assert document.furniture == ("widget manual #",)
        for n, page in enumerate(document.pages, start=1):
            assert page.text.startswith(f"{numbers[n - 1]}\n{prose(n, 1)[:20]}"), page.text

    def test_furniture_key_ignores_numbers_and_spacing(self):
        assert furniture_key("Chapter 5:  Packages   23") == "chapter #: packages #"
        assert furniture_key("Page iv") == furniture_key("Page 12") == "page #"
        assert furniture_key("Mixed signals") == "mixed signals"  # words are not numerals


# ---------------------------------------------------------------------------------------------
# Navigation pages
# ---------------------------------------------------------------------------------------------


class TestNavigation:
    def test_contents_and_index_pages_become_navigation_chunks(self, manual):
        assert [p.number for p in manual.pages if p.navigation] == [2, 11]
        chunks = chunks_of(manual)
        navigation = [c for c in chunks if c.kind == "navigation"]
        assert {c.page for c in navigation} == {2, 11}
        for chunk in chunks:
            if chunk.kind == "content":
                assert chunk.page not in (2, 11)
                assert "...." not in chunk.text and "backup, 4, 8" not in chunk.text
        contents = "\n".join(c.text for c in navigation if c.page == 2)
        assert "2.1 Requirements 5" in contents  # leaders collapsed, the entry kept
        assert "...." not in contents

    def test_dotted_leaders_without_outline(self, manual_without_outline):
        assert [p.number for p in manual_without_outline.pages if p.navigation] == [2, 11]

    def test_navigation_headings_do_not_become_the_section_of_content(self, manual):
        chunks = chunks_of(manual)
        assert all("Contents" not in c.heading_path for c in chunks if c.kind == "content")

    def test_contents_spilling_over_several_pages(self):
        first = "Contents\n" + "\n".join(f"{n} Topic number {n} {'.' * 40} {n * 3}" for n in
                                         range(1, 20))  # fmt: skip
        second = "\n".join(f"{n} Topic number {n} {n * 3}" for n in range(20, 40))
        body = [wrapped(prose(n)) for n in range(6)]
        document = parse(make_pdf([first, second, *body]), "long-toc.pdf")
        assert [p.number for p in document.pages if p.navigation] == [1, 2]

    def test_prose_ending_in_numbers_is_not_navigation(self):
        page = "\n".join(f"The meter of room {n} reads {n * 7}" for n in range(1, 15))
        document = parse(make_pdf([page, wrapped(prose(1))]), "readings.pdf")
        assert not any(p.navigation for p in document.pages)

    def test_an_outline_entry_named_like_an_index_over_prose_is_content(self):
        pages = [wrapped(prose(1)), "Index types\n" + wrapped(prose(2)), wrapped(prose(3))]
        outline = [(1, "Overview", 1), (1, "Index", 2), (1, "Tuning", 3)]
        document = parse(make_book_pdf(pages, outline=outline), "db.pdf")
        assert not any(page.navigation for page in document.pages)
        assert {c.kind for c in chunks_of(document)} == {"content"}

    def test_docx_table_of_contents_styles(self):
        chunks = chunks_of(parse(_docx_with_toc(), "guide.docx"))
        assert [(c.text, c.kind, c.heading_path) for c in chunks] == [
            ("Introduction 1\n\nSetup 2", "navigation", ("Contents",)),
            ("Welcome to the guide.", "content", ("Introduction",)),
        ]

    def test_html_nav_is_navigation(self):
        html = (
            b"<html><body><nav><a href='#a'>Install</a> | <a href='#b'>Use</a></nav>"
            b"<h1>Install</h1><p>Run the installer.</p></body></html>"
        )
        chunks = chunks_of(parse(html, "page.html"))
        assert [(c.text, c.kind, c.heading_path) for c in chunks] == [
            ("Install | Use", "navigation", ()),
            ("Run the installer.", "content", ("Install",)),
        ]


def _docx_with_toc() -> bytes:
    """A Word document whose contents use Word's own "TOC Heading" and "toc 1" styles."""
    import io

    import docx
    from docx.enum.style import WD_STYLE_TYPE

    document = docx.Document(io.BytesIO(make_docx([("p", "x")])))
    body = document.element.body
    for paragraph in list(document.paragraphs):
        body.remove(paragraph._element)
    styles = document.styles
    names = {style.name for style in styles}
    for name in ("TOC Heading", "toc 1"):
        if name not in names:
            styles.add_style(name, WD_STYLE_TYPE.PARAGRAPH)
    document.add_paragraph("Contents", style="TOC Heading")
    document.add_paragraph("Introduction 1", style="toc 1")
    document.add_paragraph("Setup 2", style="toc 1")
    document.add_heading("Introduction", level=1)
    document.add_paragraph("Welcome to the guide.")
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


# ---------------------------------------------------------------------------------------------
# Section paths
# ---------------------------------------------------------------------------------------------


class TestSectionPaths:
    def test_outline_gives_heading_paths(self, manual):
        assert manual.headings_from == "outline"
        chunks = chunks_of(manual)
        assert path_of(chunks, "SCOPEMARK") == ("1 Introduction", "1.1 Scope")
        assert path_of(chunks, "CARRYMARK") == ("1 Introduction", "1.1 Scope")  # next page
        assert path_of(chunks, "NETMARK") == ("3 Configuration", "3.1 Network settings")
        steps = [c for c in chunks if "widget install" in c.text]
        assert steps and all(c.heading_path == ("2 Installation", "2.2 Steps") for c in steps)
        # The heading line is a heading block, not passage text.
        for chunk in [c for c in chunks if c.kind == "content"]:
            assert not chunk.text.startswith(("1 Introduction", "2.2 Steps", "3.1 Network"))
        page = manual.pages[2]
        headings = [
            (b.level, page.text[b.start : b.end]) for b in page.blocks if b.kind == "heading"
        ]
        assert headings == [(1, "1 Introduction"), (2, "1.1 Scope")]

    def test_outline_title_without_its_number_or_not_on_the_page(self):
        pages = [
            "1 Getting started\n" + wrapped("STARTMARK " + prose(1)),
            wrapped("LICENSEMARK " + prose(2)),  # "Licence" is in the outline only
            "2 Daily use\n" + wrapped("USEMARK " + prose(3)),
        ]
        outline = [(1, "Getting started", 1), (2, "Licence", 2), (1, "Daily  USE", 3)]
        document = parse(make_book_pdf(pages, outline=outline), "short.pdf")
        chunks = chunks_of(document)
        assert path_of(chunks, "STARTMARK") == ("1 Getting started",)
        assert path_of(chunks, "LICENSEMARK") == ("1 Getting started", "Licence")
        assert path_of(chunks, "USEMARK") == ("2 Daily USE",)
        licence = [b for b in document.pages[1].blocks if b.kind == "heading"]
        assert [(b.start, b.end, b.title) for b in licence] == [(0, 0, "Licence")]

    def test_numbered_headings_without_an_outline(self, manual_without_outline):
        document = manual_without_outline
        assert document.headings_from == "numbered"
        chunks = chunks_of(document)
        assert path_of(chunks, "SCOPEMARK") == ("1 Introduction", "1.1 Scope")
        assert path_of(chunks, "CARRYMARK") == ("1 Introduction", "1.1 Scope")
        assert path_of(chunks, "NETMARK") == ("3 Configuration", "3.1 Network settings")
        headings = {
            page.text[b.start : b.end]
            for page in document.pages
            for b in page.blocks
            if b.kind == "heading"
        }
        # Numbered list items and the contents page's entries are not headings.
        assert "1. Download the archive" not in headings
        assert headings == {
            "1 Introduction", "1.1 Scope", "2 Installation", "2.1 Requirements", "2.2 Steps",
            "3 Configuration", "3.1 Network settings", "4 Troubleshooting",
        }  # fmt: skip

    @pytest.mark.parametrize(
        ("before", "line"),
        [
            ("5.2 Earlier section", "5.3 How can packages be used?"),
            ("5.2 Earlier section", "6 Packages"),
            ("Chapter 4 Earlier section", "Chapter 5 Packages"),
            ("Chapter 11 Earlier section", "Chapter 12: Working with tables"),
            ("A.1 Earlier section", "A.2 Command reference"),
            ("7 Last chapter", "A.1 Command reference"),
            ("Appendix A Earlier section", "Appendix B Glossary"),
        ],
    )
    def test_numbered_heading_forms(self, before, line):
        texts = [f"{before}\n{prose(1)}\n{line}\nBODYMARK {prose(2)}"]
        page = layout_pages(texts, numbers=[1]).pages[0]
        headings = [page.text[b.start : b.end] for b in page.blocks if b.kind == "heading"]
        assert headings == [before, line]

    @pytest.mark.parametrize(
        "line",
        [
            "1. Open the lid",  # a numbered list item
            "3 apples and 2 pears were left.",  # a sentence
            "2 Packages 23",  # a contents line
            "4 5 6",  # data
            "A new beginning",  # a sentence starting with "A"
        ],
    )
    def test_lines_that_are_not_numbered_headings(self, line):
        texts = [f"1 Overview\n{prose(1)}\n{line}\n{prose(2)}\n2 Details\n{prose(3)}"]
        page = layout_pages(texts, numbers=[1]).pages[0]
        headings = [page.text[b.start : b.end] for b in page.blocks if b.kind == "heading"]
        assert headings == ["1 Overview", "2 Details"]


# ---------------------------------------------------------------------------------------------
# Reflow and hyphenation
# ---------------------------------------------------------------------------------------------


FULL = "x" * 70  # padding that makes a line as long as a full line of the page


class TestReflow:
    def test_hyphenated_words_are_joined_and_compounds_kept(self):
        lines = [
            "Reports can be exported as spreadsheets for further analysis in tools such as Ex-",
            "cel or LibreOffice Calc, and the export keeps every column of the original table.",
            "The exporter writes a widely supported format which every spreadsheet program well-",
            "known to our users can open; a well-known format is what the survey asked for too.",
            "Documentation lives at the address https://docs.example.com/manuals/widget-user-",
            "guide/index.html and in the German edition of the manual, the non-Windows and non-",
            "English parts included, as well as in the appendix on data collection procedures.",
        ]
        text = parse(make_pdf(["\n".join(lines)]), "h.pdf").pages[0].text
        assert "such as Excel or LibreOffice" in text
        assert "program well-known to our users" in text
        assert "/manuals/widget-user-guide/index.html and" in text  # a URL keeps its hyphen
        assert "non-English parts" in text  # before a capital: a compound
        assert "-\n" not in text and "Ex-" not in text

    def test_hard_line_breaks_inside_a_paragraph_become_spaces(self, manual):
        page = manual.pages[3]  # a page of two wrapped paragraphs
        paragraphs = [page.text[b.start : b.end] for b in page.blocks]
        assert len(paragraphs) == 2
        assert paragraphs[0].startswith("CARRYMARK") and "\n" not in paragraphs[0]
        assert paragraphs[0] == " ".join(("CARRYMARK " + prose(3)).split())
        assert paragraphs[1] == prose(4)

    def test_list_items_and_code_lines_keep_their_line_breaks(self, manual):
        requirements = manual.pages[4].text
        assert (
            "The installer needs:\n• Python 3.11 or newer\n• two gigabytes of free disk space\n"
            in (requirements)
        )
        steps = manual.pages[5].text
        assert (
            "1. Download the archive\n2. Run the installer\n"
            "    widget install --prefix /opt/widget\n    widget check --verbose\n"
        ) in steps

    def test_a_short_line_ends_a_paragraph(self):
        text = "\n".join(
            [
                "The first paragraph has two lines and this first one runs right to the margin of",
                "the page.",
                "A second paragraph starts here and it also runs right up to the margin of the",
                "page before it stops.",
            ]
        )
        page = layout_pages([text], numbers=[1]).pages[0]
        assert [page.text[b.start : b.end] for b in page.blocks] == [
            "The first paragraph has two lines and this first one runs right to the margin of "
            "the page.",
            "A second paragraph starts here and it also runs right up to the margin of the "
            "page before it stops.",
        ]

    def test_chunks_keep_exact_pages_and_offsets_after_cleaning(self, manual):
        chunks = chunks_of(manual, target=48)  # small chunks: many boundaries to check
        assert {c.page for c in chunks} == set(range(1, 12))
        for chunk in chunks:
            page = manual.pages[chunk.page - 1]
            assert page.number == chunk.page
            assert page.text[chunk.start : chunk.end] == chunk.text


def test_layout_is_pure_and_text_only():
    """The rules work on text alone: the same input gives the same pages, and a page of one line
    (a label, a slide title) is never emptied."""
    texts = ["Same line\nbody one", "Same line\nbody two", "Same line", "Same line\nbody four"] * 2
    first = layout_pages(texts, numbers=range(1, 9))
    second = layout_pages(texts, numbers=range(1, 9))
    assert first == second
    assert first.pages[2].text == "Same line"
    assert first.pages[0].text == "body one"


def test_hostile_pages_keep_their_text():
    """Megabyte lines (dots, a word without a space, blanks) go through every rule unharmed."""
    dots = ". " * 300_000 + "x."
    word = "a" * 1_000_000 + "-"
    texts = [dots, f"{word}\nbcd and more", " " * 500_000 + "x\ny"]
    pages = layout_pages(texts, numbers=[1, 2, 3]).pages
    assert pages[0].text == dots.strip()
    assert pages[1].text.startswith("a" * 1000) and pages[1].text.endswith("bcd and more")
    assert len(pages[1].text) == len(word) - 1 + len("bcd and more")  # a split word, joined
    assert pages[2].text.split() == ["x", "y"]
