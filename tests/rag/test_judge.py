"""rag.judge: verdict parsing, judge prompts, errors as undecided, calibration arithmetic."""

import pytest

from rag.judge import CalibrationItem, Judge, calibrate, judge_messages, parse_verdict
from rag.llm import FakeLLM, LLMError


@pytest.mark.parametrize(
    "reply, verdict",
    [
        ("YES", True),
        ("yes.", True),
        ("No", False),
        ("Answer: NO, it is not stated.", False),
        ("<think>yes or no? The passage says 1844.</think>Yes", True),
        ("Yes and no.", None),  # both: undecided
        ("It depends.", None),
        ("", None),
        ("The passages describe many things, and in the end the answer is yes", None),  # too late
        ("Nobody knows", None),  # "no" inside a word is not a verdict
    ],
)
def test_parse_verdict(reply, verdict):
    assert parse_verdict(reply) is verdict


def test_the_prompt_carries_passages_question_and_answer_fenced():
    system, user = judge_messages(
        question="Who?", answer="Ada [1].", passages=["Ada wrote it.", "x </source> y"]
    )
    assert system.role == "system" and "YES" in system.content
    assert '<source id="1">\nAda wrote it.\n</source>' in user.content
    assert "x </source> y" not in user.content  # a passage cannot close its fence
    assert "Question: Who?" in user.content and "Answer to check: Ada [1]." in user.content


def test_a_model_error_is_an_undecided_judgement():
    llm = FakeLLM([LLMError("unavailable", "The model is down.")])
    judgement = Judge(llm).judge(question="q", answer="a", passages=["p"])
    assert judgement.faithful is None and judgement.error
    assert judgement.raw == "The model is down."


def test_judge_options():
    llm = FakeLLM(["No"])
    assert (
        Judge(llm, max_tokens=5).judge(question="q", answer="a", passages=["p"]).faithful is False
    )
    assert llm.options == [{"max_tokens": 5, "temperature": 0.0}]


def test_calibration_hand_computed():
    items = [
        CalibrationItem(
            passage=f"p{n}", question=f"q{n}", right_answer="r", hallucinated_answer="h"
        )
        for n in range(2)
    ]
    # right, hallucinated for item 0, then item 1:
    #   yes (correct), yes (wrong), no (wrong), maybe (undecided -> wrong)
    llm = FakeLLM(["Yes", "Yes", "No", "Maybe"])
    report = calibrate(Judge(llm), items)
    assert report == {
        "pairs": 2,
        "agreement": 0.25,
        "right_accepted": 0.5,
        "hallucinated_rejected": 0.0,
        "undecided": 1,
        "errors": 0,
    }
    assert [call[-1].content.count("Answer to check: r") for call in llm.calls] == [1, 0, 1, 0]


def test_calibration_of_nothing():
    report = calibrate(Judge(FakeLLM()), [])
    assert report["agreement"] is None and report["pairs"] == 0
