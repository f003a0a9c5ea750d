"""Metrics for evaluation: ranking metrics (one ranked list of ids against the relevant ids) and
answer metrics (an answer's text against a reference answer, SQuAD-style).

Ranks are 1-based and only the first ``k`` results count. An id listed twice counts once, at its
first position, so a retriever cannot score by repeating a hit. Relevance is binary (a set of
ids) except for :func:`ndcg_at_k`, which also takes graded gains (a mapping id -> gain).
Average a metric over queries with :func:`mean`.
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from collections.abc import Collection, Hashable, Iterable, Mapping, Sequence

_REPEAT = object()  # stands in for a repeated id: keeps its slot, is never relevant


def _top(ranked: Sequence[Hashable], k: int | None) -> list[Hashable]:
    if k is not None and k < 1:
        raise ValueError("k must be at least 1")
    seen: set[Hashable] = set()
    top: list[Hashable] = []
    for item in ranked[:k] if k is not None else ranked:
        top.append(_REPEAT if item in seen else item)
        seen.add(item)
    return top


def _require(relevant: Collection[Hashable]) -> None:
    if not relevant:
        raise ValueError("no relevant ids: the metric is undefined for this query")


def recall_at_k(ranked: Sequence[Hashable], relevant: Collection[Hashable], k: int) -> float:
    """Share of the relevant ids found in the top ``k`` (hit@k when there is one relevant id)."""
    _require(relevant)
    found = sum(1 for item in _top(ranked, k) if item in relevant)
    return found / len(relevant)


def precision_at_k(ranked: Sequence[Hashable], relevant: Collection[Hashable], k: int) -> float:
    """Share of the top ``k`` slots holding a relevant id (an empty slot counts as a miss)."""
    _require(relevant)
    return sum(1 for item in _top(ranked, k) if item in relevant) / k


def reciprocal_rank(
    ranked: Sequence[Hashable], relevant: Collection[Hashable], k: int | None = None
) -> float:
    """``1 / rank`` of the first relevant id within the top ``k`` (all when None), else 0."""
    _require(relevant)
    for rank, item in enumerate(_top(ranked, k), start=1):
        if item in relevant:
            return 1.0 / rank
    return 0.0


def ndcg_at_k(
    ranked: Sequence[Hashable],
    relevant: Collection[Hashable] | Mapping[Hashable, float],
    k: int,
) -> float:
    """Normalised discounted cumulative gain: ``sum gain_i / log2(i + 1)`` over the top ``k``,
    divided by the same sum for the ideal order. ``relevant`` is a set (gain 1 each) or a
    mapping of graded gains (>= 0)."""
    _require(relevant)
    gains: Mapping[Hashable, float] = (
        relevant if isinstance(relevant, Mapping) else dict.fromkeys(relevant, 1.0)
    )
    if any(g < 0 for g in gains.values()):
        raise ValueError("gains must be >= 0")
    dcg = sum(
        gains.get(item, 0.0) / math.log2(rank + 1)
        for rank, item in enumerate(_top(ranked, k), start=1)
    )
    ideal = sorted(gains.values(), reverse=True)[:k]
    idcg = sum(g / math.log2(rank + 1) for rank, g in enumerate(ideal, start=1))
    return dcg / idcg if idcg > 0 else 0.0


def mean(values: Iterable[float]) -> float:
    """Arithmetic mean; 0.0 for no values (an empty evaluation scores nothing)."""
    values = list(values)
    return sum(values) / len(values) if values else 0.0


# ---------------------------------------------------------------------------------------------
# Answers against a reference (SQuAD's normalisation: case, punctuation, articles, spaces)
# ---------------------------------------------------------------------------------------------

_MARKER_RE = re.compile(r"\[\s*\d{1,3}(?:\s*[,;\u2013-]\s*\d{1,3})*\s*\]")
_ARTICLES_RE = re.compile(r"\b(?:a|an|the)\b")
_PUNCTUATION = str.maketrans({c: " " for c in string.punctuation + "\u2018\u2019\u201c\u201d"})


def normalize_answer(text: str) -> str:
    """Lower case, citation markers ``[n]`` and punctuation removed, articles dropped, spaces
    collapsed: "The Eiffel Tower [1]." and "eiffel tower" compare equal."""
    text = _MARKER_RE.sub(" ", text).lower().translate(_PUNCTUATION)
    return " ".join(_ARTICLES_RE.sub(" ", text).split())


def answer_contains(answer: str, reference: str) -> float:
    """1.0 when the normalised reference appears in the normalised answer as whole words."""
    ref = normalize_answer(reference)
    if not ref:
        raise ValueError("empty reference: the metric is undefined for this question")
    return 1.0 if f" {ref} " in f" {normalize_answer(answer)} " else 0.0


def token_f1(answer: str, reference: str) -> float:
    """Harmonic mean of token precision and recall between answer and reference (normalised,
    bag of words): rewards a short exact answer, penalises padding around it."""
    ref = normalize_answer(reference).split()
    if not ref:
        raise ValueError("empty reference: the metric is undefined for this question")
    got = normalize_answer(answer).split()
    common = sum((Counter(got) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(got), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def share(hits: int, total: int) -> float | None:
    """``hits / total``, or None when there is nothing to count (not the same as 0)."""
    return hits / total if total else None
