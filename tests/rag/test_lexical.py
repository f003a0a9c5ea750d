"""rag.lexical: tokens, stable term ids and BM25 document/query weights."""

from __future__ import annotations

import os
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from rag.lexical import STOPWORDS, BM25Encoder, term_id, terms, tokenize
from rag.types import SparseVector

ROOT = Path(__file__).resolve().parents[2]


def weight_of(vector: SparseVector, token: str) -> float:
    (term,) = terms(token)
    return dict(zip(vector.indices, vector.values, strict=True))[term_id(term)]


def ids(*words: str) -> set[int]:
    return {term_id(t) for t in terms(" ".join(words))}


class TestTokenize:
    def test_lowercases_and_drops_stop_words(self):
        assert tokenize("The Quick brown FOX and the lazy Dog, if it is NOT here!") == [
            "quick",
            "brown",
            "fox",
            "lazy",
            "dog",
            "here",
        ]

    def test_only_stop_words(self):
        assert tokenize("The and of To IN it is") == []
        assert tokenize("") == []

    def test_stop_list_is_lowercase(self):
        assert all(word == word.lower() for word in STOPWORDS)
        assert {"the", "and", "of"} <= STOPWORDS

    def test_unicode_words_and_numbers(self):
        assert tokenize("Café RÉSUMÉ 2024 naïve_user") == ["café", "résumé", "2024", "naïve_user"]

    def test_very_long_tokens_are_dropped(self):
        assert tokenize("short " + "x" * 40 + " " + "y" * 39) == ["short", "y" * 39]


class TestTermIds:
    def test_term_id_is_crc32_of_utf8(self):
        assert term_id("hello") == zlib.crc32(b"hello") == 907060870
        assert term_id("café") == zlib.crc32("café".encode())

    def test_stable_across_calls(self):
        assert [term_id(t) for t in ("alpha", "beta", "alpha")] == [
            term_id("alpha"),
            term_id("beta"),
            term_id("alpha"),
        ]
        assert term_id("alpha") != term_id("beta")

    def test_stable_across_processes(self):
        # Python's hash() is salted per process; term ids must not be.
        code = "from rag.lexical import term_id; print(term_id('zyzzyva'), term_id('qdrant'))"
        outputs = set()
        for seed in ("1", "2"):
            env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(ROOT)}
            result = subprocess.run(
                [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
            )
            outputs.add(result.stdout.strip())
        assert outputs == {f"{term_id('zyzzyva')} {term_id('qdrant')}"}

    def test_ids_fit_unsigned_32_bits(self):
        assert all(0 <= term_id(t) < 2**32 for t in ("a", "zzzz", "日本", "x" * 39))


class TestEncodeDocument:
    def test_sorted_unique_indices(self):
        vector = BM25Encoder().encode_document(
            "Gamma beta alpha beta gamma gamma delta, the DELTA of alpha."
        )
        assert list(vector.indices) == sorted(set(vector.indices))
        assert len(vector.indices) == len(vector.values) == 4
        assert set(vector.indices) == ids("alpha", "beta", "gamma", "delta")
        assert all(isinstance(v, float) and v > 0 for v in vector.values)

    def test_term_frequency_saturates(self):
        encoder = BM25Encoder()
        filler = [f"filler{n}" for n in range(40)]
        ten = encoder.encode_document(" ".join(["apple"] * 10 + filler[:31]))
        one = encoder.encode_document(" ".join(["apple"] + filler[:40]))  # same length: 41
        w10, w1 = weight_of(ten, "apple"), weight_of(one, "apple")
        assert w1 < w10 < 10 * w1
        assert w10 < 3 * w1  # strongly saturated, not linear
        assert all(v < encoder.k1 + 1 for v in ten.values)

    def test_longer_documents_weigh_terms_less(self):
        encoder = BM25Encoder()
        short = encoder.encode_document("apple pie")
        long = encoder.encode_document("apple " + " ".join(f"w{n}" for n in range(300)))
        assert weight_of(long, "apple") < weight_of(short, "apple")
        flat = BM25Encoder(b=0)  # no length normalisation
        assert weight_of(flat.encode_document("apple pie"), "apple") == pytest.approx(
            weight_of(flat.encode_document("apple " + "pie " * 300), "apple")
        )

    def test_empty_and_stop_word_documents(self):
        assert BM25Encoder().encode_document("") == SparseVector((), ())
        assert BM25Encoder().encode_document("the and of") == SparseVector((), ())


class TestEncodeQuery:
    def test_weights_are_one_and_duplicates_collapse(self):
        vector = BM25Encoder().encode_query("Budget budget BUDGET report for the library")
        assert set(vector.values) == {1.0}
        assert list(vector.indices) == sorted(ids("budget", "report", "library"))

    def test_stop_word_query_is_empty(self):
        assert BM25Encoder().encode_query("what is the") == SparseVector((), ())


class TestParameters:
    @pytest.mark.parametrize(
        "kwargs",
        [
            {"k1": 0},
            {"k1": -1.2},
            {"b": -0.1},
            {"b": 1.01},
            {"avg_doc_len": 0},
            {"avg_doc_len": -10},
        ],
    )
    def test_rejects_bad_parameters(self, kwargs):
        with pytest.raises(ValueError, match="BM25 needs"):
            BM25Encoder(**kwargs)

    @pytest.mark.parametrize("kwargs", [{"b": 0}, {"b": 1}, {"k1": 0.01}, {"avg_doc_len": 1}])
    def test_accepts_boundary_parameters(self, kwargs):
        BM25Encoder(**kwargs).encode_document("works fine")


class TestStemming:
    def test_forms_of_a_word_share_one_term(self):
        assert len(set(terms("configure configured configuring configuration"))) == 1
        assert terms("Libraries library") == ["librari", "librari"]

    def test_a_question_finds_a_passage_worded_in_another_form(self):
        encoder = BM25Encoder()
        passage = encoder.encode_document("Configuring the proxy: the proxy settings are stored.")
        query = encoder.encode_query("How is a proxy configured, and where is its setting?")
        shared = set(query.indices) & set(passage.indices)
        assert shared == ids("proxy", "configure", "setting")

    def test_without_a_language_words_are_kept_as_they_are(self):
        vector = BM25Encoder(language=None).encode_query("configuring libraries")
        assert set(vector.indices) == {term_id("configuring"), term_id("libraries")}

    def test_an_unknown_language_is_refused_with_the_choices(self):
        with pytest.raises(ValueError, match="no Snowball stemmer for 'klingon'.*english"):
            BM25Encoder(language="klingon")

    def test_stems_are_the_same_from_many_threads(self):
        from concurrent.futures import ThreadPoolExecutor

        words = [f"{w}{s}" for w in ("connect", "report", "index") for s in ("", "ed", "ing", "s")]
        expected = terms(" ".join(words))
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(lambda _: terms(" ".join(words)), range(200)))
        assert all(r == expected for r in results)
