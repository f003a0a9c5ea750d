"""The run history page: admins only, runs grouped by kind and dataset, a chart per group."""

import re

import pytest

from evaluation.history import axis_floor
from evaluation.models import EvalRun

pytestmark = pytest.mark.django_db


def history(page: str) -> str:
    """The history part of the page (the forms above it name datasets too; the layout draws
    icons)."""
    start = page.index("<h1>Evaluation runs</h1>")
    return page[start : page.index("</main>", start)]


def retrieval_run(mrr: float, **fields) -> EvalRun:
    metrics = {mode: {"recall@5": 0.9, "mrr@10": mrr} for mode in ("dense", "lexical", "hybrid")}
    return EvalRun.objects.create(
        kind="retrieval", dataset="halueval-qa", questions=10, metrics=metrics, **fields
    )


def test_admins_see_each_dataset_with_a_chart_and_the_gate(admin_client):
    retrieval_run(0.8, model_ids={"embedder": "minilm"})
    dropped = retrieval_run(0.5, gate={"passed": False, "regressions": []})
    EvalRun.objects.create(
        kind="answers",
        dataset="/srv/cases.jsonl",
        questions=4,
        metrics={"positives": {"contains": 0.75, "citation_precision": None}, "negatives": {}},
        model_ids={"generator": "deepseek"},
        prompt_version="rag-answer/1",
    )

    page = history(admin_client.get("/evaluation/").content.decode())

    assert page.index("/srv/cases.jsonl") < page.index("halueval-qa")  # newest group first
    assert page.count("<svg") == 2
    # retrieval: 4 lines of 2 points each on an axis from 0.4 (a tenth below the lowest value,
    # 0.5) at y = 136 to 1 at y = 24: y = 136 - (value - 0.4) / 0.6 * 112
    hybrid_mrr = re.search(r'<polyline points="([^"]+)"[^>]*stroke="#1f8a4c"', page).group(1)
    assert hybrid_mrr == "40.0,61.3 536.0,117.3"
    assert '<text x="0" y="140.0" class="tick">0.4</text>' in page
    assert '<text x="0" y="84.0" class="tick">0.7</text>' in page
    # answers: only the metrics it has (citation precision was not measured)
    assert "answer correct" in page and "0.750" in page
    assert "citation precision" not in page
    assert "generator: deepseek · rag-answer/1" in page
    assert f"/admin/evaluation/evalrun/{dropped.pk}/change/" in page
    assert "failed" in page


def test_the_page_is_for_admins(client, staff_user):
    client.force_login(staff_user)
    assert client.get("/evaluation/").status_code == 403


def test_no_runs_yet(admin_client):
    page = history(admin_client.get("/evaluation/").content.decode())
    assert "No runs yet" in page
    assert "<svg" not in page


def test_the_admin_change_page_shows_a_run(admin_client):
    run = retrieval_run(0.7)
    page = admin_client.get(f"/admin/evaluation/evalrun/{run.pk}/change/").content.decode()
    assert "hybrid" in page
    listing = admin_client.get("/admin/evaluation/evalrun/").content.decode()
    assert "hybrid recall@5 0.900" in listing


@pytest.mark.parametrize(
    "values, floor",
    [([0.95, 1.0], 0.9), ([0.5, 0.8], 0.4), ([0.01, 0.9], 0.0), ([0.12], 0.1), ([], 0.0)],
)
def test_the_axis_starts_a_tenth_below_the_lowest_value(values, floor):
    assert axis_floor(values) == pytest.approx(floor)
