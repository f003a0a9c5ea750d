"""`manage.py eval gate`: baselines written with their provenance and intervals, a drop below the
interval fails naming the dataset, metric, baseline, value now and interval, a change inside it
passes, an improvement is reported, and the committed baselines are well-formed."""

import json
import math

import numpy as np
import pytest

from evaluation.gate import BASELINES_DIR, baselines_load, bootstrap_half_width
from evaluation.services import METRIC_NAMES
from tests.evaluation.conftest import CISI_ALL, write_cisi
from tests.evaluation.test_eval_command import MODES, run_eval


@pytest.fixture
def baselines(tmp_path):
    return tmp_path / "baselines"


@pytest.fixture
def cisi_baseline(cisi_sample, baselines):
    """A baseline of the sample written by the command itself; returns (path, document)."""
    code, out, log = run_eval(
        "gate", "--update", "--dataset", "cisi", "--baselines", str(baselines), "--json"
    )
    assert code == 0, log
    assert json.loads(out)["datasets"][0]["status"] == "updated"
    path = baselines / "cisi.json"
    return path, json.loads(path.read_text())


def seed(path, *, mode="hybrid", metric="recall@1", value, half_width=0.1):
    document = json.loads(path.read_text())
    document["metrics"][mode][metric] = {"value": value, "half_width": half_width}
    path.write_text(json.dumps(document))


def gate(baselines, *args):
    return run_eval("gate", "--baselines", str(baselines), *args)


def test_a_baseline_records_where_its_numbers_come_from(cisi_baseline):
    _, document = cisi_baseline
    assert document["dataset"] == "cisi"
    assert document["slice"] == {"limit": 3, "passages": 4}
    assert document["questions"] == 3
    assert len(document["corpus"]["version"]) == 16
    assert len(document["code"]["commit"]) == 40 and isinstance(document["code"]["dirty"], bool)
    assert document["date"][:2] == "20"
    assert document["settings"]["retriever"]["rrf_k"] == 2.0
    assert set(document["settings"]["chunker"]) == {"tokens", "overlap"}
    assert document["settings"]["embedder"]
    assert document["interval"]["confidence"] == 0.95
    assert set(document["metrics"]) == MODES
    hybrid = document["metrics"]["hybrid"]
    assert set(hybrid) == set(METRIC_NAMES)
    # queries 1 and 2 find their document first, query 3 one of its two: recall@1 = 1, 1, 1/2
    assert hybrid["recall@1"]["value"] == pytest.approx(0.8333, abs=1e-4)
    assert hybrid["recall@1"]["half_width"] == bootstrap_half_width([1.0, 1.0, 0.5])
    assert hybrid["mrr@10"] == {"value": 1.0, "half_width": 1.0}  # 3 equal scores: 3/n


def test_the_gate_passes_on_its_own_baseline(cisi_baseline, baselines):
    code, out, log = gate(baselines)
    assert code == 0, log
    result = json.loads(out)
    assert result["passed"] is True
    (verdict,) = result["datasets"]
    assert verdict["dataset"] == "cisi" and verdict["status"] == "passed"
    assert verdict["problems"] == [] and verdict["settings_changed"] == {}
    assert {row["status"] for row in verdict["comparison"]} == {"ok"}
    assert len(verdict["comparison"]) == len(MODES) * len(METRIC_NAMES)
    assert "cisi: passed (15 metrics within their interval, 0 above)" in log


def test_a_drop_below_the_interval_fails_naming_the_metric(cisi_baseline, baselines):
    path, _ = cisi_baseline
    # more than the sample can reach, and the interval does not cover what it does reach
    seed(path, metric="recall@1", value=1.5, half_width=0.1)
    code, out, message = gate(baselines)
    assert code == 1
    assert "retrieval gate failed" in message
    assert (
        "cisi hybrid recall@1: baseline 1.5000, now 0.8333, allowed [1.4000, 1.6000]: "
        "dropped below the interval"
    ) in message
    assert "dense" not in message  # only the metric that dropped
    verdict = json.loads(out)["datasets"][0]  # the JSON is still printed
    assert verdict["status"] == "failed"
    dropped = [row for row in verdict["comparison"] if row["status"] == "dropped"]
    assert dropped == [
        {
            "mode": "hybrid",
            "metric": "recall@1",
            "baseline": 1.5,
            "now": 0.8333,
            "low": 1.4,
            "high": 1.6,
            "status": "dropped",
        }
    ]


def test_a_drop_inside_the_interval_passes(cisi_baseline, baselines):
    path, _ = cisi_baseline
    seed(path, metric="recall@1", value=0.9, half_width=0.1)  # now 0.8333 >= 0.8
    code, _, log = gate(baselines)
    assert code == 0, log
    seed(path, metric="recall@1", value=0.9, half_width=0.05)  # the same drop, a tighter one
    code, _, message = gate(baselines)
    assert code == 1 and "cisi hybrid recall@1: baseline 0.9000, now 0.8333" in message


def test_an_improvement_is_reported_not_taken(cisi_baseline, baselines):
    path, _ = cisi_baseline
    seed(path, mode="dense", metric="recall@1", value=0.5, half_width=0.1)
    code, out, log = gate(baselines)
    assert code == 0
    assert (
        "cisi dense recall@1: baseline 0.5000, now 0.8333, allowed [0.4000, 0.6000]: improved"
    ) in log
    assert "update the baseline deliberately" in log
    assert json.loads(path.read_text())["metrics"]["dense"]["recall@1"]["value"] == 0.5


def test_another_corpus_fails_until_the_baseline_is_updated(cisi_baseline, baselines, settings):
    write_cisi(settings.CISI_DIR, documents=CISI_ALL.replace("Leeds", "York"))
    code, _, message = gate(baselines)
    assert code == 1 and "cisi: the corpus differs from the baseline's" in message
    code, _, log = gate(baselines, "--update")
    assert code == 0, log
    assert gate(baselines)[0] == 0


def test_changed_settings_are_reported(cisi_baseline, baselines, settings):
    settings.RAG_RETRIEVER = {**settings.RAG_RETRIEVER, "rrf_k": 60.0}
    code, out, log = gate(baselines)
    assert code == 0, log  # the sample's metrics do not move
    assert "setting retriever.rrf_k was 2.0 in the baseline, now 60.0" in log
    assert json.loads(out)["datasets"][0]["settings_changed"] == {"retriever.rrf_k": [2.0, 60.0]}


def test_an_update_keeps_the_slice_unless_told(cisi_baseline, baselines):
    path, _ = cisi_baseline
    assert gate(baselines, "--update", "--limit", "1")[0] == 0
    assert json.loads(path.read_text())["slice"] == {"limit": 1, "passages": 4}
    assert gate(baselines, "--update")[0] == 0
    assert json.loads(path.read_text())["questions"] == 1
    assert gate(baselines)[0] == 0


@pytest.mark.parametrize(
    "args, expected",
    [
        ([], "no baselines in"),
        (["--dataset", "cisi"], "no baseline for 'cisi'"),
        (["--dataset", "feedback", "--update"], "built-in development sets, not 'feedback'"),
        (["--dataset", "../cases.jsonl", "--update"], "not '../cases.jsonl'"),
        (["--update", "--dataset", "cisi", "--limit", "0"], "--limit must be at least 1"),
        (["--limit", "5"], "only with --update"),
        (["--update", "--dataset", "cisi", "--limit", "x"], "--limit must be a number"),
    ],
)
def test_bad_arguments_exit_2(baselines, args, expected):
    code, out, message = gate(baselines, *args)
    assert (code, out) == (2, "")
    assert expected in message


def test_a_malformed_baseline_exits_2_naming_it(baselines):
    baselines.mkdir()
    (baselines / "cisi.json").write_text('{"metrics": {}}')
    code, _, message = gate(baselines)
    assert code == 2 and "cisi.json: not a baseline" in message


def test_bootstrap_half_width():
    rng = np.random.default_rng(7)
    coin = rng.integers(0, 2, size=400).astype(float)
    half = bootstrap_half_width(coin)
    assert half == bootstrap_half_width(coin)  # seeded: the same scores, the same interval
    normal = 1.96 * math.sqrt(coin.mean() * (1 - coin.mean()) / len(coin))
    assert half == pytest.approx(normal, rel=0.1)
    assert bootstrap_half_width([1.0] * 200) == 0.015  # at the ceiling: the rule of three
    assert bootstrap_half_width([0.0, 1.0]) > 0.4
    assert bootstrap_half_width([]) == 0.0


def test_the_committed_baselines_are_complete():
    """The files the gate runs in CI: one per development set, each with its provenance."""
    committed = baselines_load(BASELINES_DIR)
    assert {"halueval-qa", "cisi"} <= set(committed)
    for name, document in committed.items():
        assert document["dataset"] == name
        assert document["questions"] == document["slice"]["limit"]
        assert document["corpus"]["version"] and document["code"]["commit"]
        assert document["settings"]["retriever"] and document["date"]
        assert set(document["metrics"]) == MODES, name
        for mode, entries in document["metrics"].items():
            assert set(entries) == set(METRIC_NAMES), (name, mode)
            for entry in entries.values():
                assert 0 <= entry["value"] <= 1 and 0 <= entry["half_width"] <= 1
    assert committed["halueval-qa"]["slice"] == {"limit": 200, "passages": 1000}
    assert committed["cisi"]["questions"] == 76
