"""bench/manuals.py's scoring on hand-made cases (the run itself needs the manuals and takes
minutes: it is `make bench`'s, not the test suite's; tests/bench/data/manuals.json is the output
of a real run, `--limit 2`, which the plot test draws)."""

import json
from pathlib import Path
from types import SimpleNamespace

from bench import manuals as bench

DATA = Path(__file__).resolve().parent / "data"


def question(qid: str, kind: str, manual: str | None = "guide", pages=(3,)):
    return SimpleNamespace(id=qid, kind=kind, manual=manual, pages=pages)


def hit(page: int, kind: str = "content", document: str = "guide.pdf"):
    return SimpleNamespace(document_name=document, page=page, kind=kind)


NAVIGATION = frozenset({"guide.pdf#2"})


def is_navigation(found) -> bool:
    return found.kind == "navigation" or bench.page_key(found) in NAVIGATION


def case(qid, kind, hits, pages=(3,)):
    relevant = frozenset(f"guide.pdf#{p}" for p in pages)
    return bench.retrieval_case(
        question(qid, kind, pages=pages), hits, relevant=relevant, is_navigation=is_navigation
    )


def test_retrieval_scores_pages_per_kind_and_counts_navigation_first():
    cases = [
        case("h1", "heading", [hit(3), hit(2)]),  # right page first
        case("h2", "heading", [hit(2), hit(4), hit(3)]),  # contents first, right page third
        case("h3", "heading", [hit(9, "navigation"), hit(8)]),  # a navigation chunk first
        case("r1", "reworded", [hit(5), hit(6), hit(7), hit(8), hit(9), hit(3)]),  # sixth
        case("r2", "reworded", [hit(3, document="other.pdf"), hit(4)], pages=(3, 4)),
    ]
    summary = bench.retrieval_summary(cases, labelled_navigation=NAVIGATION)
    assert summary["heading"]["top1"]["value"] == round(1 / 3, 4)
    assert summary["heading"]["top5"]["value"] == round(2 / 3, 4)
    assert summary["heading"]["top1"]["n"] == 3
    assert summary["reworded"]["top1"]["value"] == 0.0  # page 3 of another manual is no hit
    assert summary["reworded"]["top5"]["value"] == 0.5  # r2's page 4 is second
    assert summary["all"]["top1"]["n"] == 5
    assert summary["navigation_top1"]["value"] == round(2 / 5, 4)
    assert summary["navigation_top1_labelled"]["value"] == round(1 / 5, 4)  # labels only
    assert summary["per_manual"]["guide"]["heading_top5"] == round(2 / 3, 4)
    low, high = summary["heading"]["top5"]["ci95"]
    assert 0 <= low <= 2 / 3 <= high <= 1


def draft(status: str, content: str = ""):
    return SimpleNamespace(status=status, content=content, sources=(hit(3),), seconds=1.5)


PAGE = "Tables can split across pages if needed. You can repeat the first rows after each split."


def test_answers_count_page_quotes_among_shown_answers_and_withheld_unanswerables():
    rows = [
        bench.answer_case(
            question("h1", "heading"),
            draft("extractive", "You can repeat the first rows after each split. [1]"),
            page_texts=[PAGE],
        ),
        bench.answer_case(
            question("r1", "reworded"),
            draft("answered", "Use a table."),  # shown, but no sentence of the page
            page_texts=[PAGE],
        ),
        bench.answer_case(
            question("r2", "reworded"), draft("withheld", "not shown"), page_texts=[PAGE]
        ),
        bench.answer_case(
            question("u1", "unanswerable", None, ()), draft("no_sources"), page_texts=[]
        ),
        bench.answer_case(
            question("u2", "unanswerable", None, ()), draft("abstained"), page_texts=[]
        ),
        bench.answer_case(
            question("u3", "unanswerable", None, ()), draft("answered", "Sure!"), page_texts=[]
        ),
    ]
    summary = bench.answers_summary(rows)
    assert summary["shown"]["value"] == round(2 / 3, 4)  # of the answerable questions
    assert summary["quotes_answer_page"] == {
        "value": 0.5,
        "ci95": summary["quotes_answer_page"]["ci95"],
        "n": 2,
    }
    assert summary["quotes_answer_page_by_kind"]["heading"]["value"] == 1.0
    assert summary["unanswerable_withheld"]["value"] == round(2 / 3, 4)
    assert summary["status"]["unanswerable"] == {"no_sources": 1, "abstained": 1, "answered": 1}
    assert summary["seconds_per_answer"] == {"mean": 1.5, "max": 1.5}


def test_targets_are_checked_in_the_right_direction():
    share = {"value": 0.95, "ci95": [0.9, 1.0], "n": 40}
    retrieval = {
        "heading": {"top1": share},
        "reworded": {"top5": {**share, "value": 0.5}},
        "navigation_top1": {**share, "value": 0.01},
    }
    checked = bench.targets_check(retrieval, None)
    assert checked["heading_top1"]["met"] is True
    assert checked["reworded_top5"]["met"] is False
    assert checked["navigation_top1_max"]["met"] is True  # at most 2%
    assert checked["unanswerable_withheld"] == {"target": 0.9, "value": None, "met": None}
    answers = {"unanswerable_withheld": {**share, "value": 0.8}}
    assert bench.targets_check(retrieval, answers)["unanswerable_withheld"]["met"] is False


def test_the_recorded_run_has_the_documented_shape():
    result = json.loads((DATA / "manuals.json").read_text())
    assert result["benchmark"] == "manuals"
    assert {m["name"] for m in result["manuals"]} >= {"R-intro", "reportlab-userguide"}
    for kind in ("heading", "reworded"):
        for k in ("top1", "top5"):
            assert set(result["retrieval"][kind][k]) == {"value", "ci95", "n"}
    assert set(result["targets"]) == set(bench.TARGETS)
    assert result["answers"]["model"]
    assert result["machine"]["cores"] >= 1
