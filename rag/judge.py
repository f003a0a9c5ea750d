"""LLM-as-judge faithfulness: does a model say that an answer is backed by its passages?

A judge is only as good as its agreement with known verdicts, so it is calibrated before it is
trusted: HaluEval pairs one passage and question with a right answer and a hallucinated one; a
useful judge accepts the first and rejects the second. ``calibrate`` reports how often it does,
next to every faithfulness score it produces (``manage.py eval answers --judge``).

The judge sees the passages, the question and the answer, and replies with one word. Anything
that is not a clear yes or no is *undecided*: counted as such, never guessed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .llm import LLM, LLMError, complete
from .prompting import neutralise_fences
from .types import Message

JUDGE_VERSION = "faithfulness-judge/1"

SYSTEM_PROMPT = """\
You check answers against passages. Reply with one word only:
YES if everything the answer states is stated in the passages,
NO if the answer states anything the passages do not support or contradict."""

_THINK_RE = re.compile(r"<think>.*?(?:</think>|\Z)", re.IGNORECASE | re.DOTALL)
_VERDICT_RE = re.compile(r"\b(yes|no)\b", re.IGNORECASE)
_VERDICT_WINDOW = 40  # characters: "Yes." or "Answer: NO", not a yes buried in an essay


@dataclass(frozen=True)
class Judgement:
    faithful: bool | None  # None: the judge gave no clear verdict (or failed)
    raw: str  # what it replied, or the error
    error: bool = False


def judge_messages(*, question: str, answer: str, passages: Sequence[str]) -> list[Message]:
    blocks = "\n".join(
        f'<source id="{n}">\n{neutralise_fences(text)}\n</source>'
        for n, text in enumerate(passages, start=1)
    )
    user = (
        f"Passages:\n{blocks}\n\nQuestion: {question}\n\nAnswer to check: {answer}\n\n"
        "Is everything the answer states supported by the passages? Reply YES or NO."
    )
    return [Message(role="system", content=SYSTEM_PROMPT), Message(role="user", content=user)]


def parse_verdict(reply: str) -> bool | None:
    """True for yes, False for no, None when the reply's start says neither (or both)."""
    text = _THINK_RE.sub("", reply).strip()[:_VERDICT_WINDOW]
    words = {match.lower() for match in _VERDICT_RE.findall(text)}
    if len(words) != 1:
        return None
    return words == {"yes"}


class Judge:
    """Asks ``llm`` for a verdict; model errors become undecided judgements, not exceptions."""

    def __init__(self, llm: LLM, *, max_tokens: int = 8) -> None:
        self.llm, self.max_tokens = llm, max_tokens

    @property
    def id(self) -> str:
        return self.llm.id

    def judge(self, *, question: str, answer: str, passages: Sequence[str]) -> Judgement:
        messages = judge_messages(question=question, answer=answer, passages=passages)
        try:
            completion = complete(self.llm, messages, max_tokens=self.max_tokens, temperature=0.0)
        except LLMError as exc:
            return Judgement(faithful=None, raw=exc.user_message, error=True)
        except Exception as exc:  # a local model's own errors: recorded, the evaluation goes on
            return Judgement(faithful=None, raw=f"{type(exc).__name__}: {exc}", error=True)
        return Judgement(faithful=parse_verdict(completion.answer), raw=completion.answer)


@dataclass(frozen=True)
class CalibrationItem:
    passage: str
    question: str
    right_answer: str
    hallucinated_answer: str


def calibrate(judge: Judge, items: Iterable[CalibrationItem]) -> dict:
    """Ask the judge about each item's right and hallucinated answer; report its agreement with
    the known verdicts (undecided counts as disagreement), per side, and how often it failed."""
    right = wrong = right_ok = wrong_ok = undecided = errors = 0
    for item in items:
        for answer, expected in ((item.right_answer, True), (item.hallucinated_answer, False)):
            verdict = judge.judge(question=item.question, answer=answer, passages=[item.passage])
            undecided += verdict.faithful is None
            errors += verdict.error
            if expected:
                right += 1
                right_ok += verdict.faithful is True
            else:
                wrong += 1
                wrong_ok += verdict.faithful is False
    asked = right + wrong
    return {
        "pairs": right,
        "agreement": _ratio(right_ok + wrong_ok, asked),
        "right_accepted": _ratio(right_ok, right),
        "hallucinated_rejected": _ratio(wrong_ok, wrong),
        "undecided": undecided,
        "errors": errors,
    }


def _ratio(hits: int, total: int) -> float | None:
    return round(hits / total, 4) if total else None
