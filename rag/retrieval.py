"""Hybrid retrieval: dense (embedding cosine) and lexical (BM25) candidates, fused.

Each half fetches a candidate pool from the store with the access filter applied inside the
query, the two ranked lists are fused (distribution-based score fusion by default; reciprocal
rank fusion and a convex combination of min-max normalised scores are the alternatives), and
near-duplicate passages are collapsed so the k results are k different pieces of evidence.
Fusion works on the two lists ``search_dense``/``search_lexical`` return, so it is the same on
every store. ``mode`` runs either half alone, for evaluation.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal, TypeVar, get_args

from .embedding import Embedder
from .lexical import BM25Encoder
from .store import VectorStore
from .types import ScoredChunk

SearchMode = Literal["hybrid", "dense", "lexical"]
MODES: tuple[str, ...] = get_args(SearchMode)
FusionMethod = Literal["rrf", "dbsf", "convex"]
FUSIONS: tuple[str, ...] = get_args(FusionMethod)

Key = TypeVar("Key", bound=Hashable)

_WORD_RE = re.compile(r"\w+", re.UNICODE)


# ---------------------------------------------------------------------------------------------
# Pure functions
# ---------------------------------------------------------------------------------------------


def reciprocal_rank_fusion(
    lists: Sequence[Sequence[Key]],
    *,
    k: float = 60,
    weights: Sequence[float] | None = None,
) -> list[tuple[Key, float]]:
    """Fuse ranked lists of ids: ``score(d) = sum_i weights[i] / (k + rank_i(d))``.

    Ranks are 1-based; a list that does not contain ``d`` adds nothing (Cormack et al., 2009).
    Returns ``(id, score)`` best first. Ties go to the id with the better best rank, then to the
    id seen first when reading the lists in order, so the result is deterministic. An id repeated
    within one list counts at its first (best) position only.
    """
    if k < 0 or not math.isfinite(k):
        raise ValueError("RRF k must be a finite number >= 0")
    if weights is None:
        weights = [1.0] * len(lists)
    if len(weights) != len(lists):
        raise ValueError(f"got {len(weights)} weights for {len(lists)} lists")
    if any(w < 0 or not math.isfinite(w) for w in weights):
        raise ValueError("RRF weights must be finite numbers >= 0")

    scores: dict[Key, float] = {}
    best_rank: dict[Key, int] = {}
    for ranked, weight in zip(lists, weights, strict=True):
        seen: set[Key] = set()
        for rank, key in enumerate(ranked, start=1):
            if key in seen:
                continue
            seen.add(key)
            scores[key] = scores.get(key, 0.0) + weight / (k + rank)
            best_rank[key] = min(best_rank.get(key, rank), rank)
    first_seen = {key: n for n, key in enumerate(scores)}
    order = sorted(scores, key=lambda key: (-scores[key], best_rank[key], first_seen[key]))
    return [(key, scores[key]) for key in order]


def _fusion_weights(count: int, weights: Sequence[float] | None) -> Sequence[float]:
    if weights is None:
        return [1.0] * count
    if len(weights) != count:
        raise ValueError(f"got {len(weights)} weights for {count} lists")
    if any(w < 0 or not math.isfinite(w) for w in weights):
        raise ValueError("fusion weights must be finite numbers >= 0")
    return weights


Scale = Callable[[float], float]


def minmax_scale(scores: Sequence[float]) -> Scale:
    """The linear map that sends the list's best score to 1 and its worst to 0. For a list whose
    scores are all equal (one hit, or a tie throughout) each is the best it has: 1; a score below
    them (one the list does not hold) is 0."""
    if not scores:
        return lambda s: 0.0
    low, high = min(scores), max(scores)
    if high - low <= 0:
        return lambda s: 1.0 if s >= low else 0.0
    return lambda s: (s - low) / (high - low)


def minmax_normalize(scores: Sequence[float]) -> list[float]:
    """Scores mapped linearly onto [0, 1] by :func:`minmax_scale`."""
    scale = minmax_scale(scores)
    return [scale(s) for s in scores]


def dbsf_scale(scores: Sequence[float]) -> Scale:
    """Distribution-based normalisation: ``mean - 3 sd`` maps to 0 and ``mean + 3 sd`` to 1
    (sample standard deviation; not clipped), as Qdrant's DBSF does. One hit, or equal scores
    throughout, map to 0.5: a list that does not discriminate says "average" (and a score below
    them, one the list does not hold, says 0)."""
    n = len(scores)
    if n == 0:
        return lambda s: 0.0
    low = min(scores)
    if n < 2:
        return lambda s: 0.5 if s >= low else 0.0
    mean = math.fsum(scores) / n
    sd = math.sqrt(math.fsum((s - mean) ** 2 for s in scores) / (n - 1))
    if sd <= 0:
        return lambda s: 0.5 if s >= low else 0.0
    return lambda s: (s - mean + 3 * sd) / (6 * sd)


def dbsf_normalize(scores: Sequence[float]) -> list[float]:
    """Scores normalised by :func:`dbsf_scale` (their own mean and spread)."""
    scale = dbsf_scale(scores)
    return [scale(s) for s in scores]


def _score_fusion(
    lists: Sequence[Sequence[tuple[Key, float]]],
    weights: Sequence[float] | None,
    scale_of: Callable[[Sequence[float]], Scale],
    floors: Sequence[float | None] | None,
) -> list[tuple[Key, float]]:
    weights = _fusion_weights(len(lists), weights)
    if floors is None:
        floors = [None] * len(lists)
    elif len(floors) != len(lists):
        raise ValueError(f"got {len(floors)} floors for {len(lists)} lists")
    scores: dict[Key, float] = {}
    best_rank: dict[Key, int] = {}
    absent: list[tuple[dict[Key, float], float]] = []  # (a list's ids, what an absent id gets)
    for ranked, weight, floor in zip(lists, weights, floors, strict=True):
        seen: dict[Key, float] = {}
        for key, score in ranked:  # an id repeated within one list counts at its first place
            if not math.isfinite(score):
                raise ValueError(f"score of {key!r} is not a finite number")
            seen.setdefault(key, score)
        scale = scale_of(list(seen.values()))
        for rank, (key, score) in enumerate(seen.items(), start=1):
            scores[key] = scores.get(key, 0.0) + weight * scale(score)
            best_rank[key] = min(best_rank.get(key, rank), rank)
        if floor is not None:
            if not math.isfinite(floor):
                raise ValueError("a floor must be a finite number")
            absent.append((seen, weight * scale(floor)))
    for seen, credit in absent:  # ids another list found: scored here as the floor would be
        for key in scores:
            if key not in seen:
                scores[key] += credit
    first_seen = {key: n for n, key in enumerate(scores)}
    order = sorted(scores, key=lambda key: (-scores[key], best_rank[key], first_seen[key]))
    return [(key, scores[key]) for key in order]


def dbsf_fusion(
    lists: Sequence[Sequence[tuple[Key, float]]],
    *,
    weights: Sequence[float] | None = None,
    floors: Sequence[float | None] | None = None,
) -> list[tuple[Key, float]]:
    """Distribution-based score fusion: each list's scores normalised by
    :func:`dbsf_scale` (its own mean and spread), then ``score(d) = sum_i weights[i] *
    norm_i(d)``.

    ``lists`` hold ``(id, score)`` pairs best first. Unlike RRF, how far apart two scores are
    counts, not only their order: a list with one clear winner lifts it further than a list of
    near ties. An id a list does not hold gets, from that list, its ``floors[i]`` normalised the
    same way where its score there is known (BM25: 0 when the list holds every match), or
    nothing where the floor is None. Ties are broken as :func:`reciprocal_rank_fusion` breaks
    them.
    """
    return _score_fusion(lists, weights, dbsf_scale, floors)


def convex_fusion(
    lists: Sequence[Sequence[tuple[Key, float]]],
    *,
    weights: Sequence[float] | None = None,
    floors: Sequence[float | None] | None = None,
) -> list[tuple[Key, float]]:
    """Convex combination of min-max normalised scores (:func:`minmax_scale`):
    ``score(d) = sum_i weights[i] * norm_i(d) / sum(weights)``; an id a list does not hold is
    scored as its floor (see :func:`dbsf_fusion`), or adds nothing. With two lists and weights
    ``(a, 1 - a)`` this is the usual ``a * dense + (1 - a) * lexical``. Ties as in
    :func:`reciprocal_rank_fusion`."""
    weights = _fusion_weights(len(lists), weights)
    total = math.fsum(weights)
    if lists and total <= 0:
        raise ValueError("fusion weights must not all be 0")
    fused = _score_fusion(lists, weights, minmax_scale, floors)
    return [(key, score / total) for key, score in fused]


def _floors(
    dense: Sequence[ScoredChunk], lexical: Sequence[ScoredChunk], *, pool: int
) -> tuple[float | None, float | None]:
    """Where a passage missing from one half has a known score there: BM25 0 when the pool was
    not filled (every passage sharing a term was returned, so a missing one shares none).
    Otherwise (a filled pool; any dense list) its score is only bounded, and it gets nothing."""
    if lexical and len(lexical) < pool:
        return None, 0.0
    return None, None


_SCORE_FUSIONS = {"dbsf": dbsf_fusion, "convex": convex_fusion}


def word_set(text: str) -> frozenset[str]:
    """Lower-cased word tokens (stop words kept: they are part of what makes text identical)."""
    return frozenset(_WORD_RE.findall(text.lower()))


def containment(candidate: frozenset[str], kept: frozenset[str]) -> float:
    """Share of ``candidate``'s distinct words that ``kept`` already has (1.0 when both empty)."""
    if not candidate:
        return 1.0 if not kept else 0.0
    return len(candidate & kept) / len(candidate)


def collapse_near_duplicates(
    chunks: Sequence[ScoredChunk],
    *,
    threshold: float = 0.9,
    limit: int | None = None,
) -> list[ScoredChunk]:
    """Drop every chunk that repeats a better-ranked one; ``chunks`` is best first.

    A chunk is a near duplicate when at least ``threshold`` of its distinct words already appear
    in one better-ranked chunk that was kept: the same passage indexed in two documents, a
    re-ingested copy, or a short chunk wholly inside a longer one. Containment rather than
    Jaccard, because a passage plus a heading or a signature is still the same evidence; it
    implies Jaccard's case (Jaccard >= t means both containments are >= t). Overlapping
    neighbours of one document (a 10-20% overlap) are not near duplicates. Stops once ``limit``
    chunks are kept. Order and the kept objects are unchanged.
    """
    if not 0 < threshold <= 1:
        raise ValueError("threshold must be in (0, 1]")
    kept: list[ScoredChunk] = []
    kept_words: list[frozenset[str]] = []
    for chunk in chunks:
        if limit is not None and len(kept) >= limit:
            break
        words = word_set(chunk.text)
        if any(containment(words, other) >= threshold for other in kept_words):
            continue
        kept.append(chunk)
        kept_words.append(words)
    return kept


_SECTION_NUMBER_RE = re.compile(
    r"^\s*(?:(?:chapter|section|part|appendix)\s+\w+|\d+(?:\.\d+)*\.?|[a-z](?:\.\d+)+\.?"
    r"|[a-z][.)]|[ivxlc]+[.)])[:)]?\s+",
    re.IGNORECASE,
)


def heading_key(text: str) -> str:
    """A heading or a query as compared by :func:`sections_named_first`: lower case, without a
    leading section number ("5.3", "Chapter 5", "A.2") and punctuation."""
    text = _SECTION_NUMBER_RE.sub("", text, count=1)
    return " ".join(_WORD_RE.findall(text.lower()))


def sections_named_first(query: str, chunks: Sequence[ScoredChunk]) -> list[ScoredChunk]:
    """Passages of a section whose own heading *is* the query come first, from the section's
    start (page, then offset); everything else keeps its order after them.

    People type a heading they saw in a contents page or a previous answer to get that
    section. Fusion ranks such a section's passages high (the heading is part of what is
    embedded and indexed) but not reliably its first passage above a later one, a neighbouring
    section that uses the same words, or a page that mentions the heading in passing. A section
    is named only by an exact match of its deepest heading, so an ordinary question is never
    reordered.
    """
    key = heading_key(query)
    if len(key) < 3:
        return list(chunks)
    named = [c for c in chunks if c.heading_path and heading_key(c.heading_path[-1]) == key]
    if not named:
        return list(chunks)
    sections: dict[tuple[str, tuple[str, ...]], int] = {}
    for chunk in named:  # sections in the order of their best passage
        sections.setdefault((chunk.document_id, chunk.heading_path), len(sections))
    named.sort(key=lambda c: (sections[(c.document_id, c.heading_path)], c.page or 0, c.start))
    chosen = {id(c) for c in named}
    return named + [c for c in chunks if id(c) not in chosen]


def content_first(chunks: Sequence[ScoredChunk]) -> list[ScoredChunk]:
    """Content passages in their order, then navigation passages in theirs (a stable sort)."""
    return sorted(chunks, key=lambda chunk: chunk.kind == "navigation")


# ---------------------------------------------------------------------------------------------
# The retriever
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Retriever:
    """Dense + BM25 retrieval over one :class:`VectorStore`, the two lists fused.

    Settings (validated on construction):

    - ``mode``: what :meth:`search` does unless told otherwise: ``"hybrid"``, ``"dense"`` or
      ``"lexical"`` (the last two exist to measure each half alone).
    - ``fusion``: how the two lists become one: ``"dbsf"`` (default, :func:`dbsf_fusion`),
      ``"rrf"`` (:func:`reciprocal_rank_fusion`) or ``"convex"`` (:func:`convex_fusion`).
    - ``pool_multiplier``, ``pool_min``: each half fetches ``max(k * pool_multiplier,
      pool_min)`` candidates. A bigger pool lets a passage ranked low by one half but high by the
      other reach the top, and gives DBSF a steadier mean and spread to normalise with; it
      costs store time.
    - ``rrf_k``: the RRF constant (``fusion="rrf"`` only). Small values make the top ranks of
      each list count much more than the next ones; large values flatten the curve.
    - ``dense_weight``, ``lexical_weight``: each list's weight in the fusion, whichever it is
      (with 0, that list's hits only fill the places the other list leaves empty).
    - ``dedup_threshold``: see :func:`collapse_near_duplicates`; ``None`` keeps duplicates.
    - ``min_dense_score``: a hit with no lexical support (not in the lexical candidate pool)
      whose cosine similarity to the query is below this is dropped: it shares no rare word with
      the question and is only vaguely related. ``None`` (default) drops nothing. In dense mode
      no hit has lexical support, so it is a plain cosine cut-off there. (With the packaged
      MiniLM, unrelated sentences score about -0.1 to 0.2 and a close paraphrase about 0.5.)
    - ``navigation_last``: passages of navigation pages (contents, index, lists of figures;
      ``kind == "navigation"``) come after every content passage found. A contents page repeats
      the words of every heading, so it matches a section's name better than the section does;
      it is kept (findable by name, and listed when nothing else matches) but never outranks
      the pages it points to.
    - ``heading_match``: a query that is a section's heading brings that section's passages
      first, from its start (see :func:`sections_named_first`).
    - ``lexical``: the BM25 encoder; only its tokenizer matters for queries (weights are 1, the
      IDF comes from the store), so it must tokenize as the indexing encoder did.

    The defaults (DBSF, equal weights, a pool of 100 per half) were chosen by bench/fusion.py
    (docs/benchmarks/fusion.json) on two very different development sets with one small grid
    and the same settings for all: HaluEval-QA, where BM25 alone beats MiniLM alone, and CISI,
    where MiniLM beats BM25. The previous RRF defaults (``rrf_k=2, dense_weight=0.5``, tuned on
    HaluEval alone) fell far below dense alone on CISI; plain RRF (60, 1:1) fell below BM25
    alone on HaluEval. With BM25's terms stemmed and the usual stop words left out
    (rag.lexical), DBSF with equal weights beats both halves on nDCG@10 and recall@10 on every
    development set, and on the held-out manuals. DBSF adapts per query: a list
    with one clear winner (a rare name BM25 matches once) lifts it far, a list of near ties
    (BM25 on a long, wordy question) barely moves the order of the other.
    ``fusion="rrf", dense_weight=0.5`` with ``pool_min=40`` restores the previous fusion (its
    terms stay stemmed).
    """

    embedder: Embedder
    store: VectorStore
    lexical: BM25Encoder = field(default_factory=BM25Encoder)
    mode: SearchMode = "hybrid"
    fusion: FusionMethod = "dbsf"
    pool_multiplier: int = 4
    pool_min: int = 100
    rrf_k: float = 2.0
    dense_weight: float = 1.0
    lexical_weight: float = 1.0
    dedup_threshold: float | None = 0.9
    min_dense_score: float | None = None
    navigation_last: bool = True
    heading_match: bool = True

    def __post_init__(self) -> None:
        _check_mode(self.mode)
        if self.fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {', '.join(FUSIONS)}; got {self.fusion!r}")
        if self.pool_multiplier < 1 or self.pool_min < 1:
            raise ValueError("pool_multiplier and pool_min must be at least 1")
        if self.rrf_k < 0 or not math.isfinite(self.rrf_k):
            raise ValueError("rrf_k must be a finite number >= 0")
        weights = (self.dense_weight, self.lexical_weight)
        if any(w < 0 or not math.isfinite(w) for w in weights) or not any(weights):
            raise ValueError("dense_weight and lexical_weight must be >= 0, not both 0")
        if self.dedup_threshold is not None and not 0 < self.dedup_threshold <= 1:
            raise ValueError("dedup_threshold must be in (0, 1] or None")
        if self.min_dense_score is not None and not -1 <= self.min_dense_score <= 1:
            raise ValueError("min_dense_score is a cosine similarity: in [-1, 1] or None")

    def pool_size(self, k: int) -> int:
        return max(k * self.pool_multiplier, self.pool_min)

    def warm_up(self) -> None:
        self.store.ensure_collection()
        self.embedder.embed(["warm-up"])

    def search(
        self,
        query: str,
        *,
        k: int = 10,
        collections: Sequence[str] | None = None,
        mode: SearchMode | None = None,
    ) -> list[ScoredChunk]:
        """The ``k`` best distinct passages, best first, from ``collections`` only (None: all).

        ``score`` is the fused score in hybrid mode (its scale depends on ``fusion``: compare
        it only within one result list), the cosine in dense mode and the BM25 score in lexical
        mode; the component scores and 1-based ranks (positions in each half's
        candidate list, before fusion and de-duplication) are filled either way.
        """
        if k < 1:
            raise ValueError("k must be at least 1")
        if isinstance(collections, str):  # "hr" would become the collections "h" and "r"
            raise TypeError("collections must be a sequence of slugs, not a string")
        mode = self.mode if mode is None else _check_mode(mode)
        if not query.strip():
            return []
        pool = self.pool_size(k)
        dense = self._dense(query, pool, collections) if mode != "lexical" else []
        lexical = self._lexical(query, pool, collections) if mode != "dense" else []

        if mode == "dense":
            ranked = dense
        elif mode == "lexical":
            ranked = lexical
        else:
            ranked = self._fuse(dense, lexical, pool=pool)
        if self.min_dense_score is not None and mode != "lexical":
            ranked = [
                hit
                for hit in ranked
                if hit.lexical_rank is not None
                or (hit.dense_score is not None and hit.dense_score >= self.min_dense_score)
            ]
        if self.heading_match:
            ranked = sections_named_first(query, ranked)
        if self.navigation_last:
            ranked = content_first(ranked)
        if self.dedup_threshold is None:
            return ranked[:k]
        return collapse_near_duplicates(ranked, threshold=self.dedup_threshold, limit=k)

    # -- halves ----------------------------------------------------------------------------------

    def _dense(self, query: str, pool: int, collections: Sequence[str] | None) -> list[ScoredChunk]:
        vector = self.embedder.embed([query])[0]
        hits = self.store.search_dense(vector.tolist(), k=pool, collections=collections)
        return [
            replace(hit, dense_score=hit.score, dense_rank=rank)
            for rank, hit in enumerate(hits, start=1)
        ]

    def _lexical(
        self, query: str, pool: int, collections: Sequence[str] | None
    ) -> list[ScoredChunk]:
        vector = self.lexical.encode_query(query)
        if not vector.indices:  # only stop words: nothing to match
            return []
        hits = self.store.search_lexical(vector, k=pool, collections=collections)
        return [
            replace(hit, lexical_score=hit.score, lexical_rank=rank)
            for rank, hit in enumerate(hits, start=1)
        ]

    def _fuse(
        self, dense: list[ScoredChunk], lexical: list[ScoredChunk], *, pool: int
    ) -> list[ScoredChunk]:
        weights = (self.dense_weight, self.lexical_weight)
        if self.fusion == "rrf":
            fused = reciprocal_rank_fusion(
                [[hit.chunk_id for hit in dense], [hit.chunk_id for hit in lexical]],
                k=self.rrf_k,
                weights=weights,
            )
        else:  # score-based: the store's own scores, normalised per list
            fused = _SCORE_FUSIONS[self.fusion](
                [
                    [(hit.chunk_id, hit.score) for hit in dense],
                    [(hit.chunk_id, hit.score) for hit in lexical],
                ],
                weights=weights,
                floors=_floors(dense, lexical, pool=pool),
            )
        by_id_dense = {hit.chunk_id: hit for hit in dense}
        by_id_lexical = {hit.chunk_id: hit for hit in lexical}
        results = []
        for chunk_id, score in fused:
            d, x = by_id_dense.get(chunk_id), by_id_lexical.get(chunk_id)
            base = d or x
            assert base is not None
            results.append(
                replace(
                    base,
                    score=score,
                    dense_score=d.dense_score if d else None,
                    dense_rank=d.dense_rank if d else None,
                    lexical_score=x.lexical_score if x else None,
                    lexical_rank=x.lexical_rank if x else None,
                )
            )
        return results


def _check_mode(mode: str) -> SearchMode:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}; got {mode!r}")
    return mode  # type: ignore[return-value]
