"""Issue 11, defect 1: a DOCX zip bomb took the app down (python-docx inflated 1.2 GB of tiny
paragraphs). The archive's directory is checked before anything is inflated; the document ends
`failed` with the reason and the number, in bounded memory, and the next good one still goes
through."""

from __future__ import annotations

import io
import resource
import zipfile

import pytest

from ingest.models import Document
from rag.parsing import ParseError, ParseLimits, parse
from tests.docs import make_docx, make_pdf
from tests.ingest.helpers import ingest

PARAGRAPH = b"<w:p><w:r><w:t>x</w:t></w:r></w:p>"


def docx_bomb(inflated_mb: int) -> bytes:
    """A real DOCX whose document.xml is padded with tiny paragraphs up to ``inflated_mb``."""
    source = zipfile.ZipFile(io.BytesIO(make_docx([("p", "A normal start.")])))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as bomb:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename == "word/document.xml":
                head, tail = data.split(b"</w:body>")
                padding = PARAGRAPH * (inflated_mb * 1024 * 1024 // len(PARAGRAPH))
                data = head + padding + b"</w:body>" + tail
            bomb.writestr(item.filename, data)
    return out.getvalue()


def test_a_docx_bomb_is_refused_before_it_is_inflated():
    bomb = docx_bomb(300)  # ~1 MB on disk
    assert len(bomb) < 3 * 1024 * 1024
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(ParseError, match=r"inflates to 30\d MB \(the limit is 200 MB\)"):
        parse(bomb, "report.docx")
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 100  # python-docx would have built gigabytes of XML trees


def test_the_ratio_and_member_count_are_bounded_too():
    with pytest.raises(ParseError, match=r"inflates [\d,]+ times its size \(the limit is 100\)"):
        parse(docx_bomb(40), "report.docx")  # under the size limit, far over the ratio
    with pytest.raises(ParseError, match=r"holds [\d,]+ files \(the limit is 5\)"):
        parse(make_docx([("p", "Small.")]), "a.docx", limits=ParseLimits(zip_max_members=5))


def test_an_ordinary_docx_and_pdf_pass_and_pages_are_bounded():
    assert parse(make_docx([("p", "Hello there.")]), "a.docx").pages[0].text == "Hello there."
    pdf = make_pdf(["One.", "Two.", "Three."])
    assert len(parse(pdf, "a.pdf").pages) == 3
    with pytest.raises(ParseError, match=r"has 3 pages \(the limit is 2\)"):
        parse(pdf, "a.pdf", limits=ParseLimits(pdf_max_pages=2))


@pytest.mark.django_db
def test_the_bomb_fails_with_its_reason_and_the_worker_goes_on(collection):
    bomb = ingest(docx_bomb(300), "bomb.docx", collection)
    good = ingest(b"Visitors sign in at reception.", "visitors.txt", collection)

    assert bomb.status == Document.Status.FAILED
    assert "compression bomb" in bomb.error and "(the limit is 200 MB)" in bomb.error
    assert good.status == Document.Status.READY
