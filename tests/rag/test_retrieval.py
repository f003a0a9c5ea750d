"""rag.retrieval: RRF and near-duplicate collapsing by hand-computed cases, then the hybrid
Retriever end to end with the real packaged MiniLM and the real embedded store (EdgeStore)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pytest

from rag.chunking import chunk_id_for
from rag.embedding import SentenceTransformerEmbedder
from rag.lexical import BM25Encoder
from rag.retrieval import (
    Retriever,
    collapse_near_duplicates,
    content_first,
    heading_key,
    reciprocal_rank_fusion,
    sections_named_first,
)
from rag.store import EdgeStore
from rag.types import Chunk, IndexedChunk, ScoredChunk, SparseVector

# ---------------------------------------------------------------------------------------------
# Reciprocal rank fusion
# ---------------------------------------------------------------------------------------------


class TestReciprocalRankFusion:
    def test_two_lists_hand_computed(self):
        fused = reciprocal_rank_fusion([["a", "b", "c"], ["b", "c", "d"]], k=60)
        assert [key for key, _ in fused] == ["b", "c", "a", "d"]
        scores = dict(fused)
        assert scores["b"] == pytest.approx(1 / 62 + 1 / 61)  # 0.032522
        assert scores["c"] == pytest.approx(1 / 63 + 1 / 62)  # 0.032002
        assert scores["a"] == pytest.approx(1 / 61)  # 0.016393
        assert scores["d"] == pytest.approx(1 / 63)  # 0.015873

    def test_k_zero_is_plain_reciprocal_rank(self):
        fused = reciprocal_rank_fusion([["x", "y", "z"]], k=0)
        assert fused == [("x", 1.0), ("y", 0.5), ("z", pytest.approx(1 / 3))]

    def test_default_k_is_60(self):
        assert reciprocal_rank_fusion([["x"]]) == [("x", pytest.approx(1 / 61))]

    def test_weights(self):
        fused = reciprocal_rank_fusion([["d1", "d2"], ["l1", "d2"]], k=10, weights=[2.0, 0.5])
        scores = dict(fused)
        assert scores["d1"] == pytest.approx(2 / 11)  # 0.181818
        assert scores["d2"] == pytest.approx(2 / 12 + 0.5 / 12)  # 0.208333
        assert scores["l1"] == pytest.approx(0.5 / 11)  # 0.045455
        assert [key for key, _ in fused] == ["d2", "d1", "l1"]

    def test_zero_weight_silences_a_list(self):
        fused = reciprocal_rank_fusion([["a", "b"], ["b", "c"]], k=60, weights=[1.0, 0.0])
        assert fused == [("a", pytest.approx(1 / 61)), ("b", pytest.approx(1 / 62)), ("c", 0.0)]

    def test_ties_go_to_best_rank_then_first_seen(self):
        # k=0: a = 1, b = 1, y = 1 (all rank 1 somewhere) and x = 1/2 + 1/2 = 1 (rank 2 twice)
        fused = reciprocal_rank_fusion([["a", "x"], ["b", "x"], ["y"]], k=0)
        assert [key for key, _ in fused] == ["a", "b", "y", "x"]
        assert all(score == pytest.approx(1.0) for _, score in fused)
        # equal scores and ranks: the first list read wins
        assert [key for key, _ in reciprocal_rank_fusion([["p"], ["q"]])] == ["p", "q"]
        assert [key for key, _ in reciprocal_rank_fusion([["q"], ["p"]])] == ["q", "p"]

    def test_repeat_within_a_list_counts_once(self):
        fused = dict(reciprocal_rank_fusion([["a", "a", "b"]], k=0))
        assert fused == {"a": 1.0, "b": pytest.approx(1 / 3)}  # b keeps its position, 3

    def test_empty(self):
        assert reciprocal_rank_fusion([]) == []
        assert reciprocal_rank_fusion([[], []]) == []
        assert reciprocal_rank_fusion([[], ["a"]]) == [("a", pytest.approx(1 / 61))]

    def test_does_not_mutate_inputs(self):
        lists = [["a", "b"], ("b", "c")]
        reciprocal_rank_fusion(lists, weights=(1.0, 2.0))
        assert lists == [["a", "b"], ("b", "c")]

    @pytest.mark.parametrize(
        "kwargs, message",
        [
            ({"k": -1}, "RRF k"),
            ({"k": float("inf")}, "RRF k"),
            ({"weights": [1.0]}, "1 weights for 2 lists"),
            ({"weights": [1.0, -0.5]}, "weights must be"),
            ({"weights": [1.0, float("nan")]}, "weights must be"),
        ],
    )
    def test_rejects_bad_settings(self, kwargs, message):
        with pytest.raises(ValueError, match=message):
            reciprocal_rank_fusion([["a"], ["b"]], **kwargs)


# ---------------------------------------------------------------------------------------------
# Near-duplicate collapsing
# ---------------------------------------------------------------------------------------------


def hit(chunk_id: str, text: str, score: float = 0.0, document_id: str = "doc") -> ScoredChunk:
    return ScoredChunk(
        chunk_id=chunk_id,
        document_id=document_id,
        collection="c",
        page=None,
        start=0,
        end=len(text),
        text=text,
        score=score,
    )


def ids(results: Sequence[ScoredChunk]) -> list[str]:
    return [r.chunk_id for r in results]


TEN = "w0 w1 w2 w3 w4 w5 w6 w7 w8 w9"


class TestCollapseNearDuplicates:
    def test_same_passage_in_two_documents_keeps_the_better_ranked(self):
        results = collapse_near_duplicates(
            [
                hit("1", "Refunds take ten days.", 0.9, "handbook"),
                hit("2", "Parking is free.", 0.8),
                hit("3", "Refunds take ten days.", 0.7, "handbook-copy"),
            ]
        )
        assert ids(results) == ["1", "2"]
        assert results[0].document_id == "handbook"

    def test_case_punctuation_and_spacing_do_not_matter(self):
        results = collapse_near_duplicates(
            [hit("1", "Refunds take ten days."), hit("2", "REFUNDS  take\nten days")]
        )
        assert ids(results) == ["1"]

    def test_containment_threshold_hand_computed(self):
        # 9 of the candidate's 10 distinct words are in the kept chunk: 0.9 -> a duplicate
        nine = collapse_near_duplicates([hit("1", TEN), hit("2", TEN.replace("w9", "new"))])
        assert ids(nine) == ["1"]
        # 8 of 10: 0.8 -> kept
        eight = TEN.replace("w8", "new").replace("w9", "other")
        assert ids(collapse_near_duplicates([hit("1", TEN), hit("2", eight)])) == ["1", "2"]
        assert ids(collapse_near_duplicates([hit("1", TEN), hit("2", eight)], threshold=0.8)) == [
            "1"
        ]
        assert ids(collapse_near_duplicates([hit("1", TEN), hit("2", TEN)], threshold=1.0)) == ["1"]

    def test_short_chunk_inside_a_better_ranked_longer_one_is_dropped(self):
        long = "The fuser unit overheats when the printer runs for more than two hours."
        results = collapse_near_duplicates([hit("long", long), hit("short", "the fuser unit")])
        assert ids(results) == ["long"]

    def test_longer_chunk_after_a_short_one_is_kept_when_it_adds_words(self):
        # the candidate's 13 distinct words: only 3 are in the kept chunk (3/13 = 0.23)
        long = "The fuser unit overheats when the printer runs for more than two hours."
        results = collapse_near_duplicates([hit("short", "the fuser unit"), hit("long", long)])
        assert ids(results) == ["short", "long"]

    def test_overlapping_neighbours_of_one_document_are_kept(self):
        first = " ".join(f"t{n}" for n in range(0, 50))
        second = " ".join(f"t{n}" for n in range(40, 90))  # 10 of 50 words shared: 0.2
        assert ids(collapse_near_duplicates([hit("1", first), hit("2", second)])) == ["1", "2"]

    def test_compares_with_every_kept_chunk_not_just_the_last(self):
        results = collapse_near_duplicates(
            [hit("a", "alpha beta gamma"), hit("b", "delta epsilon"), hit("c", "gamma beta alpha")]
        )
        assert ids(results) == ["a", "b"]

    def test_limit_stops_after_enough_distinct_chunks(self):
        chunks = [hit("1", "one"), hit("2", "one"), hit("3", "two"), hit("4", "three")]
        assert ids(collapse_near_duplicates(chunks, limit=2)) == ["1", "3"]
        assert ids(collapse_near_duplicates(chunks, limit=10)) == ["1", "3", "4"]

    def test_returns_the_same_objects_in_order_without_mutating(self):
        chunks = [hit("1", "one", 0.5), hit("2", "two", 0.9)]
        before = list(chunks)
        results = collapse_near_duplicates(chunks)
        assert results[0] is chunks[0] and results[1] is chunks[1]
        assert chunks == before

    def test_empty(self):
        assert collapse_near_duplicates([]) == []

    @pytest.mark.parametrize("threshold", [0, -0.5, 1.01])
    def test_rejects_bad_threshold(self, threshold):
        with pytest.raises(ValueError, match="threshold"):
            collapse_near_duplicates([], threshold=threshold)


# ---------------------------------------------------------------------------------------------
# The Retriever, end to end: real MiniLM, real embedded Qdrant
# ---------------------------------------------------------------------------------------------

HANDBOOK = "handbook"
BOARD = "board"

# (document, collection, text)
CORPUS = [
    # the answer to CODE_QUERY: a long log that mentions the code once, in passing
    (
        "facilities-log",
        HANDBOOK,
        "Third floor facilities log: carpets are cleaned on Mondays, windows on Thursdays, the "
        "lift is inspected in May, and the broken blinds in meeting room four are tracked as "
        "QX7731.",
    ),
    # about fault numbers in general: closer to CODE_QUERY in meaning, but without its words
    ("fault-manual", HANDBOOK, "Fault messages on office machines are decoded with the manual."),
    ("unknown-faults", HANDBOOK, "Look up unknown fault numbers in the manual of the machine."),
    ("travel", HANDBOOK, "Travel expenses are refunded once receipts reach the finance office."),
    ("kitchen", HANDBOOK, "The kitchen fridge is emptied every Friday afternoon."),
    ("parking", HANDBOOK, "Parking spaces in the garage are assigned by seniority."),
    ("holidays", HANDBOOK, "Holiday requests need approval from your team lead two weeks ahead."),
    # the same passage again in another document (a copy uploaded under a new name)
    (
        "travel-copy",
        HANDBOOK,
        "Travel expenses are refunded once receipts reach the finance office.",
    ),
    ("minutes", BOARD, "Board minutes: QX7731 budget cuts were approved in March."),
]
# A rare code word: the dense half ranks general passages about fault numbers above the one
# passage that has the code; only BM25 matches it exactly (no other query word is in the corpus).
CODE_QUERY = "Meaning of error code QX7731?"
CODE_ANSWER = "facilities-log"
# A paraphrase of the travel passage that shares none of its words (nor any corpus word).
PARAPHRASE_QUERY = "How can staff get their money back after a business journey?"


@pytest.fixture(scope="module")
def embedder() -> SentenceTransformerEmbedder:
    embedder = SentenceTransformerEmbedder()
    embedder.embed(["load the model once"])
    return embedder


@pytest.fixture(scope="module")
def indexed(embedder, tmp_path_factory) -> Iterator[tuple[EdgeStore, dict[str, str]]]:
    """The corpus in a real embedded store; yields the store and chunk ids by document."""
    encoder = BM25Encoder()
    store = EdgeStore(path=str(tmp_path_factory.mktemp("retrieval") / "edge"), dimension=384)
    chunks = [
        Chunk(
            id=chunk_id_for(f"sha-{document}", 0),
            doc_id=document,
            index=0,
            page=None,
            start=0,
            end=len(text),
            text=text,
            content_hash=f"hash-{document}",
        )
        for document, _, text in CORPUS
    ]
    vectors = embedder.embed([c.embedding_text for c in chunks])
    store.upsert(
        [
            IndexedChunk(
                chunk=chunk,
                dense=tuple(float(x) for x in vector),
                sparse=encoder.encode_document(chunk.text),
                payload={"collection": collection, "document_name": f"{chunk.doc_id}.txt"},
            )
            for chunk, vector, (_, collection, _) in zip(chunks, vectors, CORPUS, strict=True)
        ]
    )
    yield store, {c.doc_id: c.id for c in chunks}
    store.close()


@pytest.fixture
def retriever(embedder, indexed) -> Retriever:
    return Retriever(embedder=embedder, store=indexed[0])


def documents(results: Sequence[ScoredChunk]) -> list[str]:
    return [r.document_id for r in results]


@pytest.mark.slow
class TestRetrieverEndToEnd:
    def test_warm_up(self, retriever):
        retriever.warm_up()

    def test_rare_code_is_found_by_the_lexical_half_and_comes_first(self, retriever):
        dense = retriever.search(CODE_QUERY, k=5, collections=[HANDBOOK], mode="dense")
        assert documents(dense)[0] != CODE_ANSWER  # meaning alone misses it
        lexical = retriever.search(CODE_QUERY, k=5, collections=[HANDBOOK], mode="lexical")
        assert documents(lexical) == [CODE_ANSWER]  # no other handbook passage has the code

        (best, *rest) = retriever.search(CODE_QUERY, k=5, collections=[HANDBOOK])
        assert best.document_id == CODE_ANSWER
        assert best.lexical_rank == 1 and best.lexical_score and best.lexical_score > 0
        assert best.dense_rank is not None and best.dense_rank > 1
        assert best.dense_score is not None
        assert all(r.lexical_rank is None for r in rest)  # everything else is dense-only
        assert documents(rest)[0] == documents(dense)[0]

    def test_paraphrase_is_found_by_the_dense_half_and_comes_first(self, retriever):
        assert retriever.search(PARAPHRASE_QUERY, k=5, mode="lexical") == []
        (best, *_) = retriever.search(PARAPHRASE_QUERY, k=5)
        assert best.document_id in ("travel", "travel-copy")
        assert best.dense_rank == 1 and best.lexical_rank is None and best.lexical_score is None
        assert best.dense_score is not None and best.dense_score > 0.3

    def test_hybrid_score_is_the_rrf_of_the_component_ranks(self, retriever):
        # the RRF settings before DBSF became the default: rrf_k=2, dense_weight=0.5
        rrf = Retriever(
            embedder=retriever.embedder, store=retriever.store, fusion="rrf", dense_weight=0.5
        )
        results = rrf.search(CODE_QUERY, k=5, collections=[HANDBOOK])
        assert results[0].score == pytest.approx(1 / 3 + 0.5 / (2 + results[0].dense_rank))
        for result in results[1:]:
            assert result.score == pytest.approx(0.5 / (2 + result.dense_rank))
        plain = Retriever(
            embedder=retriever.embedder,
            store=retriever.store,
            fusion="rrf",
            rrf_k=60,
            dense_weight=1.0,
            lexical_weight=1.0,
        )
        (best, *_) = plain.search(CODE_QUERY, k=3, collections=[HANDBOOK])
        assert best.document_id == CODE_ANSWER
        assert best.score == pytest.approx(1 / (60 + best.dense_rank) + 1 / 61)

    def test_modes_keep_their_own_scores(self, retriever):
        dense = retriever.search(CODE_QUERY, k=3, collections=[HANDBOOK], mode="dense")
        assert len(dense) == 3
        assert [r.dense_rank for r in dense] == sorted(r.dense_rank for r in dense)
        for r in dense:
            assert r.score == r.dense_score and r.lexical_score is None and r.lexical_rank is None
        (lexical,) = retriever.search(CODE_QUERY, k=3, collections=[HANDBOOK], mode="lexical")
        assert lexical.score == lexical.lexical_score and lexical.lexical_rank == 1
        assert lexical.dense_score is None and lexical.dense_rank is None
        default_dense = Retriever(embedder=retriever.embedder, store=retriever.store, mode="dense")
        assert default_dense.search(CODE_QUERY, k=3, collections=[HANDBOOK]) == dense

    def test_collection_filter_excludes_other_collections(self, retriever):
        everywhere = retriever.search(CODE_QUERY, k=10)
        assert "minutes" in documents(everywhere)
        handbook = retriever.search(CODE_QUERY, k=10, collections=[HANDBOOK])
        assert handbook and {r.collection for r in handbook} == {HANDBOOK}
        board = retriever.search(CODE_QUERY, k=10, collections=[BOARD])
        assert documents(board) == ["minutes"]
        assert retriever.search(CODE_QUERY, k=10, collections=[]) == []
        assert retriever.search(CODE_QUERY, k=10, collections=["nobody"]) == []

    def test_collection_filter_runs_inside_both_store_queries(self, retriever):
        spy = SpyStore(retriever.store)
        spied = Retriever(embedder=retriever.embedder, store=spy)
        spied.search(CODE_QUERY, k=3, collections=[HANDBOOK])
        assert spy.calls == [("dense", 100, [HANDBOOK]), ("lexical", 100, [HANDBOOK])]
        spy.calls.clear()
        spied.search(CODE_QUERY, k=30, mode="dense")
        assert spy.calls == [("dense", 120, None)]  # the pool: max(k * 4, 100)

    def test_duplicates_collapsed(self, retriever, indexed):
        results = retriever.search(PARAPHRASE_QUERY, k=9)
        texts = [r.text for r in results]
        assert len(texts) == len(set(texts))
        assert len(results) == 8  # 9 passages, one of them twice
        assert sum(r.document_id in ("travel", "travel-copy") for r in results) == 1
        keeping = Retriever(embedder=retriever.embedder, store=indexed[0], dedup_threshold=None)
        both = keeping.search(PARAPHRASE_QUERY, k=9)
        assert len(both) == 9
        assert {"travel", "travel-copy"} <= set(documents(both))
        kept = next(r for r in results if r.document_id in ("travel", "travel-copy"))
        first = next(r for r in both if r.document_id in ("travel", "travel-copy"))
        assert kept.chunk_id == first.chunk_id  # the better-ranked copy is the one kept

    def test_min_dense_score_drops_weak_dense_only_hits(self, retriever):
        strict = Retriever(embedder=retriever.embedder, store=retriever.store, min_dense_score=0.9)
        assert documents(strict.search(CODE_QUERY, k=5, collections=[HANDBOOK])) == [CODE_ANSWER]
        assert strict.search(CODE_QUERY, k=5, collections=[HANDBOOK], mode="dense") == []
        assert documents(
            strict.search(CODE_QUERY, k=5, collections=[HANDBOOK], mode="lexical")
        ) == [CODE_ANSWER]
        loose = Retriever(embedder=retriever.embedder, store=retriever.store, min_dense_score=-1)
        assert len(loose.search(PARAPHRASE_QUERY, k=5)) == 5

    def test_k_limits_results(self, retriever):
        assert len(retriever.search(PARAPHRASE_QUERY, k=1)) == 1
        assert len(retriever.search(PARAPHRASE_QUERY, k=3, mode="dense")) == 3

    def test_blank_query(self, retriever):
        assert retriever.search("   ", k=5) == []
        assert retriever.search("the of and", k=3, mode="lexical") == []  # only stop words
        assert len(retriever.search("the of and", k=3)) == 3  # the dense half still answers


# A manual's contents page names every section; the section itself is worded differently.
CONTENTS = (
    "Contents\n1 Travel expenses and refunds ........ 3\n2 Kitchen rules ........ 5\n"
    "3 Parking in the garage ........ 6\n4 Holiday requests ........ 8"
)
SECTION = (
    "Staff who paid for a business trip themselves get the money back once the finance "
    "office has the receipts; refunds are paid with the next salary."
)
HEADING_QUERY = "Travel expenses and refunds"


@pytest.fixture(scope="module")
def manual(embedder, tmp_path_factory) -> Iterator[EdgeStore]:
    """A contents page (navigation) and the section it points to, in a real embedded store."""
    encoder = BM25Encoder()
    store = EdgeStore(path=str(tmp_path_factory.mktemp("manual") / "edge"), dimension=384)
    chunks = [
        Chunk(
            id=chunk_id_for("sha-manual", index),
            doc_id="manual",
            index=index,
            page=page,
            start=0,
            end=len(text),
            text=text,
            kind=kind,
        )
        for index, (page, text, kind) in enumerate(
            [(2, CONTENTS, "navigation"), (3, SECTION, "content")]
        )
    ]
    vectors = embedder.embed([c.embedding_text for c in chunks])
    store.upsert(
        [
            IndexedChunk(
                chunk=chunk,
                dense=tuple(float(x) for x in vector),
                sparse=encoder.encode_document(chunk.embedding_text),
                payload={"collection": HANDBOOK, "document_name": "manual.pdf"},
            )
            for chunk, vector in zip(chunks, vectors, strict=True)
        ]
    )
    yield store
    store.close()


class TestNavigationLast:
    def test_content_first_is_a_stable_partition(self):
        nav = [
            ScoredChunk(**{**vars_of(hit(f"n{i}", "x")), "kind": "navigation"}) for i in range(2)
        ]
        content = [hit(f"c{i}", "y") for i in range(3)]
        mixed = [nav[0], content[0], content[1], nav[1], content[2]]
        assert ids(content_first(mixed)) == ["c0", "c1", "c2", "n0", "n1"]
        assert ids(mixed) == ["n0", "c0", "c1", "n1", "c2"]  # input untouched

    def test_the_kind_survives_the_store(self, manual):
        kinds = {
            hit.page: hit.kind
            for hit in manual.search_lexical(BM25Encoder().encode_query(HEADING_QUERY), k=5)
        }
        assert kinds == {2: "navigation", 3: "content"}

    def test_a_contents_page_that_matches_best_comes_after_the_section(self, embedder, manual):
        # BM25-leaning RRF, so that the contents page wins the fusion (with two passages, DBSF
        # sees two equal-shaped lists and keeps the dense order)
        lean = {"fusion": "rrf", "dense_weight": 0.5}
        unordered = Retriever(embedder=embedder, store=manual, navigation_last=False, **lean)
        assert [h.page for h in unordered.search(HEADING_QUERY, k=2)][0] == 2  # the trap
        ranked = Retriever(embedder=embedder, store=manual, **lean).search(HEADING_QUERY, k=2)
        assert [(h.page, h.kind) for h in ranked] == [(3, "content"), (2, "navigation")]


def section_hit(chunk_id: str, path: tuple[str, ...], page: int, start: int = 0) -> ScoredChunk:
    return ScoredChunk(**{**vars_of(hit(chunk_id, "text")), "heading_path": path, "page": page,
                          "start": start})  # fmt: skip


class TestSectionsNamedFirst:
    TABLES = ("7 Tables", "7.3 TableStyle Commands")

    def test_a_heading_as_query_brings_its_section_first_from_its_start(self):
        ranked = [
            section_hit("elsewhere", ("5 Fonts",), 40),
            section_hit("later", self.TABLES, 87),
            section_hit("parent", ("7 Tables",), 85),
            section_hit("start", self.TABLES, 86, start=10),
            section_hit("first", self.TABLES, 86, start=0),
        ]
        assert ids(sections_named_first("TableStyle commands?", ranked)) == [
            "first", "start", "later", "elsewhere", "parent"
        ]  # fmt: skip

    def test_numbering_and_punctuation_do_not_matter(self):
        assert heading_key("7.3 TableStyle Commands") == heading_key("tablestyle commands?")
        assert heading_key("Chapter 5: Packages") == "packages"
        assert heading_key("A Tour of R") == "a tour of r"  # an article is not a number

    def test_an_ordinary_question_is_not_reordered(self):
        ranked = [section_hit("a", ("5 Fonts",), 40), section_hit("b", self.TABLES, 86)]
        assert ids(sections_named_first("How do I style a table?", ranked)) == ["a", "b"]
        assert ids(sections_named_first("Tables", ranked)) == ["a", "b"]  # only the deepest


def vars_of(chunk: ScoredChunk) -> dict:
    return {name: getattr(chunk, name) for name in ScoredChunk.__slots__}


class SpyStore:
    """The real store, recording what each search asked for."""

    def __init__(self, store: EdgeStore) -> None:
        self.store = store
        self.calls: list[tuple[str, int, list[str] | None]] = []

    def ensure_collection(self) -> None:
        self.store.ensure_collection()

    def search_dense(self, vector, *, k, collections=None):
        self.calls.append(("dense", k, None if collections is None else list(collections)))
        return self.store.search_dense(vector, k=k, collections=collections)

    def search_lexical(self, vector: SparseVector, *, k, collections=None):
        self.calls.append(("lexical", k, None if collections is None else list(collections)))
        return self.store.search_lexical(vector, k=k, collections=collections)


# ---------------------------------------------------------------------------------------------
# Settings
# ---------------------------------------------------------------------------------------------


class TestSettings:
    @pytest.mark.parametrize(
        "kwargs, message",
        [
            ({"mode": "semantic"}, "mode must be one of hybrid, dense, lexical"),
            ({"pool_multiplier": 0}, "pool_multiplier"),
            ({"pool_min": 0}, "pool_min"),
            ({"rrf_k": -1}, "rrf_k"),
            ({"rrf_k": float("nan")}, "rrf_k"),
            ({"dense_weight": -1}, "weight"),
            ({"dense_weight": 0, "lexical_weight": 0}, "not both 0"),
            ({"lexical_weight": float("inf")}, "weight"),
            ({"dedup_threshold": 0}, "dedup_threshold"),
            ({"dedup_threshold": 1.5}, "dedup_threshold"),
            ({"min_dense_score": 1.5}, "min_dense_score"),
        ],
    )
    def test_rejects_bad_settings(self, kwargs, message):
        with pytest.raises(ValueError, match=message):
            Retriever(embedder=None, store=None, **kwargs)  # type: ignore[arg-type]

    def test_defaults_and_pool(self):
        retriever = Retriever(embedder=None, store=None)  # type: ignore[arg-type]
        assert retriever.mode == "hybrid" and retriever.fusion == "dbsf"
        assert (retriever.dense_weight, retriever.lexical_weight) == (1.0, 1.0)
        assert retriever.pool_size(5) == 100 and retriever.pool_size(40) == 160
        assert (
            Retriever(embedder=None, store=None, pool_min=5, pool_multiplier=2).pool_size(10) == 20
        )  # type: ignore[arg-type]

    def test_bad_k_and_mode_per_call(self):
        retriever = Retriever(embedder=None, store=None)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="k must be at least 1"):
            retriever.search("query", k=0)
        with pytest.raises(ValueError, match="mode must be one of"):
            retriever.search("query", k=3, mode="fuzzy")  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="not a string"):
            retriever.search("query", k=3, collections="hr")
