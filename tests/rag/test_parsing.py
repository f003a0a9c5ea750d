"""rag.parsing: media type from content, every bad input a user can upload, and page/block fidelity."""

from __future__ import annotations

import io
import random
import zipfile

import pytest

from rag.parsing import (
    DOCX,
    HTML,
    MARKDOWN,
    PDF,
    TXT,
    ParseError,
    decode_text,
    detect_media_type,
    parse,
)
from rag.types import ParsedDocument
from tests.docs import (
    make_docx,
    make_encrypted_pdf,
    make_many_page_pdf,
    make_pdf,
    make_png,
    make_scanned_pdf,
)

# A 1x1 GIF: real magic bytes, so detection has to recognise it as an image, not as text.
GIF = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00"
    b",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)
# The start of a Windows executable: "MZ" header followed by NUL-heavy data.
EXE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00\xb8" + b"\x00" * 200


def zip_bytes(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return out.getvalue()


def reason_of(data: bytes, filename: str) -> str:
    with pytest.raises(ParseError) as info:
        parse(data, filename)
    assert str(info.value) == info.value.reason
    return info.value.reason


def block_texts(document: ParsedDocument) -> list[tuple[str, int, str]]:
    """(kind, level, text) of every block of a single-page document."""
    (page,) = document.pages
    return [(b.kind, b.level, page.text[b.start : b.end]) for b in page.blocks]


# ---------------------------------------------------------------------------------------------
# Media type detection: the content decides, the name only breaks ties between text formats
# ---------------------------------------------------------------------------------------------


class TestDetection:
    def test_pdf_is_detected_whatever_its_name(self):
        data = make_pdf(["Quarterly report"])
        for name in ("report.pdf", "report.txt", "report.docx", "report", "REPORT.PDF"):
            assert detect_media_type(data, name) == PDF

    def test_pdf_with_junk_before_the_header_is_still_a_pdf(self):
        assert detect_media_type(b"\r\n" * 10 + make_pdf(["x"]), "scan.pdf") == PDF

    def test_docx_is_detected_without_its_extension(self):
        data = make_docx([("p", "Hello")])
        assert detect_media_type(data, "upload.bin") == DOCX
        assert detect_media_type(data, "upload") == DOCX
        assert detect_media_type(data, "notes.docx") == DOCX

    @pytest.mark.parametrize(
        ("filename", "expected"),
        [
            ("notes.md", MARKDOWN),
            ("notes.markdown", MARKDOWN),
            ("page.html", HTML),
            ("page.HTM", HTML),
            ("notes.txt", TXT),
            ("data.csv", TXT),
            ("README", TXT),
        ],
    )
    def test_text_formats_are_told_apart_by_name(self, filename, expected):
        assert detect_media_type(b"# Title\n\nSome text.\n", filename) == expected

    def test_html_without_extension_is_sniffed_from_doctype(self):
        assert detect_media_type(b"  <!DOCTYPE html><html><p>x</p></html>", "download") == HTML
        assert detect_media_type(b"<HTML><body>x</body></HTML>", "page") == HTML

    def test_html_content_named_txt_is_read_as_text(self):
        # The name breaks the tie between textual formats: markup in a .txt stays literal.
        document = parse(b"<html><body><h1>Kept</h1></body></html>", "page.txt")
        assert document.media_type == TXT
        assert "<h1>Kept</h1>" in document.pages[0].text

    @pytest.mark.parametrize(
        ("filename", "reason"),
        [
            ("report.pdf", "named .pdf but the content is not a PDF (it looks like text)"),
            (
                "report.docx",
                "named .docx but the content is not a DOCX document (it looks like text)",
            ),
        ],
    )
    def test_text_named_as_binary_format_is_refused(self, filename, reason):
        assert reason_of(b"just some plain text, no PDF here\n", filename) == reason

    @pytest.mark.parametrize("filename", ["pdf-notes.md", "pdf-notes.txt"])
    def test_text_mentioning_the_pdf_header_is_text(self, filename):
        data = b"# PDF internals\n\nEvery PDF file starts with the header %PDF-1.7 and a comment.\n"
        document = parse(data, filename)
        assert document.media_type in (MARKDOWN, TXT)
        assert "%PDF-1.7" in document.pages[0].text

    @pytest.mark.parametrize(
        "data",
        [
            b"BM25 is a ranking function used by search engines to score documents.\n",
            b"ID3 tags store the title and artist inside MP3 files.\n",
            b"MZ Bank annual report: revenue grew by four percent.\n",
        ],
        ids=["BM", "ID3", "MZ"],
    )
    def test_text_starting_with_a_short_magic_number_is_text(self, data):
        assert detect_media_type(data, "notes.txt") == TXT
        assert parse(data, "notes.txt").pages[0].text == data.decode()


# ---------------------------------------------------------------------------------------------
# Bad inputs: each gives a precise, user-facing reason
# ---------------------------------------------------------------------------------------------


class TestBadInputs:
    @pytest.mark.parametrize("filename", ["empty.pdf", "empty.txt", "empty.docx", "empty"])
    def test_zero_byte_file(self, filename):
        assert reason_of(b"", filename) == "empty file (0 bytes)"
        with pytest.raises(ParseError, match=r"empty file \(0 bytes\)"):
            detect_media_type(b"", filename)

    @pytest.mark.parametrize("keep", [10, 400, 0.5, -10])
    def test_truncated_pdf(self, keep):
        full = make_pdf(["Hello world on page one", "Second page", "Third page"])
        cut = int(len(full) * keep) if isinstance(keep, float) else keep
        data = full[:cut]
        assert len(data) < len(full)
        assert reason_of(data, "report.pdf").startswith("corrupt or truncated PDF: ")

    @pytest.mark.parametrize("seed", [0, 1, 2])
    def test_random_bytes_after_pdf_header(self, seed):
        data = b"%PDF-1.4\n" + random.Random(seed).randbytes(20_000)
        assert detect_media_type(data, "x.pdf") == PDF
        assert reason_of(data, "x.pdf").startswith("corrupt or truncated PDF: ")

    def test_encrypted_pdf_needs_a_password(self):
        reason = reason_of(make_encrypted_pdf(["Top secret"]), "secret.pdf")
        assert reason == "encrypted PDF: it needs a password to open; upload an unprotected copy"

    def test_owner_password_only_pdf_parses(self):
        # Encrypted with an owner password but an empty user password: anyone may open it.
        data = make_encrypted_pdf(["Owner only text", "Second page"], user_password="")
        from pypdf import PdfReader

        assert PdfReader(io.BytesIO(data)).is_encrypted  # the fixture really is encrypted
        document = parse(data, "restricted.pdf")
        assert document.media_type == PDF
        assert [p.number for p in document.pages] == [1, 2]
        assert "Owner only text" in document.pages[0].text
        assert "Second page" in document.pages[1].text

    @pytest.mark.parametrize(("pages", "count"), [(1, "1 page without"), (3, "3 pages without")])
    def test_scanned_pdf_without_text_layer(self, pages, count):
        reason = reason_of(make_scanned_pdf(pages), "scan.pdf")
        assert "no extractable text — scanned PDF?" in reason
        assert count in reason
        assert "OCR is not enabled" in reason

    def test_png_renamed_to_pdf(self):
        reason = reason_of(make_png(), "invoice.pdf")
        assert reason == (
            "named .pdf but the content is image/png (png): not a supported document type"
        )

    def test_png_renamed_to_docx(self):
        assert reason_of(make_png(), "letter.docx").startswith(
            "named .docx but the content is image/png"
        )

    @pytest.mark.parametrize(
        ("data", "filename", "reason"),
        [
            (GIF, "animation.gif", "unsupported file type: image/gif (gif)"),
            (make_png(), "picture", "unsupported file type: image/png (png)"),
            (EXE, "setup.exe", "unsupported file type: application/x-msdownload (exe)"),
            (b"\x01\x02\x03\x00\x00\x00\xfe\xedrandom\x00payload", "blob.bin", None),
            (zip_bytes({"a.txt": b"hello"}), "archive.zip", "unsupported file type: a ZIP archive"),
        ],
        ids=["gif", "png-no-ext", "exe", "nul-binary", "zip"],
    )
    def test_unsupported_types(self, data, filename, reason):
        got = reason_of(data, filename)
        assert got == (reason or "unsupported file type: binary data")

    def test_zip_that_is_not_a_docx_named_docx(self):
        data = zip_bytes({"content.xml": b"<doc/>", "mimetype": b"application/zip"})
        assert reason_of(data, "report.docx") == (
            "named .docx but the content is a ZIP archive: not a supported document type"
        )

    def test_binary_named_txt(self):
        assert reason_of(b"abc\x00\x00\x00def\x00", "notes.txt") == (
            "named .txt but the content is binary data: not a supported document type"
        )

    def test_docx_with_broken_xml(self):
        data = zip_bytes({"word/document.xml": b"<not-closed", "[Content_Types].xml": b"x"})
        assert detect_media_type(data, "broken.docx") == DOCX
        assert reason_of(data, "broken.docx").startswith("corrupt DOCX document: ")

    @pytest.mark.parametrize(
        ("data", "filename"),
        [
            (b"   \n\n\t  \r\n  ", "blank.txt"),
            (
                b"<html><head><style>p{}</style></head><body><script>x()</script></body></html>",
                "a.html",
            ),
            (b"\n\n---\n\n***\n", "a.md"),
            (make_docx([("p", "   "), ("p", "")]), "empty.docx"),
        ],
        ids=["whitespace-text", "html-only-script", "markdown-only-rules", "docx-blank"],
    )
    def test_documents_without_text(self, data, filename):
        assert reason_of(data, filename) == (
            "no extractable text: the document is empty once markup is removed"
        )


# ---------------------------------------------------------------------------------------------
# Text encodings and size
# ---------------------------------------------------------------------------------------------

FRENCH = (
    "Résumé du rapport annuel. La société a présenté ses résultats financiers pour l'exercice "
    "écoulé. Les bénéfices ont augmenté de façon significative grâce à une stratégie d'expansion "
    "réfléchie. Le conseil d'administration a décidé de verser un dividende exceptionnel aux "
    "actionnaires. Les perspectives pour l'année à venir restent très encourageantes.\n"
)


class TestEncodings:
    @pytest.mark.parametrize("encoding", ["latin-1", "cp1252"])
    def test_western_european_8bit_text(self, encoding):
        document = parse(FRENCH.encode(encoding), "rapport.txt")
        assert document.pages[0].text == FRENCH

    def test_cp1252_specific_characters(self):
        text = ("“Smart quotes” — an em dash, an en dash – and the euro sign €. " + FRENCH).replace(
            "'", "’"
        )
        assert decode_text(text.encode("cp1252")) == text

    @pytest.mark.parametrize("encoding", ["latin-1", "cp1252"])
    def test_short_western_european_8bit_text(self, encoding):
        text = (
            "Le café est très bon. Les élèves étudient à l'école pendant l'été, "
            "et ils préfèrent les crèmes brûlées.\n"
        ) * 5
        assert decode_text(text.encode(encoding)) == text

    @pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be"])
    def test_utf16_with_bom(self, encoding):
        text = "Ελληνικά κείμενο και 日本語のテキスト, with naïve English.\nSecond line.\n"
        data = text.encode(encoding)
        if encoding != "utf-16":
            data = ("\ufeff".encode(encoding)) + data  # an explicit byte order mark
        document = parse(data, "notes.txt")
        assert document.media_type == TXT
        assert document.pages[0].text == text  # BOM gone

    def test_utf8_bom_is_removed_and_newlines_normalised(self):
        document = parse(
            "\ufeffFirst line\r\nSecond line\rThird\r\n\r\nNext para".encode(), "a.txt"
        )
        (page,) = document.pages
        assert page.text == "First line\nSecond line\nThird\n\nNext para"
        assert [page.text[b.start : b.end] for b in page.blocks] == [
            "First line\nSecond line\nThird",
            "Next para",
        ]

    def test_nul_bytes_do_not_survive_in_text(self):
        # A UTF-16 file carries NUL bytes; none may reach the text (Postgres rejects them).
        document = parse("plain ascii in utf-16".encode("utf-16"), "a.txt")
        assert "\x00" not in document.pages[0].text

    def test_one_enormous_line(self):
        data = b"lorem ipsum dolor sit amet " * 200_000  # ~5.4 MB, no newline at all
        assert b"\n" not in data
        document = parse(data, "huge.log")
        (page,) = document.pages
        assert page.number is None
        assert document.page_count is None
        assert len(page.text) == len(data)
        assert len(page.blocks) == 1
        block = page.blocks[0]
        assert (block.kind, block.start, block.end) == ("paragraph", 0, len(data.rstrip()))

    def test_plain_text_paragraphs(self):
        text = "  First para\nstill first.\n\n\n  Second para.\n \t\nThird.  \n"
        (page,) = parse(text.encode(), "a.txt").pages
        assert [page.text[b.start : b.end] for b in page.blocks] == [
            "First para\nstill first.",
            "Second para.",
            "Third.",
        ]
        assert all(b.kind == "paragraph" and b.level == 0 for b in page.blocks)

    def test_text_progress_is_reported_once_complete(self):
        calls = []
        parse(b"hello", "a.txt", progress=lambda done, total: calls.append((done, total)))
        assert calls == [(1, 1)]


# ---------------------------------------------------------------------------------------------
# Structured formats: HTML, Markdown, DOCX
# ---------------------------------------------------------------------------------------------


class TestHtml:
    HTML_DOC = b"""<!DOCTYPE html>
    <html><head><title>The Title</title>
      <style>body { color: red; } .secret-style {}</style>
      <script>var secretScript = 1;</script>
    </head>
    <body>
      <nav>Home | About</nav>
      <h1>Main <em>Heading</em></h1>
      <script>alert("injected");</script>
      <p>First paragraph with <b>bold</b> and <a href="#">a link</a>.</p>
      <style>.inline-style { display: none }</style>
      <h2>Sub heading</h2>
      <div>Block one<br>continued</div>
      <!-- a comment that must vanish -->
      <ul><li>Item one</li><li>Item two</li></ul>
      <h3>Deep heading</h3>
      <noscript>Enable JavaScript</noscript>
      <p>Last words.</p>
    </body></html>"""

    def test_blocks_kinds_levels_and_offsets(self):
        document = parse(self.HTML_DOC, "page.html")
        assert document.media_type == HTML
        assert document.title == "The Title"
        assert document.page_count is None
        assert block_texts(document) == [
            ("paragraph", 0, "Home | About"),
            ("heading", 1, "Main Heading"),
            ("paragraph", 0, "First paragraph with bold and a link."),
            ("heading", 2, "Sub heading"),
            ("paragraph", 0, "Block one continued"),
            ("paragraph", 0, "Item one"),
            ("paragraph", 0, "Item two"),
            ("heading", 3, "Deep heading"),
            ("paragraph", 0, "Last words."),
        ]

    def test_script_style_comments_are_dropped(self):
        text = parse(self.HTML_DOC, "page.html").pages[0].text
        for gone in ("secretScript", "injected", "alert", "color: red", "inline-style",
                     "a comment", "Enable JavaScript", "<", ">"):  # fmt: skip
            assert gone not in text

    def test_all_heading_levels(self):
        html = "".join(f"<h{n}>Level {n}</h{n}><p>Body {n}</p>" for n in range(1, 7))
        blocks = block_texts(parse(f"<html><body>{html}</body></html>".encode(), "x.html"))
        headings = [(level, text) for kind, level, text in blocks if kind == "heading"]
        assert headings == [(n, f"Level {n}") for n in range(1, 7)]

    def test_nesting_under_the_depth_limit_is_read(self):
        html = (
            "<html><body>" + "<div>" * 400 + "<p>deep text</p>" + "</div>" * 400 + "</body></html>"
        )
        assert block_texts(parse(html.encode(), "deep.html")) == [("paragraph", 0, "deep text")]

    def test_nesting_past_the_depth_limit_is_refused_with_the_number(self):
        html = (
            "<html><body>"
            + "<div>" * 3000
            + "<p>deep text</p>"
            + "</div>" * 3000
            + "</body></html>"
        )
        with pytest.raises(ParseError, match="512"):
            parse(html.encode(), "deep.html")


class TestMarkdown:
    def test_headings_become_heading_blocks(self):
        source = (
            "# Top title\n\nIntro paragraph\nspanning two lines.\n\n"
            "## Second *level*\n\n- item a\n- item b\n\n"
            "### Third\n\nSetext below\n\nAnother Top\n===========\n\nEnd.\n"
        )
        document = parse(source.encode(), "notes.md")
        assert document.media_type == MARKDOWN
        assert block_texts(document) == [
            ("heading", 1, "Top title"),
            ("paragraph", 0, "Intro paragraph spanning two lines."),
            ("heading", 2, "Second level"),
            ("paragraph", 0, "item a"),
            ("paragraph", 0, "item b"),
            ("heading", 3, "Third"),
            ("paragraph", 0, "Setext below"),
            ("heading", 1, "Another Top"),
            ("paragraph", 0, "End."),
        ]

    def test_raw_html_is_inert_text_never_markup(self):
        source = (
            "# Safe\n\n<script>alert('x')</script>\n\n<h1>Fake heading</h1>\n\n"
            "Inline <b>bold</b> tag.\n"
        )
        document = parse(source.encode(), "evil.md")
        blocks = block_texts(document)
        # Nothing written as HTML was interpreted: no heading from <h1>, no script dropped or run,
        # no entity-escaped residue: the raw markup is shown as the literal text the author typed.
        assert [b for b in blocks if b[0] == "heading"] == [("heading", 1, "Safe")]
        assert blocks[1:] == [
            ("paragraph", 0, "<script>alert('x')</script>"),
            ("paragraph", 0, "<h1>Fake heading</h1>"),
            ("paragraph", 0, "Inline <b>bold</b> tag."),
        ]
        assert "&lt;" not in document.pages[0].text


class TestDocx:
    def test_headings_and_paragraphs(self):
        data = make_docx(
            [
                ("h1", "Introduction"),
                ("p", "First   paragraph\twith  odd spacing."),
                ("h2", "Details"),
                ("p", "Second paragraph."),
                ("p", ""),
                ("h3", "Fine print"),
                ("p", "Third paragraph."),
            ]
        )
        document = parse(data, "letter.docx")
        assert document.media_type == DOCX
        assert document.page_count is None
        assert block_texts(document) == [
            ("heading", 1, "Introduction"),
            ("paragraph", 0, "First paragraph with odd spacing."),
            ("heading", 2, "Details"),
            ("paragraph", 0, "Second paragraph."),
            ("heading", 3, "Fine print"),
            ("paragraph", 0, "Third paragraph."),
        ]


# ---------------------------------------------------------------------------------------------
# PDF pages
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def thousand_pages():
    calls: list[tuple[int, int]] = []
    document = parse(
        make_many_page_pdf(1000), "long.pdf", progress=lambda d, t: calls.append((d, t))
    )
    return document, calls


class TestPdfPages:
    def test_page_numbers_are_physical_and_one_based(self):
        document = parse(make_pdf(["A", "", "C"]), "abc.pdf")
        assert document.media_type == PDF
        assert document.page_count == 3
        assert [p.number for p in document.pages] == [1, 2, 3]
        assert [p.text.strip() for p in document.pages] == ["A", "", "C"]
        assert document.pages[1].blocks == ()
        assert document.warnings == ()

    def test_block_offsets_and_title(self):
        data = make_pdf(
            ["First line\nsecond line\n\nNew paragraph", "Page two text"], title="Annual Report"
        )
        document = parse(data, "r.pdf")
        assert document.title == "Annual Report"
        first, second = document.pages
        assert first.text.startswith("First line\nsecond line")
        assert "New paragraph" in first.text
        for page in document.pages:
            assert page.blocks
            for block in page.blocks:
                assert block.kind == "paragraph"
                piece = page.text[block.start : block.end]
                assert piece == piece.strip() and piece
        assert "Page two text" in second.text
        assert "Page two" not in first.text and "First line" not in second.text

    def test_thousand_page_pdf_progress(self, thousand_pages):
        document, calls = thousand_pages
        assert document.page_count == 1000
        assert document.pages[0].number == 1 and document.pages[-1].number == 1000
        assert "Page marker 1000." in document.pages[-1].text
        assert "Page marker 500." in document.pages[499].text
        page_calls = [(done, total) for done, total in calls if total == 1000]
        assert len(page_calls) >= 100
        dones = [done for done, _ in page_calls]
        assert dones == sorted(set(dones))  # strictly increasing
        assert dones[-1] == 1000

    def test_thousand_page_pdf_progress_never_goes_back(self, thousand_pages):
        _, calls = thousand_pages
        assert {total for _, total in calls} == {1000}
        dones = [done for done, _ in calls]
        assert dones == sorted(dones)
