"""rag.metrics: ranking and answer metrics checked against hand-computed values."""

from __future__ import annotations

import math

import pytest

from rag.metrics import (
    answer_contains,
    mean,
    ndcg_at_k,
    normalize_answer,
    precision_at_k,
    recall_at_k,
    reciprocal_rank,
    share,
    token_f1,
)

LOG2_3 = math.log2(3)  # the discount at rank 2: 1.58496...


class TestRecallAtK:
    def test_single_relevant_is_hit_at_k(self):
        ranked = ["a", "b", "c"]
        assert recall_at_k(ranked, {"b"}, 1) == 0.0
        assert recall_at_k(ranked, {"b"}, 2) == 1.0
        assert recall_at_k(ranked, {"b"}, 10) == 1.0  # k past the end of the list
        assert recall_at_k(ranked, {"z"}, 10) == 0.0

    def test_share_of_several_relevant(self):
        ranked = ["a", "x", "b", "y"]
        assert recall_at_k(ranked, {"a", "b"}, 1) == 0.5
        assert recall_at_k(ranked, {"a", "b"}, 2) == 0.5
        assert recall_at_k(ranked, {"a", "b"}, 3) == 1.0
        assert recall_at_k(ranked, {"a", "b", "c", "d"}, 4) == 0.5

    def test_repeats_count_once_and_keep_their_slot(self):
        assert recall_at_k(["a", "a", "b"], {"a", "b"}, 2) == 0.5
        assert recall_at_k(["a", "a", "b"], {"a", "b"}, 3) == 1.0

    def test_empty_ranking(self):
        assert recall_at_k([], {"a"}, 5) == 0.0


class TestPrecisionAtK:
    def test_hand_computed(self):
        assert precision_at_k(["a", "x", "b", "y"], {"a", "b"}, 2) == 0.5
        assert precision_at_k(["a", "x", "b", "y"], {"a", "b"}, 4) == 0.5
        assert precision_at_k(["a", "b"], {"a", "b"}, 1) == 1.0

    def test_short_list_counts_empty_slots_as_misses(self):
        assert precision_at_k(["a", "x"], {"a"}, 5) == pytest.approx(0.2)

    def test_repeats_do_not_score_twice(self):
        assert precision_at_k(["a", "a"], {"a"}, 2) == 0.5


class TestReciprocalRank:
    def test_first_relevant_rank(self):
        assert reciprocal_rank(["a"], {"a"}) == 1.0
        assert reciprocal_rank(["x", "y", "a"], {"a"}) == pytest.approx(1 / 3)
        assert reciprocal_rank(["x", "b", "a"], {"a", "b"}) == 0.5  # the first relevant counts

    def test_cut_off_at_k(self):
        assert reciprocal_rank(["x", "y", "a"], {"a"}, 3) == pytest.approx(1 / 3)
        assert reciprocal_rank(["x", "y", "a"], {"a"}, 2) == 0.0

    def test_not_found(self):
        assert reciprocal_rank(["x", "y"], {"a"}) == 0.0
        assert reciprocal_rank([], {"a"}, 10) == 0.0

    def test_a_repeat_keeps_its_rank(self):
        assert reciprocal_rank(["x", "x", "a"], {"a"}) == pytest.approx(1 / 3)

    def test_mean_of_hand_computed_ranks(self):
        runs = [(["a"], {"a"}), (["x", "a"], {"a"}), (["x", "y", "z", "a"], {"a"}), (["x"], {"a"})]
        assert mean(reciprocal_rank(r, rel, 10) for r, rel in runs) == pytest.approx(
            (1 + 0.5 + 0.25 + 0) / 4
        )


class TestNdcgAtK:
    def test_relevant_first_is_one(self):
        assert ndcg_at_k(["a", "x", "y"], {"a"}, 10) == 1.0

    def test_relevant_second(self):
        # DCG = 1 / log2(3); IDCG = 1 / log2(2) = 1
        assert ndcg_at_k(["x", "a"], {"a"}, 10) == pytest.approx(1 / LOG2_3)
        assert ndcg_at_k(["x", "a"], {"a"}, 10) == pytest.approx(0.63093, abs=1e-5)

    def test_two_relevant(self):
        # DCG = 1/log2(2) + 1/log2(4) = 1.5; IDCG = 1 + 1/log2(3) = 1.63093
        assert ndcg_at_k(["a", "x", "b"], {"a", "b"}, 10) == pytest.approx(1.5 / (1 + 1 / LOG2_3))
        assert ndcg_at_k(["a", "x", "b"], {"a", "b"}, 10) == pytest.approx(0.91972, abs=1e-5)

    def test_graded_gains(self):
        # DCG = 1/1 + 3/log2(3) = 2.89279; IDCG = 3/1 + 1/log2(3) = 3.63093
        gains = {"a": 3.0, "b": 1.0}
        assert ndcg_at_k(["b", "a"], gains, 10) == pytest.approx(0.79671, abs=1e-5)
        assert ndcg_at_k(["a", "b"], gains, 10) == pytest.approx(1.0)

    def test_ideal_is_cut_at_k_too(self):
        relevant = {"a", "b", "c"}
        assert ndcg_at_k(["x", "a"], relevant, 1) == 0.0
        # DCG = 1/log2(3); IDCG over the best 2 of 3 = 1 + 1/log2(3)
        assert ndcg_at_k(["x", "a"], relevant, 2) == pytest.approx(0.38685, abs=1e-5)

    def test_zero_gains_only(self):
        assert ndcg_at_k(["a"], {"a": 0.0}, 5) == 0.0

    def test_repeat_earns_nothing(self):
        assert ndcg_at_k(["a", "a"], {"a": 1.0}, 2) == 1.0


class TestErrorsAndMean:
    @pytest.mark.parametrize(
        "call",
        [
            lambda: recall_at_k(["a"], set(), 1),
            lambda: precision_at_k(["a"], set(), 1),
            lambda: reciprocal_rank(["a"], set()),
            lambda: ndcg_at_k(["a"], {}, 1),
        ],
    )
    def test_no_relevant_ids_is_undefined(self, call):
        with pytest.raises(ValueError, match="no relevant ids"):
            call()

    @pytest.mark.parametrize("k", [0, -1])
    def test_k_must_be_positive(self, k):
        for metric in (recall_at_k, precision_at_k, reciprocal_rank, ndcg_at_k):
            with pytest.raises(ValueError, match="k must be at least 1"):
                metric(["a"], {"a"}, k)

    def test_negative_gain(self):
        with pytest.raises(ValueError, match="gains"):
            ndcg_at_k(["a"], {"a": -1.0}, 1)

    def test_mean(self):
        assert mean([1.0, 0.0, 0.5]) == 0.5
        assert mean(x for x in (0.25, 0.75)) == 0.5
        assert mean([]) == 0.0


class TestAnswerMetrics:
    def test_normalisation_drops_case_markers_punctuation_and_articles(self):
        assert normalize_answer("The Eiffel Tower [1][2, 3].") == "eiffel tower"
        assert normalize_answer("  A   cat's  “toy” ") == "cat s toy"

    def test_contains_whole_words_only(self):
        assert answer_contains("It was built by Gustave Eiffel [1].", "gustave eiffel") == 1.0
        assert answer_contains("Paris, France", "the paris") == 1.0
        assert answer_contains("Parisian cafes", "Paris") == 0.0  # not a prefix of a word
        assert answer_contains("", "Paris") == 0.0

    def test_f1_hand_computed(self):
        # answer tokens: eiffel tower in paris (4); reference: eiffel tower (2); common 2
        # precision 2/4, recall 2/2 -> f1 = 2 * 0.5 * 1 / 1.5 = 2/3
        assert token_f1("The Eiffel Tower in Paris [1].", "Eiffel Tower") == pytest.approx(2 / 3)
        assert token_f1("Eiffel Tower", "the Eiffel Tower") == 1.0
        assert token_f1("London", "Paris") == 0.0
        assert token_f1("", "Paris") == 0.0

    def test_f1_counts_repeated_tokens_once_each(self):
        # answer: new new york (3), reference: new york (2): common = min counts = 2
        # precision 2/3, recall 1 -> 0.8
        assert token_f1("new new york", "New York") == pytest.approx(0.8)

    @pytest.mark.parametrize("metric", [answer_contains, token_f1])
    def test_empty_reference_is_undefined(self, metric):
        with pytest.raises(ValueError, match="empty reference"):
            metric("anything", " the . ")

    def test_share(self):
        assert share(3, 4) == 0.75
        assert share(0, 0) is None
