"""The search page: passages as clean text with the query's terms marked the way BM25 matched
them (stemmed), escaped; each with its section path and a link to its page."""

import re

import pytest

from assistant.highlight import passage_clean, passage_html
from rag.lexical import term_spans
from tests.docs import make_book_pdf
from tests.ingest.helpers import ingest


def marked(html: str) -> list[str]:
    return re.findall(r"<mark>(.*?)</mark>", html)


class TestHighlight:
    def test_stemmed_terms_are_found_and_stop_words_are_not(self):
        text = "Configuring the libraries: a library is configured once."
        spans = term_spans(text, "the configuration of a library", "english")
        assert [text[s:e] for s, e in spans] == [
            "Configuring",
            "libraries",
            "library",
            "configured",
        ]

    def test_without_a_stemmer_only_the_words_themselves(self):
        assert term_spans("Library libraries", "library", None) == [(0, 7)]

    def test_line_breaks_and_broken_words_are_joined_for_display(self):
        text = "Receipts must be sub-\nmitted within\nthirty  days. A self-service desk;\nself-\nservice."
        assert passage_clean(text) == (
            "Receipts must be submitted within thirty days. A self-service desk; self-service."
        )

    def test_the_passage_is_escaped_and_only_marks_are_markup(self):
        html = passage_html(
            "<script>alert(1)</script> Receipts & <b>travel</b>",
            "receipt travel",
            language="english",
        )
        assert html == (
            "&lt;script&gt;alert(1)&lt;/script&gt; <mark>Receipts</mark> &amp; "
            "&lt;b&gt;<mark>travel</mark>&lt;/b&gt;"
        )

    def test_a_long_passage_shows_the_stretch_with_the_terms(self):
        text = "filler " * 200 + "The hotel budget is 150 EUR per night." + " padding" * 200
        html = passage_html(text, "hotel budget", language="english", limit=200)
        assert marked(html) == ["hotel", "budget"]
        assert html.startswith("…") and html.endswith("…")
        assert len(html) < 260


@pytest.mark.django_db
class TestSearchPage:
    @pytest.fixture
    def manual(self, collection):
        pages = [
            "Travel policy\nEconomy class is required for flights shorter than six hours.",
            "Expense claims\nReceipts must be sub-\nmitted within thirty days of travel.\n"
            "Late receipts are refused.",
        ]
        outline = [(1, "Travel policy", 1), (1, "Expense claims", 2)]  # the PDF's bookmarks
        document = ingest(make_book_pdf(pages, outline=outline), "manual.pdf", collection)
        assert document.status == "ready", document.error
        return document

    def test_results_are_clean_marked_and_point_at_their_page(self, client, staff_user, manual):
        client.force_login(staff_user)
        page = client.get("/search/", {"q": "submitting receipts"}).content.decode()

        [result] = [
            r
            for r in re.findall(r'<li class="search-result">(.*?)</li>', page, re.S)
            if "thirty days" in r
        ]
        passage = re.search(r'<p class="passage passage-clean">(.*?)</p>', result, re.S)[1]
        assert "\n" not in passage
        assert "<mark>submitted</mark> within thirty days" in passage
        assert marked(passage)[:1] == ["Receipts"] and "receipts" in marked(passage)
        assert f'href="/documents/{manual.pk}/file#page=2"' in result
        assert 'aria-label="Open manual.pdf at page 2"' in result
        assert '<span class="result-section">Expense claims</span>' in result
