"""Ranking metrics for retrieval evaluation: one ranked list of ids against the relevant ids.

Ranks are 1-based and only the first ``k`` results count. An id listed twice counts once, at its
first position, so a retriever cannot score by repeating a hit. Relevance is binary (a set of
ids) except for :func:`ndcg_at_k`, which also takes graded gains (a mapping id -> gain).
Average a metric over queries with :func:`mean`.
"""

from __future__ import annotations

import math
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
