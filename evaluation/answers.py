"""Answer evaluation: ask every question of a model as the app would, score what comes back.

For each case the app's retriever finds passages and ``assistant.services.answer_unrecorded``
answers from them: the same relevance floor, prompt, model call, citation verifier and extractive
fallback as a user's question, recorded nowhere but here. Three question sets:

- **positives**: the questions as asked. Correctness of the answer the user would be shown and
  of the model's own text (reference contained, token F1), citation precision (share of the
  model's citations the verifier finds ``supported``), and how often an answer was given.
- **negatives**: the same questions with their relevant passages removed from what was found,
  so the evidence is gone; the right behaviour is to abstain (or find nothing relevant).
- **judge** (when a judge model is configured): an LLM's verdict on whether each model answer is
  backed by the passages it was given, after calibrating the judge on HaluEval's right vs
  hallucinated answers; its agreement is reported beside the score.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from django.conf import settings

from assistant import llms
from assistant import services as answering
from rag import metrics, prompting
from rag.judge import JUDGE_VERSION, Judge, calibrate

from .datasets import Case, DatasetError, Log, _quiet, dataset_open, halueval_calibration
from .models import EvalRun
from .services import (
    DEFAULT_TOLERANCE,
    RETRIEVER_SETTINGS,
    ROUND,
    EvalResult,
    EvaluationError,
    run_store,
)

DEFAULT_CALIBRATION = 25  # pairs: 50 judge calls
# Not answering without evidence: the model abstained, nothing relevant was found, or the
# model's unverified answer was withheld with nothing worth quoting.
ABSTAINED = {"abstained", "no_sources", "withheld"}
TEXT_KEEP = 600  # characters of each answer kept in the run's details
JUDGE_LOCAL_MAX_TOKENS = 8


def eval_answers_run(
    *,
    dataset: str,
    model_id: str | None = None,
    judge_id: str | None = None,
    limit: int | None = None,
    negatives: int | None = None,
    calibration: int | None = None,
    passages: int | None = None,
    gate: bool = False,
    tolerance: float = DEFAULT_TOLERANCE,
    log: Log = _quiet,
) -> EvalResult:
    """Evaluate answers on ``dataset`` with ``model_id`` (default: the default model), store the
    run and compare it with the previous comparable run. ``negatives``: how many of the
    questions are also asked without their evidence (default: all that name relevant
    passages). ``judge_id`` (default ``settings.EVAL_JUDGE_MODEL``, none when empty) adds the
    judge's faithfulness score, calibrated on ``calibration`` HaluEval pairs.

    Raises EvaluationError / DatasetError on bad arguments."""
    for flag, value in (("--limit", limit), ("--calibration", calibration)):
        if value is not None and value < 1:
            raise EvaluationError(f"{flag} must be at least 1")
    for flag, value in (("--negatives", negatives), ("--passages", passages)):
        if value is not None and value < 0:
            raise EvaluationError(f"{flag} must be >= 0")
    if tolerance < 0:
        raise EvaluationError("--tolerance must be >= 0")
    try:
        model = llms.model_get(model_id)
        judge_id = judge_id if judge_id is not None else settings.EVAL_JUDGE_MODEL
        judge_choice = llms.model_get(judge_id) if judge_id else None
    except llms.UnknownModel as exc:
        raise EvaluationError(str(exc)) from None

    with dataset_open(dataset, limit=limit, passages=passages, answers=True, log=log) as data:
        if any(not case.reference for case in data.cases):
            raise DatasetError(f"dataset {data.name!r}: some questions have no reference answer")
        askable = [case for case in data.cases if case.relevant]
        negative_cases = askable[:negatives] if negatives is not None else askable
        log(
            f"answering {len(data.cases)} questions (+{len(negative_cases)} without their "
            f"evidence) with {model.id} on {data.name} ({data.corpus_description})"
        )
        ask = _Asker(data.retriever, data.collections, model.id)
        positives = []
        for done, case in enumerate(data.cases, start=1):
            positives.append((case, ask(case, remove_relevant=False)))
            log(f"answered {done}/{len(data.cases)}: {positives[-1][1].status}")
        negatives_done = []
        for done, case in enumerate(negative_cases, start=1):
            negatives_done.append((case, ask(case, remove_relevant=True)))
            log(f"negative {done}/{len(negative_cases)}: {negatives_done[-1][1].status}")
        calibration_items = data.calibration or (halueval_calibration() if judge_choice else [])
        name, questions = data.name, len(data.cases)
        version, description = data.corpus_version, data.corpus_description
        retriever = {key: getattr(data.retriever, key) for key in RETRIEVER_SETTINGS}
        dataset_details = data.details

    scores = {"positives": _positive_scores(positives), "negatives": {}}
    if negatives_done:
        abstained = sum(draft.status in ABSTAINED for _, draft in negatives_done)
        scores["negatives"]["abstention_rate"] = round(abstained / len(negatives_done), ROUND)
    details = {
        "status": {
            "positives": dict(Counter(draft.status for _, draft in positives)),
            "negatives": dict(Counter(draft.status for _, draft in negatives_done)),
        },
        "seconds": round(sum(d.seconds for _, d in positives + negatives_done), 1),
        "usage": _usage_total(d for _, d in positives + negatives_done),
        "cases": [_case_json(case, draft) for case, draft in positives],
        "negatives": [_negative_json(case, draft) for case, draft in negatives_done],
    }
    judge_parameters = None
    if judge_choice is not None:
        judge = _judge_for(judge_choice)
        items = calibration_items[: calibration or DEFAULT_CALIBRATION]
        log(f"calibrating the judge {judge.id} on {len(items)} HaluEval pairs")
        details["judge_calibration"] = calibrate(judge, items) if items else None
        log(f"judging {len(positives)} answers with {judge.id}")
        scores["judge"], details["judge"] = _judge_answers(judge, judge_choice.id, positives)
        for row, verdict in zip(details["cases"], details["judge"]["verdicts"], strict=True):
            row["judge"] = verdict
        del details["judge"]["verdicts"]
        judge_parameters = {"id": judge_choice.id, "version": JUDGE_VERSION, "pairs": len(items)}

    parameters = {
        "limit": limit,
        "negatives": len(negative_cases),
        "judge": judge_parameters,
        **dataset_details,
        # the system under test: not part of what makes two runs comparable
        "retriever": retriever,
        "answering": _answering_settings(),
    }
    model_ids = {"generator": model.id, "generator_model": model.llm.model}
    if judge_choice is not None:
        model_ids["judge"] = judge_choice.id
    model_ids["embedder"] = getattr(ask.retriever.embedder, "name", "")
    return run_store(
        kind=EvalRun.Kind.ANSWERS,
        dataset=name,
        parameters=parameters,
        questions=questions,
        metrics=scores,
        gate=gate,
        tolerance=tolerance,
        model_ids=model_ids,
        prompt_version=prompting.TEMPLATE_VERSION,
        corpus_version=version,
        corpus_description=description,
        details=details,
    )


class _Asker:
    """Retrieves as the app does (hybrid, ``ANSWER_TOP_K``) and answers without recording."""

    def __init__(self, retriever, collections, model_id: str) -> None:
        self.retriever, self.collections, self.model_id = retriever, collections, model_id

    def __call__(self, case: Case, *, remove_relevant: bool) -> answering.Draft:
        k = settings.ANSWER_TOP_K
        extra = len(case.relevant) if remove_relevant else 0
        found = self.retriever.search(case.query, k=k + extra, collections=self.collections)
        if remove_relevant:
            found = [hit for hit in found if hit.chunk_id not in case.relevant]
        try:
            return answering.answer_unrecorded(
                question=case.query, sources=found[:k], model_id=self.model_id
            )
        except answering.QuestionError as exc:
            raise EvaluationError(str(exc)) from None


def _positive_scores(results: Sequence[tuple[Case, answering.Draft]]) -> dict:
    shown = [metrics.answer_contains(d.content, c.reference) for c, d in results]
    shown_f1 = [metrics.token_f1(d.content, c.reference) for c, d in results]
    own = [metrics.answer_contains(d.model_answer, c.reference) for c, d in results]
    own_f1 = [metrics.token_f1(d.model_answer, c.reference) for c, d in results]
    cited = [c for _, d in results if d.report is not None for c in d.report.citations]
    supported = sum(c.verdict == "supported" for c in cited)
    answered = sum(d.status == "answered" for _, d in results)
    precision = metrics.share(supported, len(cited))
    return {
        "contains": round(metrics.mean(shown), ROUND),
        "token_f1": round(metrics.mean(shown_f1), ROUND),
        "model_contains": round(metrics.mean(own), ROUND),
        "model_token_f1": round(metrics.mean(own_f1), ROUND),
        "citation_precision": None if precision is None else round(precision, ROUND),
        "answered_rate": round(answered / len(results), ROUND) if results else 0.0,
    }


def _judge_for(choice: llms.ModelChoice) -> Judge:
    resilient, _ = llms.resilient([choice])  # retries; external judges get PII redaction
    local = choice.llm.provider == "local"
    max_tokens = JUDGE_LOCAL_MAX_TOKENS if local else settings.ANSWER_MAX_TOKENS
    return Judge(resilient, max_tokens=max_tokens)


def _judge_answers(judge: Judge, judge_id: str, results) -> tuple[dict, dict]:
    """The judge's verdict on each model answer that is an answer (not an abstention, not an
    error) against the passages it was given. Passages a routing policy keeps from the judge
    model (sensitive collections, external judge) are not sent: counted as not allowed."""
    verdicts: list[bool | None] = []
    counts = Counter()
    for case, draft in results:
        text = draft.model_answer.strip()
        if not text or not draft.sources or prompting.is_abstention(text):
            verdicts.append(None)
            counts["not_judged"] += 1
            continue
        if answering.route_refusal(question=case.query, sources=draft.sources, model_id=judge_id):
            verdicts.append(None)
            counts["not_allowed"] += 1
            continue
        verdict = judge.judge(
            question=case.query, answer=text, passages=[s.text for s in draft.sources]
        )
        verdicts.append(verdict.faithful)
        counts[_VERDICT_NAMES[verdict.faithful]] += 1
        counts["errors"] += verdict.error
    decided = counts["faithful"] + counts["unfaithful"]
    score = {"faithfulness": round(counts["faithful"] / decided, ROUND) if decided else None}
    return score, {**{k: counts[k] for k in _JUDGE_COUNTS}, "verdicts": verdicts}


_VERDICT_NAMES = {True: "faithful", False: "unfaithful", None: "undecided"}
_JUDGE_COUNTS = ("faithful", "unfaithful", "undecided", "errors", "not_judged", "not_allowed")


def _answering_settings() -> dict:
    return {
        name.lower(): getattr(settings, name)
        for name in (
            "ANSWER_TOP_K",
            "ANSWER_MIN_RELEVANCE",
            "ANSWER_MAX_TOKENS",
            "LOCAL_ANSWER_TOP_K",
            "LOCAL_ANSWER_MAX_TOKENS",
            "LOCAL_SOURCE_CHARS",
        )
    }


def _usage_total(drafts) -> dict:
    total = Counter()
    for draft in drafts:
        for key in ("prompt_tokens", "completion_tokens", "reasoning_tokens"):
            total[key] += draft.usage.get(key) or 0
    return dict(total)


def _cut(text: str) -> str:
    return text if len(text) <= TEXT_KEEP else text[: TEXT_KEEP - 1] + "…"


def _case_json(case: Case, draft: answering.Draft) -> dict:
    citations = draft.report.citations if draft.report is not None else ()
    return {
        "query": case.query,
        "reference": case.reference,
        "status": draft.status,
        "answer": _cut(draft.content),
        "model_answer": _cut(draft.model_answer),
        "contains": metrics.answer_contains(draft.content, case.reference),
        "token_f1": round(metrics.token_f1(draft.content, case.reference), ROUND),
        "citations": len(citations),
        "supported": sum(c.verdict == "supported" for c in citations),
        "sources": [s.chunk_id for s in draft.sources],
        "relevant_given": bool(case.relevant & {s.chunk_id for s in draft.sources}),
        "error": draft.error,
        "seconds": draft.seconds,
    }


def _negative_json(case: Case, draft: answering.Draft) -> dict:
    return {
        "query": case.query,
        "status": draft.status,
        "answer": _cut(draft.content),
        "sources": [s.chunk_id for s in draft.sources],
    }
