"""rag.chunking: exact offsets, page and heading boundaries, size limits, overlap and stable ids."""

from __future__ import annotations

import random
import re
import string
import uuid

import pytest

from rag.chunking import Chunker, chunk_id_for, count_tokens
from rag.parsing import parse
from rag.types import Block, Chunk, Page, ParsedDocument
from tests.docs import make_pdf

WORDS = (
    "river mountain forest ocean library budget committee report engineer roof meeting "
    "decision funding building spring resident concern repair window garden station"
).split()


def sentence(rng: random.Random, low: int = 5, high: int = 14) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(low, high))).capitalize() + "."


def paragraph(rng: random.Random, sentences: int) -> str:
    return " ".join(sentence(rng) for _ in range(sentences))


def page_of(document: ParsedDocument, chunk: Chunk) -> Page:
    (page,) = [p for p in document.pages if p.number == chunk.page]
    return page


def check_invariants(document: ParsedDocument, chunks: list[Chunk], chunker: Chunker, sha: str):
    """What every chunking must satisfy, whatever the input."""
    for index, chunk in enumerate(chunks):
        page = page_of(document, chunk)
        assert page.text[chunk.start : chunk.end] == chunk.text
        assert chunk.text and chunk.text == chunk.text.strip()
        assert chunk.index == index
        assert chunk.id == chunk_id_for(sha, index)
        assert count_tokens(chunk.text) <= chunker.target_tokens, chunk
        for block in page.blocks:
            if block.kind == "heading":  # a heading is a wall: nothing straddles or contains it
                assert block.end <= chunk.start or block.start >= chunk.end, (block, chunk)


def covered_everything(text: str, chunks: list[Chunk]) -> bool:
    covered = bytearray(len(text))
    for chunk in chunks:
        covered[chunk.start : chunk.end] = b"\x01" * (chunk.end - chunk.start)
    return all(0 not in covered[m.start() : m.end()] for m in re.finditer(r"\S+", text))


# ---------------------------------------------------------------------------------------------


class TestOffsetsPagesHeadings:
    def test_pdf_chunks_stay_on_their_page(self):
        rng = random.Random(1)
        pages = ["\n".join(f"P{n}L{i} " + sentence(rng) for i in range(30)) for n in range(1, 5)]
        document = parse(make_pdf(pages), "r.pdf")
        chunker = Chunker(target_tokens=64)
        chunks = chunker.split(document, doc_id="7", doc_sha256="sha-pdf")
        check_invariants(document, chunks, chunker, "sha-pdf")
        assert {c.page for c in chunks} == {1, 2, 3, 4}
        for chunk in chunks:
            markers = set(re.findall(r"P(\d)L\d+", chunk.text))
            assert markers == {str(chunk.page)}  # text from its own page, and only that page
            assert chunk.doc_id == "7"
        for number in (1, 2, 3, 4):  # nothing lost: every line of the page is in some chunk
            page = document.pages[number - 1]
            assert covered_everything(page.text, [c for c in chunks if c.page == number])

    def test_nested_heading_paths(self):
        rng = random.Random(2)
        source = "\n\n".join(
            [
                "# Alpha",
                paragraph(rng, 2),
                "## Alpha one",
                paragraph(rng, 2),
                "### Alpha one deep",
                paragraph(rng, 2),
                "## Alpha two",
                paragraph(rng, 2),
                "# Beta",
                paragraph(rng, 2),
                "### Beta skipped level",
                paragraph(rng, 2),
                "## Beta two",
                paragraph(rng, 2),
            ]
        )
        document = parse(source.encode(), "guide.md")
        chunker = Chunker()
        chunks = chunker.split(document, doc_id="d", doc_sha256="sha-md")
        check_invariants(document, chunks, chunker, "sha-md")
        assert [c.heading_path for c in chunks] == [
            ("Alpha",),
            ("Alpha", "Alpha one"),
            ("Alpha", "Alpha one", "Alpha one deep"),
            ("Alpha", "Alpha two"),
            ("Beta",),
            ("Beta", "Beta skipped level"),
            ("Beta", "Beta two"),
        ]
        assert chunks[2].embedding_text.startswith("Alpha > Alpha one > Alpha one deep\n")
        assert all(c.page is None for c in chunks)

    def test_long_sections_never_cross_a_heading(self):
        rng = random.Random(3)
        parts = []
        for n in range(6):
            parts.append(f"{'#' * (n % 3 + 1)} Section {n}")
            parts.extend(paragraph(rng, rng.randint(1, 6)) for _ in range(rng.randint(1, 5)))
        document = parse("\n\n".join(parts).encode(), "long.md")
        chunker = Chunker(target_tokens=48)
        chunks = chunker.split(document, doc_id="d", doc_sha256="s")
        assert len(chunks) > 12
        check_invariants(document, chunks, chunker, "s")
        page = document.pages[0]
        headings = [b for b in page.blocks if b.kind == "heading"]
        for chunk in chunks:
            before = [h for h in headings if h.end <= chunk.start]
            assert chunk.heading_path[-1] == page.text[before[-1].start : before[-1].end]

    def test_heading_path_carries_across_pages_and_chunks_stop_at_page_end(self):
        text1 = "Chapter\n\nFirst page body."
        text2 = "Second page body continues the chapter.\n\nSub\n\nUnder the sub heading."
        document = ParsedDocument(
            media_type="application/pdf",
            pages=(
                Page(1, text1, (Block("heading", 0, 7, 1), Block("paragraph", 9, 25))),
                Page(
                    2,
                    text2,
                    (
                        Block("paragraph", 0, 39),
                        Block("heading", 41, 44, 2),
                        Block("paragraph", 46, 68),
                    ),
                ),
            ),
        )
        chunks = Chunker().split(document, doc_id="d", doc_sha256="s")
        assert [(c.page, c.text, c.heading_path) for c in chunks] == [
            (1, "First page body.", ("Chapter",)),
            (2, "Second page body continues the chapter.", ("Chapter",)),
            (2, "Under the sub heading.", ("Chapter", "Sub")),
        ]

    def test_empty_and_heading_only_documents_give_no_chunks(self):
        empty = ParsedDocument(media_type="text/plain", pages=(Page(None, "", ()),))
        assert Chunker().split(empty, doc_id="d", doc_sha256="s") == []
        headings_only = parse(b"# One\n\n## Two\n", "h.md")
        assert Chunker().split(headings_only, doc_id="d", doc_sha256="s") == []


class TestNavigationAndTitles:
    """Blocks marked navigation (contents, index) and headings titled by a PDF outline."""

    def test_navigation_blocks_make_navigation_chunks_never_mixed_with_content(self):
        text = "Intro text.\n1 Setup 3\n2 Use 5\nBody after the list."
        document = ParsedDocument(
            media_type="application/pdf",
            pages=(
                Page(
                    1,
                    text,
                    (
                        Block("paragraph", 0, 11),
                        Block("paragraph", 12, 21, navigation=True),
                        Block("paragraph", 22, 29, navigation=True),
                        Block("paragraph", 30, 50),
                    ),
                ),
            ),
        )
        chunks = Chunker().split(document, doc_id="d", doc_sha256="s")
        assert [(c.text, c.kind) for c in chunks] == [
            ("Intro text.", "content"),
            ("1 Setup 3\n2 Use 5", "navigation"),
            ("Body after the list.", "content"),
        ]

    def test_a_navigation_page_makes_navigation_chunks(self):
        page = Page(1, "Setup 3", (Block("paragraph", 0, 7),), navigation=True)
        document = ParsedDocument(media_type="application/pdf", pages=(page,))
        (chunk,) = Chunker().split(document, doc_id="d", doc_sha256="s")
        assert chunk.kind == "navigation"

    def test_outline_titles_and_empty_headings_give_the_path(self):
        # An outline title replaces the line's text ("3 Usagenotes" printed without spaces); a
        # heading not found on its page is an empty block carrying only its title.
        text = "3 Usagenotes\n\nBody one."
        document = ParsedDocument(
            media_type="application/pdf",
            pages=(
                Page(
                    1,
                    text,
                    (Block("heading", 0, 12, 1, title="3 Usage notes"), Block("paragraph", 14, 23)),
                ),
                Page(
                    2,
                    "Body two.",
                    (Block("heading", 0, 0, 2, title="3.1 Limits"), Block("paragraph", 0, 9)),
                ),
            ),
        )
        chunks = Chunker().split(document, doc_id="d", doc_sha256="s")
        assert [(c.text, c.heading_path) for c in chunks] == [
            ("Body one.", ("3 Usage notes",)),
            ("Body two.", ("3 Usage notes", "3.1 Limits")),
        ]

    def test_a_contents_heading_is_not_the_section_of_what_follows(self):
        contents = Page(
            1,
            "Contents\n1 Setup 2",
            (
                Block("heading", 0, 8, 1, navigation=True),
                Block("paragraph", 9, 18, navigation=True),
            ),
            navigation=True,
        )
        preface = Page(2, "A preface without a heading.", (Block("paragraph", 0, 28),))
        document = ParsedDocument(media_type="application/pdf", pages=(contents, preface))
        chunks = Chunker().split(document, doc_id="d", doc_sha256="s")
        assert [(c.kind, c.heading_path) for c in chunks] == [
            ("navigation", ("Contents",)),
            ("content", ()),
        ]


class TestSizes:
    @pytest.mark.parametrize("target", [16, 40, 128, 256])
    def test_no_chunk_exceeds_target(self, target):
        rng = random.Random(target)
        paras = [paragraph(rng, rng.randint(1, 12)) for _ in range(40)]
        paras.append(" ".join(rng.choice(WORDS) for _ in range(600)))  # a sentence with no stop
        text = "\n\n".join(paras)
        document = parse(text.encode(), "a.txt")
        chunker = Chunker(target_tokens=target)
        chunks = chunker.split(document, doc_id="d", doc_sha256="s")
        check_invariants(document, chunks, chunker, "s")
        assert covered_everything(document.pages[0].text, chunks)
        # Packing is greedy: chunks are not needlessly tiny.
        sizes = [count_tokens(c.text) for c in chunks]
        assert sum(sizes) / len(sizes) > target * 0.4

    def test_short_paragraphs_are_packed_together(self):
        text = "\n\n".join(f"Short paragraph number {n}." for n in range(10))
        chunks = Chunker().split(parse(text.encode(), "a.txt"), doc_id="d", doc_sha256="s")
        assert len(chunks) == 1
        assert chunks[0].text == text

    def test_two_megabyte_word(self):
        rng = random.Random(4)
        blob = "".join(rng.choices(string.ascii_letters + string.digits, k=2_000_000))
        document = parse(blob.encode(), "blob.txt")
        chunker = Chunker()
        chunks = chunker.split(document, doc_id="d", doc_sha256="s")
        assert len(chunks) > 100
        check_invariants(document, chunks, chunker, "s")
        assert chunks[0].start == 0 and chunks[-1].end == len(blob)
        assert covered_everything(blob, chunks)

    def test_long_line_without_punctuation(self):
        rng = random.Random(5)
        line = " ".join(rng.choice(WORDS) for _ in range(60_000))
        document = parse(line.encode(), "line.txt")
        chunker = Chunker(target_tokens=128)
        chunks = chunker.split(document, doc_id="d", doc_sha256="s")
        assert len(chunks) > 100
        check_invariants(document, chunks, chunker, "s")
        assert covered_everything(line, chunks)

    @pytest.mark.parametrize(
        ("target", "text"),
        [
            (64, '{"key":[1,2,3],"v":"a-b"}' * 400),  # minified JSON, no spaces
            (100, "=" * 5_000),  # a separator line
            (16, "x" * 1_000),  # a plain long word: 200 chars count 21 tokens
            (40, "See https://example.org/" + "/".join(["budget", "report"] * 60) + " now."),
            (40, "Link: https://example.org/" + "-".join(["roof", "meeting"] * 15)),  # 180 chars
        ],
        ids=["json-64", "rule-100", "word-16", "long-url-40", "url-under-200-chars-40"],
    )
    def test_spaceless_runs_respect_small_targets(self, target, text):
        chunker = Chunker(target_tokens=target)
        chunks = chunker.split(parse(text.encode(), "a.txt"), doc_id="d", doc_sha256="s")
        assert max(count_tokens(c.text) for c in chunks) <= target

    def test_spaceless_punctuation_at_default_target(self):
        text = '{"key":[1,2,3],"v":"a-b"}' * 400 + "\n\n" + "=" * 5_000
        document = parse(text.encode(), "a.txt")
        chunker = Chunker()
        chunks = chunker.split(document, doc_id="d", doc_sha256="s")
        check_invariants(document, chunks, chunker, "s")
        assert covered_everything(text, chunks)


class TestOverlap:
    TARGET = 128

    def long_section(self) -> ParsedDocument:
        rng = random.Random(6)
        return parse(paragraph(rng, 200).encode(), "a.txt")  # one paragraph of short sentences

    def test_consecutive_chunks_overlap_within_budget(self):
        document = self.long_section()
        chunker = Chunker(target_tokens=self.TARGET, overlap=0.15)
        chunks = chunker.split(document, doc_id="d", doc_sha256="s")
        check_invariants(document, chunks, chunker, "s")
        assert len(chunks) > 10
        text = document.pages[0].text
        for previous, current in zip(chunks, chunks[1:], strict=False):
            assert previous.start < current.start < previous.end < current.end
            shared = text[current.start : previous.end]
            assert 0 < count_tokens(shared) <= int(self.TARGET * 0.15)
            assert previous.text.endswith(shared)  # whole trailing sentences of the previous
            assert re.search(r"[.!?]$", shared)

    def test_no_overlap_when_disabled(self):
        document = self.long_section()
        chunks = Chunker(target_tokens=self.TARGET, overlap=0).split(
            document, doc_id="d", doc_sha256="s"
        )
        for previous, current in zip(chunks, chunks[1:], strict=False):
            assert previous.end < current.start
        assert covered_everything(document.pages[0].text, chunks)

    def test_sections_do_not_overlap_each_other(self):
        rng = random.Random(7)
        source = f"# One\n\n{paragraph(rng, 30)}\n\n# Two\n\n{paragraph(rng, 30)}"
        document = parse(source.encode(), "a.md")
        chunks = Chunker(target_tokens=64).split(document, doc_id="d", doc_sha256="s")
        first_two = next(i for i, c in enumerate(chunks) if c.heading_path == ("Two",))
        assert chunks[first_two - 1].end < chunks[first_two].start


class TestIds:
    def document(self) -> ParsedDocument:
        rng = random.Random(8)
        return parse("\n\n".join(paragraph(rng, 6) for _ in range(20)).encode(), "a.txt")

    def test_deterministic_ids(self):
        chunker = Chunker(target_tokens=64)
        first = chunker.split(self.document(), doc_id="1", doc_sha256="a" * 64)
        again = chunker.split(self.document(), doc_id="1", doc_sha256="a" * 64)
        assert len(first) > 3
        assert first == again
        assert len({c.id for c in first}) == len(first)
        for chunk in first:
            parsed = uuid.UUID(chunk.id)
            assert str(parsed) == chunk.id and parsed.version == 5

    def test_different_sha_gives_different_ids(self):
        chunker = Chunker(target_tokens=64)
        one = chunker.split(self.document(), doc_id="1", doc_sha256="a" * 64)
        two = chunker.split(self.document(), doc_id="1", doc_sha256="b" * 64)
        assert [c.text for c in one] == [c.text for c in two]
        assert not {c.id for c in one} & {c.id for c in two}

    def test_chunk_id_for(self):
        assert chunk_id_for("abc", 0) == chunk_id_for("abc", 0)
        assert chunk_id_for("abc", 0) != chunk_id_for("abc", 1)
        assert chunk_id_for("abc", 1) != chunk_id_for("abd", 1)

    def test_content_hash_follows_text(self):
        chunks = Chunker(target_tokens=16).split(
            parse(
                b"Same words here and there again and again.\n\n"
                b"Other words there, elsewhere and later on.\n\n"
                b"Same words here and there again and again.",
                "a.txt",
            ),
            doc_id="d",
            doc_sha256="s",
        )
        hashes = [c.content_hash for c in chunks]
        assert len(hashes) == 3 and all(len(h) == 16 for h in hashes)
        assert hashes[0] == hashes[2] != hashes[1]


class TestConfig:
    @pytest.mark.parametrize(
        "kwargs",
        [
            {"target_tokens": 15},
            {"target_tokens": 0},
            {"target_tokens": -256},
            {"overlap": -0.01},
            {"overlap": 0.5},
            {"overlap": 1.0},
        ],
    )
    def test_invalid_config(self, kwargs):
        with pytest.raises(ValueError):
            Chunker(**kwargs)

    @pytest.mark.parametrize("kwargs", [{"target_tokens": 16}, {"overlap": 0}, {"overlap": 0.49}])
    def test_boundary_config_is_valid(self, kwargs):
        Chunker(**kwargs)


class TestCountTokens:
    def test_basics(self):
        assert count_tokens("") == 0
        assert count_tokens("   \n\t") == 0
        assert count_tokens("Hello, world!") == 4
        assert count_tokens("a" * 25) == 3  # long words count more

    @pytest.mark.slow
    def test_close_to_the_minilm_tokenizer(self):
        from rag.embedding import SentenceTransformerEmbedder

        tokenizer = SentenceTransformerEmbedder().model.tokenizer
        prose = (
            "The committee met on Tuesday to review the annual budget. After a long discussion, "
            "members agreed that the library would receive additional funding for new books, "
            "while the maintenance of the old building would be postponed until next spring. "
            "Several residents expressed concern about the decision, arguing that the roof had "
            "been leaking for years and that repairs could not wait much longer. The chair "
            "promised to revisit the matter at the next meeting, once the engineers had "
            "submitted their report and an independent contractor had estimated the costs."
        )
        real = len(tokenizer(prose, add_special_tokens=False)["input_ids"])
        assert real > 80
        assert 0.75 * real <= count_tokens(prose) <= 1.25 * real
