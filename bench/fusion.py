"""Fusion study: which way of fusing the dense and the BM25 lists generalises across datasets.

Prints one JSON object on stdout (progress goes to stderr). Every development set is opened as
``manage.py eval retrieval`` opens it (``evaluation.datasets.dataset_open``: the same corpus,
questions, store and relevance keys), indexed ONCE; each query is embedded once and its dense
and lexical candidate lists fetched once, ``--depth`` deep. Then every variant of the grid is
``Retriever.search`` over those cached lists (heading match, navigation last and de-duplication
included), which is exactly what an uncached search with those settings returns, and is scored
per query with the harness's own metrics.

The grid is small on purpose (the same settings for every set, no per-set tuning):

- ``rrf``: reciprocal rank fusion, ``k`` in {2, 10, 60} x (dense, lexical) weights in
  {(0.5, 1), (1, 1), (1, 0.5)}; ``k=60`` with equal weights is plain RRF, ``k=2`` with (0.5, 1)
  the defaults tuned on HaluEval alone;
- ``dbsf``: distribution-based score fusion (each list normalised by its mean +- 3 sd, then a
  weighted sum), dense weight in {0.5, 0.75, 1, 1.5, 2} with lexical 1;
- ``convex``: ``a * minmax(dense) + (1 - a) * minmax(lexical)``, a in {0.3, ..., 0.8};
- each of them with candidate pools of {20, 40, 100} per half.

Development sets (selection): ``halueval-qa`` (the gate's slice, 200 questions, 1,000 passages),
``halueval-qa-1000`` (1,000 questions, 5,000 passages: the gate's slice is nearly at the
ceiling) and ``cisi`` (76 judged queries, 1,460 abstracts). ``manuals`` (80 answerable
questions on three PDF manuals) is reported and checked, never used to choose.

A variant is *strict* when on every development set its nDCG@10 and recall@10 are at least
those of both of its inputs (dense alone and lexical alone, at the same pool). When no variant is
strict (the case on the data so far: HaluEval wants BM25's order, CISI the dense one, and each
step toward one costs the other), the rule falls back to *within_ci*: no paired 95% interval
(bootstrap over questions) of those margins lies wholly below 0, and nDCG@10 beats the weaker
input beyond its interval on every set. Among the qualifying variants the best is the one with
the highest worst-case margin; the chosen one is the simplest (fewest free parameters) whose
paired intervals of nDCG@10 and recall@10 against the best reach 0 on every development set.

``--candidates DIR`` keeps each dataset's fetched lists (a pickle per slice) and reuses them, so
another grid costs minutes, not another indexing.

    python bench/fusion.py --out docs/benchmarks/fusion.json   # ~20 minutes on 2 cores
    python bench/fusion.py --datasets cisi --limit 20           # a quick look
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import pickle
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
# The project's `ingest` app, not bench/ingest.py: the root first, this folder off the path.
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != HERE]

from bench._cache import CachedEmbedder, CachedStore  # noqa: E402
from bench._machine import emit, machine_facts  # noqa: E402

# name -> (dataset_open name, limit, passages, used to choose)
DATASETS = {
    "halueval-qa": ("halueval-qa", 200, 1000, True),
    "halueval-qa-1000": ("halueval-qa", 1000, 5000, True),
    "cisi": ("cisi", None, None, True),
    "manuals": ("manuals", None, None, False),
}
K = 10
METRICS = ("ndcg@10", "recall@10", "mrr@10", "recall@1", "recall@5")
JUDGED = ("ndcg@10", "recall@10")  # a default must not be below either input on these
POOLS = (20, 40, 100)
RRF_KS = (2, 10, 60)
RRF_WEIGHTS = ((0.5, 1.0), (1.0, 1.0), (1.0, 0.5))
DBSF_DENSE_WEIGHTS = (0.5, 0.75, 1.0, 1.5, 2.0)
CONVEX_ALPHAS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
# The defaults before this study (tuned on HaluEval alone), reported beside the choice
PREVIOUS = "rrf k=2 w=0.5/1 pool=40"
RESAMPLES = 2000
CONFIDENCE = 0.95


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# The grid
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Variant:
    fusion: str
    rrf_k: float
    dense_weight: float
    lexical_weight: float
    pool: int

    @property
    def name(self) -> str:
        if self.fusion == "rrf":
            core = f"rrf k={self.rrf_k:g} w={self.dense_weight:g}/{self.lexical_weight:g}"
        elif self.fusion == "dbsf":
            core = f"dbsf w={self.dense_weight:g}/{self.lexical_weight:g}"
        else:
            core = f"convex a={self.dense_weight:g}"
        return f"{core} pool={self.pool}"

    @property
    def parameters(self) -> int:
        """Free parameters beyond a conventional setting: plain RRF (k 60, equal weights) and
        DBSF with equal weights have none; a weight ratio or an RRF constant is one each."""
        if self.fusion == "convex":
            return 1
        free = int(self.dense_weight != self.lexical_weight)
        if self.fusion == "rrf":
            free += int(self.rrf_k != 60)
        return free

    def settings(self) -> dict:
        return {
            "fusion": self.fusion,
            "rrf_k": self.rrf_k,
            "dense_weight": self.dense_weight,
            "lexical_weight": self.lexical_weight,
            "pool_min": self.pool,
            "pool_multiplier": 1,
        }


def grid() -> list[Variant]:
    variants = []
    for pool in POOLS:
        variants += [
            Variant("rrf", float(k), d, x, pool)
            for k, (d, x) in itertools.product(RRF_KS, RRF_WEIGHTS)
        ]
        variants += [Variant("dbsf", 60.0, d, 1.0, pool) for d in DBSF_DENSE_WEIGHTS]
        variants += [Variant("convex", 60.0, a, round(1 - a, 2), pool) for a in CONVEX_ALPHAS]
    return variants


# ---------------------------------------------------------------------------------------------
# Statistics (fixed seed: the same per-question scores always give the same interval)
# ---------------------------------------------------------------------------------------------


def mean_interval(values: Sequence[float]) -> dict:
    import numpy as np

    data = np.asarray(values, dtype=float)
    rng = np.random.default_rng(0)
    means = data[rng.integers(0, len(data), size=(RESAMPLES, len(data)))].mean(axis=1)
    tail = (1 - CONFIDENCE) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return {"mean": round(float(data.mean()), 4), "ci95": [round(low, 4), round(high, 4)]}


def paired(a: Sequence[float], b: Sequence[float]) -> dict:
    """Mean of ``a - b`` per question with its percentile bootstrap interval."""
    return mean_interval([x - y for x, y in zip(a, b, strict=True)])


# ---------------------------------------------------------------------------------------------
# Measuring one dataset
# ---------------------------------------------------------------------------------------------


@dataclass
class Candidates:
    """A dataset's questions with every query's dense and lexical candidate lists, fetched once
    (``retriever`` answers from its caches only: its model and store are detached)."""

    name: str
    cases: list  # evaluation.datasets.Case
    collections: list[str] | None
    key: Callable  # the dataset's relevance_key
    retriever: object  # rag.retrieval.Retriever over CachedEmbedder and CachedStore
    description: str
    index_seconds: float


def candidates_collect(name: str, *, limit: int | None, depth: int) -> Candidates:
    """Open the dataset as the harness does (index it), fetch every query's two lists
    ``depth`` deep, and detach the caches from the model and the store."""
    from evaluation.datasets import dataset_open

    source, default_limit, passages, _ = DATASETS[name]
    started = time.perf_counter()
    with dataset_open(
        source, limit=limit or default_limit, passages=passages, log=lambda m: log(f"{name}: {m}")
    ) as data:
        indexed = time.perf_counter()
        embedder, store = (
            CachedEmbedder(data.retriever.embedder),
            CachedStore(data.retriever.store, depth),
        )
        retriever = replace(data.retriever, embedder=embedder, store=store)
        for case in data.cases:  # hybrid asks both halves; the store fetches `depth` of each
            retriever.search(case.query, k=K, collections=data.collections, mode="hybrid")
        embedder.embedder = store.store = None
        log(f"{name}: {len(data.cases)} queries fetched in {time.perf_counter() - indexed:.0f}s")
        return Candidates(
            name=name,
            cases=list(data.cases),
            collections=data.collections,
            key=data.relevance_key,
            retriever=retriever,
            description=data.corpus_description,
            index_seconds=round(indexed - started, 1),
        )


def candidates_open(name: str, *, limit: int | None, depth: int, folder: Path | None) -> Candidates:
    """From ``folder/NAME.pickle`` when it was saved for the same slice, else collected (and
    saved there when ``folder`` is given)."""
    path = folder / f"{name}-{limit or 'default'}-{depth}.pickle" if folder else None
    if path is not None and path.is_file():
        log(f"{name}: candidates from {path}")
        with path.open("rb") as handle:
            return pickle.load(handle)
    candidates = candidates_collect(name, limit=limit, depth=depth)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as handle:
            pickle.dump(candidates, handle)
    return candidates


def configured_retriever(candidates: Candidates):
    """The cached retriever with today's settings (a saved pickle keeps its own)."""
    from django.conf import settings as django_settings

    return replace(candidates.retriever, **django_settings.RAG_RETRIEVER)


def case_rows(candidates: Candidates, retriever, mode: str) -> list[dict[str, float]]:
    """Every question of ``candidates`` asked of ``retriever`` in ``mode``, scored."""
    from evaluation.services import case_score

    rows = []
    for case in candidates.cases:
        hits = retriever.search(case.query, k=K, collections=candidates.collections, mode=mode)
        rows.append(case_score([candidates.key(h) for h in hits], case.relevant))
    return rows


def configured_table(candidates: Candidates) -> dict:
    """The retriever as configured, each mode with 95% intervals, and hybrid's paired margins
    over each input (the per-set table of the README and docs/benchmarks/retrieval.json)."""
    retriever = configured_retriever(candidates)
    rows = {mode: case_rows(candidates, retriever, mode) for mode in ("dense", "lexical", "hybrid")}
    return {
        "questions": len(candidates.cases),
        "corpus": candidates.description,
        "modes": {
            mode: {m: mean_interval([r[m] for r in mode_rows]) for m in METRICS}
            for mode, mode_rows in rows.items()
        },
        "hybrid_vs": {
            mode: {
                m: paired([r[m] for r in rows["hybrid"]], [r[m] for r in rows[mode]])
                for m in JUDGED
            }
            for mode in ("dense", "lexical")
        },
    }


def measure(candidates: Candidates, variants: list[Variant]) -> dict:
    """Both inputs and every variant on every question, from the cached candidate lists."""
    base = configured_retriever(candidates)
    name, cases = candidates.name, candidates.cases
    started = time.perf_counter()

    def scores(retriever, mode: str) -> list[dict[str, float]]:
        return case_rows(candidates, retriever, mode)

    inputs: dict[int, dict[str, list[dict[str, float]]]] = {}
    for pool in sorted({v.pool for v in variants}):
        at_pool = replace(base, pool_min=pool, pool_multiplier=1)
        inputs[pool] = {mode: scores(at_pool, mode) for mode in ("dense", "lexical")}
    current = scores(base, "hybrid")  # the retriever as the settings configure it
    rows: dict[Variant, list[dict[str, float]]] = {}
    for n, variant in enumerate(variants, start=1):
        rows[variant] = scores(replace(base, **variant.settings()), "hybrid")
        if n % 20 == 0 or n == len(variants):
            log(f"{name}: {n}/{len(variants)} variants")
    settings = {
        f: getattr(base, f)
        for f in ("fusion", "rrf_k", "dense_weight", "lexical_weight", "pool_min")
        + ("pool_multiplier", "dedup_threshold")
    }
    questions = len(cases)

    def summary(rows_: list[dict[str, float]]) -> dict:
        return {m: mean_interval([r[m] for r in rows_]) for m in METRICS}

    result_variants = [
        variant_result(variant, vrows, inputs[variant.pool]) for variant, vrows in rows.items()
    ]
    return {
        "questions": questions,
        "corpus": candidates.description,
        "inputs": {
            str(pool): {mode: summary(r) for mode, r in modes.items()}
            for pool, modes in inputs.items()
        },
        "configured": {"settings": settings, "hybrid": summary(current)},
        "variants": result_variants,
        "seconds": {
            "index": candidates.index_seconds,
            "score": round(time.perf_counter() - started, 1),
        },
    }


def variant_result(
    variant: Variant, rows: list[dict[str, float]], inputs: dict[str, list[dict[str, float]]]
) -> dict:
    """A variant's means and its paired margins over each input (``inputs``: per-question rows
    of ``dense`` and ``lexical`` at the variant's pool); ``_rows`` keeps the per-question scores
    for :func:`choose` and is dropped before the JSON is written."""
    return {
        "name": variant.name,
        "settings": variant.settings(),
        "parameters": variant.parameters,
        "metrics": {m: round(sum(r[m] for r in rows) / len(rows), 4) for m in METRICS},
        "vs": {
            mode: {m: paired([r[m] for r in rows], [r[m] for r in inputs[mode]]) for m in JUDGED}
            for mode in ("dense", "lexical")
        },
        "_rows": rows,
    }


# ---------------------------------------------------------------------------------------------
# Choosing
# ---------------------------------------------------------------------------------------------


def choose(results: dict[str, dict], chooser: Sequence[str]) -> dict:
    """The variants that beat both inputs everywhere, the best of them by worst-case margin, and
    the simplest one tied with it.

    ``strict``: every margin (hybrid minus each input, nDCG@10 and recall@10, every development
    set) is >= 0. When no variant is strict, the rule falls back to ``within_ci``: no margin's
    paired 95% interval lies wholly below 0 (never worse than an input beyond what another
    sample of questions could give), and nDCG@10 is better than the weaker input beyond its
    interval on every set (the fusion adds something). ``tier`` says which rule chose."""
    names = [v["name"] for v in results[chooser[0]]["variants"]]
    by = {ds: {v["name"]: v for v in results[ds]["variants"]} for ds in results}

    def comparisons(name: str, sets: Sequence[str]) -> list[dict]:
        return [
            by[ds][name]["vs"][mode][m]
            for ds in sets
            for mode in ("dense", "lexical")
            for m in JUDGED
        ]

    def strict(name: str, sets: Sequence[str]) -> bool:
        return all(c["mean"] >= 0 for c in comparisons(name, sets))

    def within_ci(name: str, sets: Sequence[str]) -> bool:
        adds = all(
            max(by[ds][name]["vs"][mode]["ndcg@10"]["ci95"][0] for mode in ("dense", "lexical")) > 0
            for ds in sets
        )
        return adds and all(c["ci95"][1] >= 0 for c in comparisons(name, sets))

    def worst(name: str) -> float:
        return min(c["mean"] for c in comparisons(name, chooser))

    tier = "strict"
    qualifying = [n for n in names if strict(n, chooser)]
    if not qualifying:
        tier = "within_ci"
        qualifying = [n for n in names if within_ci(n, chooser)]
    if not qualifying:
        return {"tier": None, "qualifying": [], "best": None, "chosen": None}
    best = max(qualifying, key=lambda n: (worst(n), mean_ndcg(by, n, chooser)))

    def tied(name: str) -> bool:
        return name == best or all(
            paired([r[m] for r in by[ds][name]["_rows"]], [r[m] for r in by[ds][best]["_rows"]])[
                "ci95"
            ][1]
            >= 0
            for ds in chooser
            for m in JUDGED
        )

    ties = [n for n in qualifying if tied(n)]
    chosen = min(
        ties,
        key=lambda n: (by[chooser[0]][n]["parameters"], -worst(n), -mean_ndcg(by, n, chooser)),
    )
    return {
        "tier": tier,
        "strict_anywhere": [n for n in names if strict(n, chooser)],
        "qualifying": sorted(qualifying, key=lambda n: -worst(n)),
        "best": best,
        "tied_with_best": ties,
        "chosen": chosen,
        "chosen_settings": by[chooser[0]][chosen]["settings"],
        "chosen_strict_on_all_sets": strict(chosen, list(results)),
        "chosen_within_ci_on_all_sets": within_ci(chosen, list(results)),
        "worst_margin": {n: round(worst(n), 4) for n in dict.fromkeys((best, chosen))},
    }


def mean_ndcg(by: dict, name: str, sets: Sequence[str]) -> float:
    return sum(by[ds][name]["metrics"]["ndcg@10"] for ds in sets) / len(sets)


def chosen_report(results: dict[str, dict], chosen: str) -> dict:
    """Per dataset: the variant ``chosen`` next to both inputs at its pool, with intervals."""
    report = {}
    for ds, result in results.items():
        variant = next(v for v in result["variants"] if v["name"] == chosen)
        pool = str(variant["settings"]["pool_min"])
        report[ds] = {
            "hybrid": {
                m: mean_interval([r[m] for r in variant["_rows"]])
                for m in ("ndcg@10", "recall@10", "mrr@10")
            },
            **{
                mode: {
                    m: result["inputs"][pool][mode][m] for m in ("ndcg@10", "recall@10", "mrr@10")
                }
                for mode in ("dense", "lexical")
            },
            "vs": variant["vs"],
        }
    return report


def run(args: argparse.Namespace, work: Path) -> dict:
    load_before = os.getloadavg()
    started = time.perf_counter()
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from bench._app import set_up_embedded_app

    set_up_embedded_app(work)
    from django.conf import settings

    variants = grid()
    results = {}
    for name in args.datasets:
        log(f"{name}: opening")
        candidates = candidates_open(
            name, limit=args.limit, depth=max(POOLS), folder=args.candidates
        )
        results[name] = measure(candidates, variants)
    chooser = [n for n in args.datasets if DATASETS[n][3]]
    choice = choose(results, chooser) if chooser else {"chosen": None}
    report = chosen_report(results, choice["chosen"]) if choice.get("chosen") else {}
    previous = chosen_report(results, PREVIOUS)
    for result in results.values():  # per-question rows are for the bootstrap, not the JSON
        for variant in result["variants"]:
            variant.pop("_rows")
    return {
        "benchmark": "fusion",
        "k": K,
        "grid": {
            "pools": list(POOLS),
            "rrf_k": list(RRF_KS),
            "rrf_weights": [list(w) for w in RRF_WEIGHTS],
            "dbsf_dense_weights": list(DBSF_DENSE_WEIGHTS),
            "convex_alphas": list(CONVEX_ALPHAS),
            "variants": len(variants),
        },
        "rule": (
            "strict: nDCG@10 and recall@10 >= dense alone and >= lexical alone on every "
            "development set (else within_ci: no paired 95% interval of those margins wholly "
            "below 0, and nDCG@10 above the weaker input beyond its interval); best: highest "
            "worst-case margin; chosen: fewest free parameters among those whose paired 95% "
            "intervals of nDCG@10 and recall@10 vs the best reach 0 on every development set"
        ),
        "development_sets": chooser,
        "held_out": [n for n in args.datasets if not DATASETS[n][3]],
        "choice": choice,
        "chosen": report,
        "previous_defaults": {"name": PREVIOUS, **previous},
        "datasets": results,
        "settings": {
            "retriever": dict(settings.RAG_RETRIEVER),
            "chunk_tokens": settings.CHUNK_TOKENS,
            "chunk_overlap": settings.CHUNK_OVERLAP,
            "depth": max(POOLS),
            "limit": args.limit,
        },
        "seconds": round(time.perf_counter() - started, 1),
        "machine": machine_facts(load_before),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--datasets",
        default=",".join(DATASETS),
        help=f"comma-separated, of {', '.join(DATASETS)} (default: all)",
    )
    parser.add_argument("--limit", type=int, help="questions per dataset (default: each's own)")
    parser.add_argument(
        "--candidates",
        type=Path,
        help="keep each dataset's fetched candidate lists in this folder and reuse them "
        "(another grid without indexing again)",
    )
    parser.add_argument("--out", type=Path, help="also write the JSON result to this file")
    args = parser.parse_args(argv)
    args.datasets = [n.strip() for n in args.datasets.split(",") if n.strip()]
    unknown = [n for n in args.datasets if n not in DATASETS]
    if unknown or not args.datasets:
        parser.error(f"--datasets: unknown {', '.join(unknown) or '(none)'}")
    if args.limit is not None and args.limit < 1:
        parser.error("--limit must be at least 1")

    stdout = sys.stdout
    work = Path(tempfile.mkdtemp(prefix="bench-fusion-")).resolve()
    try:
        with contextlib.redirect_stdout(sys.stderr):  # stdout carries the JSON and nothing else
            result = run(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    emit(result, stdout=stdout, out=args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
