"""bench/fusion.py's grid and its rule for choosing, on hand-made per-question scores (the run
itself indexes four development sets and takes ~20 minutes: it is a benchmark, not a test)."""

from bench import fusion as bench

N = 40  # questions per set


def rows(hits: int) -> list[dict[str, float]]:
    """``hits`` questions answered perfectly, the rest missed (every metric alike)."""
    return [{m: 1.0 if n < hits else 0.0 for m in bench.METRICS} for n in range(N)]


def dataset(variants: dict[bench.Variant, int], *, dense: int = 30, lexical: int = 20) -> dict:
    inputs = {"dense": rows(dense), "lexical": rows(lexical)}
    return {
        "variants": [
            bench.variant_result(variant, rows(hits), inputs) for variant, hits in variants.items()
        ]
    }


PLAIN_DBSF = bench.Variant("dbsf", 60.0, 1.0, 1.0, 100)
WEIGHTED_DBSF = bench.Variant("dbsf", 60.0, 1.5, 1.0, 100)
PLAIN_RRF = bench.Variant("rrf", 60.0, 1.0, 1.0, 40)
CONVEX = bench.Variant("convex", 60.0, 0.5, 0.5, 40)


def test_free_parameters():
    assert PLAIN_DBSF.parameters == 0 and PLAIN_RRF.parameters == 0
    assert WEIGHTED_DBSF.parameters == 1 and CONVEX.parameters == 1
    assert bench.Variant("rrf", 2.0, 0.5, 1.0, 40).parameters == 2
    assert bench.Variant("rrf", 2.0, 0.5, 1.0, 40).name == "rrf k=2 w=0.5/1 pool=40"


def test_the_grid_is_small_and_holds_the_previous_defaults():
    names = [v.name for v in bench.grid()]
    assert len(names) == len(set(names)) == 60
    assert bench.PREVIOUS in names and PLAIN_DBSF.name in names and PLAIN_RRF.name in names


def test_the_simplest_of_the_variants_tied_with_the_best_is_chosen():
    # weighted DBSF beats dense by one question on both sets; plain DBSF only matches it
    results = {
        name: dataset({PLAIN_DBSF: 30, WEIGHTED_DBSF: 31, CONVEX: 20}) for name in ("a", "b")
    }
    choice = bench.choose(results, ["a", "b"])
    assert choice["tier"] == "strict"
    assert choice["qualifying"] == [WEIGHTED_DBSF.name, PLAIN_DBSF.name]
    assert choice["best"] == WEIGHTED_DBSF.name
    assert choice["chosen"] == PLAIN_DBSF.name  # one question apart: a tie, and no parameter
    assert choice["chosen_settings"]["fusion"] == "dbsf"


def test_a_clear_difference_is_not_a_tie():
    results = {name: dataset({PLAIN_DBSF: 30, WEIGHTED_DBSF: 38}) for name in ("a", "b")}
    assert bench.choose(results, ["a", "b"])["chosen"] == WEIGHTED_DBSF.name


def test_without_a_strict_variant_the_rule_falls_back_to_the_intervals():
    results = {
        "a": dataset({PLAIN_RRF: 30, CONVEX: 20}),
        "b": dataset({PLAIN_RRF: 29, CONVEX: 20}),  # one question below dense: noise
    }
    choice = bench.choose(results, ["a", "b"])
    assert choice["tier"] == "within_ci" and choice["strict_anywhere"] == []
    assert choice["qualifying"] == [PLAIN_RRF.name]  # CONVEX is 10 questions below dense
    assert choice["chosen"] == PLAIN_RRF.name
    assert choice["worst_margin"] == {PLAIN_RRF.name: -0.025}


def test_held_out_sets_do_not_choose():
    results = {
        "a": dataset({PLAIN_RRF: 30, PLAIN_DBSF: 31}),
        "held-out": dataset({PLAIN_RRF: 30, PLAIN_DBSF: 10}),
    }
    choice = bench.choose(results, ["a"])
    assert choice["chosen"] == PLAIN_DBSF.name
    assert choice["chosen_strict_on_all_sets"] is False


def test_nothing_qualifies():
    results = {"a": dataset({CONVEX: 20})}
    assert bench.choose(results, ["a"]) == {
        "tier": None,
        "qualifying": [],
        "best": None,
        "chosen": None,
    }
