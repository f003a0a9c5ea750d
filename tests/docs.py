"""Real documents built in memory for tests: PDFs with known text per physical page, and the bad
inputs users actually upload (encrypted, scanned, truncated, renamed images...)."""

from __future__ import annotations

import io
import struct
import zlib


def make_pdf(pages: list[str], *, title: str = "") -> bytes:
    """One physical page per string; each line of a string is a line of text on that page."""
    from fpdf import FPDF

    pdf = FPDF(format="A4")
    pdf.set_auto_page_break(False)
    if title:
        pdf.set_title(title)
    for text in pages:
        pdf.add_page()
        pdf.set_font("Helvetica", size=11)
        y = 20
        for line in text.split("\n"):
            if line:
                pdf.text(15, y, line)
            y += 6
    return bytes(pdf.output())


def make_encrypted_pdf(pages: list[str], *, user_password: str = "secret") -> bytes:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(make_pdf(pages))))
    writer.encrypt(
        user_password=user_password, owner_password="owner-" + user_password, algorithm="AES-128"
    )
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def make_scanned_pdf(pages: int = 2) -> bytes:
    """Pages with drawings but no text layer, like a scan without OCR."""
    from fpdf import FPDF

    pdf = FPDF(format="A4")
    for _ in range(pages):
        pdf.add_page()
        pdf.set_fill_color(40, 40, 40)
        pdf.rect(20, 20, 120, 60, style="F")
    return bytes(pdf.output())


def make_png(width: int = 4, height: int = 4) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return (
            struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)
        )

    raw = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def make_docx(blocks: list[tuple[str, str]]) -> bytes:
    """blocks: ("h1".."h3" | "p", text)."""
    import docx

    document = docx.Document()
    for kind, text in blocks:
        if kind.startswith("h"):
            document.add_heading(text, level=int(kind[1]))
        else:
            document.add_paragraph(text)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def make_many_page_pdf(pages: int) -> bytes:
    return make_pdf(
        [
            f"Page marker {n}. This is physical page {n} of the long report."
            for n in range(1, pages + 1)
        ]
    )


def make_book_pdf(
    pages: list[str],
    *,
    header: str = "",
    even_header: str | None = None,
    footer: str = "",
    outline: list[tuple[int, str, int]] = (),  # type: ignore[assignment]
    first_number: int = 1,
    title: str = "",
) -> bytes:
    """A PDF laid out like a printed manual: body lines as in ``make_pdf``, plus a running header
    and footer on every page (``{n}``: the printed page number, ``first_number`` on page 1;
    ``even_header`` replaces ``header`` on even printed pages, as books alternate them) and
    bookmarks ``(level, title, physical page)`` with level 1 at the top."""
    from fpdf import FPDF

    pdf = FPDF(format="A4")
    pdf.core_fonts_encoding = "cp1252"  # the core fonts' WinAnsi encoding: bullets, dashes
    pdf.set_auto_page_break(False)
    if title:
        pdf.set_title(title)
    for index, text in enumerate(pages):
        number = first_number + index
        pdf.add_page()
        for level, name, page in outline:
            if page == index + 1:
                pdf.start_section(name, level=level - 1, strict=False)
        pdf.set_font("Helvetica", size=9)
        top = even_header if even_header is not None and number % 2 == 0 else header
        if top:
            pdf.text(15, 10, top.format(n=number))
        pdf.set_font("Helvetica", size=11)
        y = 20
        for line in text.split("\n"):
            if line:
                pdf.text(15, y, line)
            y += 6
        if footer:
            pdf.set_font("Helvetica", size=9)
            pdf.text(15, 290, footer.format(n=number))
    return bytes(pdf.output())
