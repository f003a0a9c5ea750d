"""Answering a question: retrieve -> prompt -> complete -> verify -> record.

`answer_stream` is the one flow, written as a generator of events so the browser can watch it
happen (sources found, reasoning, answer tokens) and the JSON API and `manage.py ask` can simply
run it to the end (`answer_question`). Whatever happens, the turn is recorded: a failed model
call is an assistant message with status `error` and the reason, never a lost question.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, fields

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import F

from audit.services import audit_append
from core.components import get_embedder, get_retriever
from ingest.models import Collection
from ingest.selectors import readable_collection_slugs
from rag import citations as verifier
from rag import extractive, prompting, routing
from rag.llm import LLMError
from rag.local_llm import LocalModelError
from rag.retrieval import content_first
from rag.store import StoreLocked, StoreUnavailable
from rag.types import Citation, CitationReport, Completion, Delta, Message, ScoredChunk

from . import cache, inflight, llms
from .models import CachedAnswer, Conversation, Feedback
from .models import Message as Turn
from .streaming import LiveVerdicts

logger = logging.getLogger(__name__)

HISTORY_TURNS = 6  # earlier messages given to the model and to the query condenser
EXTRACTIVE_QUOTES = 3  # answering sentences quoted at most (the sentences they lean on aside)
EXTRACTIVE_LABEL = (
    "**Quoted from your documents — not verified as an answer.** The model's answer could not "
    "be checked against the documents, so here are the sentences that best match your question:"
)
# What the user is told when there is no answer to show. The documents, not the model, decide
# whether there is one: the wording says what was (not) found and points at the listed sources.
NO_SOURCES_TEXT = "Your documents don't seem to cover this: nothing I found is close to it."
WITHHELD_TEXT = (
    "Your documents don't seem to answer this. The passages found (listed as sources) are on "
    "related topics, but no sentence in them answers the question."
)
NAVIGATION_ONLY_TEXT = (
    "Your documents don't seem to answer this: it comes up only in a table of contents or an "
    "index (listed as sources), not in a passage that explains it."
)
NO_SOURCES_LISTED = 3  # closest passages below the relevance floor listed with a no-sources answer


class QuestionError(ValueError):
    """The question cannot be asked as given; the message says why."""


class ConversationBusy(QuestionError):
    """An answer is already being written in the conversation (one at a time)."""


@dataclass
class _Run:
    """The clock of one answer: laps per step, in milliseconds."""

    question: str
    started: float = field(default_factory=time.perf_counter)
    timings: dict[str, float] = field(default_factory=dict)
    dropped_sources: int = 0  # found but below the relevance floor (for the pipeline's trace)

    def lap(self, name: str, since: float) -> None:
        self.timings[name] = round((time.perf_counter() - since) * 1000, 1)


@dataclass
class AnswerRecord:
    """An assistant turn as it is recorded: the Message row (and from it the audit record),
    filled in by the steps of `answer_stream`, each setting the fields it owns."""

    # what was asked, of which model, over what
    question: str
    collections: list[str] | None
    llm_id: str
    provider: str
    model: str
    route: str
    route_reason: str
    # retrieve
    standalone_query: str = ""
    sources: list[dict] = field(default_factory=list)
    # route
    route_trace: dict = field(default_factory=dict)
    # generate
    prompt: list[dict] = field(default_factory=list)
    template_version: str = ""
    parameters: dict = field(default_factory=dict)
    model_answer: str = ""
    reasoning: str = ""
    reasoning_source: str = ""
    usage: dict = field(default_factory=dict)
    # verify
    citations: list[dict] = field(default_factory=list)
    invalid_markers: list = field(default_factory=list)
    uncited_sentences: list = field(default_factory=list)
    # the outcome
    status: str = ""
    content: str = ""
    error: str = ""
    replaces: Turn | None = None  # the answer a regenerated one replaces

    @classmethod
    def begin(
        cls, ask: _Ask, *, collections: list[str] | None, replaces: Turn | None
    ) -> AnswerRecord:
        choice = ask.choice
        return cls(
            question=ask.question,
            collections=collections,
            llm_id=choice.id,
            provider=choice.llm.provider,
            model=choice.llm.model,
            route=choice.id,
            route_reason=_route_reason(choice, ask.model_id),
            replaces=replaces,
        )

    def decline(self, status: str, content: str, run: _Run, **changes) -> dict:
        """No model answers (nothing found, navigation only, refused by the route): the
        pipeline says why, and its own trace stands for the reasoning."""
        for name, value in {"status": status, "content": content, **changes}.items():
            setattr(self, name, value)
        self.reasoning_source = "pipeline"
        self.reasoning = _trace(self, run, prompt=None, completion=None)
        return {"event": "answer", "text": content}

    def columns(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class _Ask:
    """A checked request: the question, the model chosen and what it continues or replaces."""

    question: str
    choice: llms.ModelChoice
    model_id: str | None
    conversation: Conversation | None
    regenerate: Turn | None = None  # the question whose answer is made again
    edit: Turn | None = None  # the question replaced by ``question``


@dataclass
class _Thread:
    """The conversation an answer is written in, and what the model is told of it."""

    conversation: Conversation
    question: Turn
    history: list[Message]
    claim: inflight.InFlight
    replaces: Turn | None = None


def answer_stream(
    *,
    user: AbstractBaseUser,
    question: str = "",
    conversation: Conversation | None = None,
    collections: Sequence[str] | None = None,
    model_id: str | None = None,
    unrestricted: bool = False,
    regenerate: bool = False,
    edit: bool = False,
) -> Iterator[dict]:
    """Yield events: ``start``, ``sources``, ``reasoning``/``answer`` pieces, then ``done`` with
    the recorded message (or ``error`` when not even the question could be recorded).

    ``regenerate``: answer the conversation's last question again (``question`` unused); the
    answer it replaces is kept, superseded. ``edit``: ``question`` replaces the conversation's
    last question, which is kept with its answer, superseded. One answer at a time per
    conversation: a Stop (`answer_stop`) ends it early, recorded as ``stopped``.

    Only collections ``user`` may read are searched (inside the Qdrant query), unless
    ``unrestricted`` (the command line, run by an operator who holds the data anyway).
    Raises QuestionError (ConversationBusy) before anything is recorded when the question,
    model or conversation is invalid (already answering).
    """
    ask = _ask_check(
        user=user,
        question=question,
        conversation=conversation,
        model_id=model_id,
        regenerate=regenerate,
        edit=edit,
    )
    searchable = _searchable(user, collections, unrestricted=unrestricted)
    thread = _thread_begin(user=user, ask=ask)
    try:
        yield {
            "event": "start",
            "conversation_id": thread.conversation.pk,
            "question_id": thread.question.pk,
            "model": ask.choice.id,
        }
        record = AnswerRecord.begin(ask, collections=searchable, replaces=thread.replaces)
        yield from _answer(record, ask=ask, thread=thread, run=_Run(question=ask.question))
    finally:
        thread.claim.release()


def _answer(record: AnswerRecord, *, ask: _Ask, thread: _Thread, run: _Run) -> Iterator[dict]:
    """retrieve -> route -> generate -> verify -> record; every way out records the turn."""
    conversation, stop = thread.conversation, thread.claim.stop_requested
    try:
        record.standalone_query = query = prompting.condense_question(
            question=ask.question,
            history=thread.history,
            cited_sections=_cited_sections(conversation, before=thread.question)
            if thread.history
            else (),
        )
        # A follow-up's meaning depends on its conversation, and Regenerate asks for a new
        # answer: neither is served from the cache.
        vector = None
        if not thread.history and ask.regenerate is None:
            vector = cache.question_vector(query)
            hit = cache.cache_lookup(
                vector=vector,
                collections=record.collections,
                llm_id=ask.choice.id,
                question=ask.question,
                requested=ask.model_id,
            )
            if hit is not None:
                yield from _serve_cached(*hit, record=record, thread=thread, run=run)
                return

        sources, found = _retrieve(record, query=query, run=run)
        yield {"event": "sources", "query": query, "sources": record.sources}
        if not sources:
            yield record.decline(Turn.Status.NO_SOURCES, _nothing_found(query, found), run)
            yield _record(record, thread=thread, run=run)
            return
        if not any(s.kind == "content" for s in sources):
            # Only contents or index pages matched: they name the topic but explain nothing,
            # and they are never given to a model or quoted.
            yield record.decline(Turn.Status.WITHHELD, NAVIGATION_ONLY_TEXT, run)
            yield _record(record, thread=thread, run=run)
            return

        decision = _route(question=ask.question, sources=sources, requested=ask.model_id)
        record.route_reason = "; ".join(decision.reasons)
        record.route_trace = {"decision": decision.as_record(), "generations": []}
        if decision.refused:
            yield record.decline(Turn.Status.REFUSED, decision.refused, run, route="refused")
            yield _record(record, thread=thread, run=run)
            return
        if stop():
            yield record.decline(Turn.Status.STOPPED, STOPPED_BEFORE_TEXT, run)
            yield _record(record, thread=thread, run=run)
            return

        began = time.perf_counter()
        result = yield from _generate(
            decision.chain,
            question=ask.question,
            query=query,
            sources=sources,
            history=thread.history,
            run=run,
            stop=stop,
        )
        if decision.escalate_to:
            result = yield from _escalate(
                result, record, to=decision.escalate_to, ask=ask, query=query,
                sources=sources, thread=thread, run=run,
            )  # fmt: skip
        run.lap("llm", began)
        result.fill(record, run)
        done = _record(record, thread=thread, run=run)
        if vector is not None:
            message = Turn.objects.get(pk=done["message_id"])
            cache.cache_store(message=message, vector=vector, collections=record.collections)
        yield done

    except (StoreUnavailable, StoreLocked) as exc:
        record.status, record.error = Turn.Status.ERROR, f"search is unavailable: {exc}"
        yield _record(record, thread=thread, run=run)
    except Exception as exc:  # a bug must still leave a record and a message, not a 500
        logger.exception("answering failed")
        record.status = Turn.Status.ERROR
        record.error = f"internal error ({type(exc).__name__}: {exc})"
        yield _record(record, thread=thread, run=run)


def _retrieve(
    record: AnswerRecord, *, query: str, run: _Run
) -> tuple[list[ScoredChunk], list[ScoredChunk]]:
    """The passages above the relevance floor (content first, so the passages a model is given
    are [1]..[m] of the sources listed and its markers number the passages the user sees) and
    everything found. With none above the floor, the closest are listed all the same, marked,
    and given to no model."""
    began = time.perf_counter()
    found = content_first(
        get_retriever().search(query, k=settings.ANSWER_TOP_K, collections=record.collections)
    )
    run.lap("retrieve", began)
    sources = [s for s in found if (s.dense_score or 0.0) >= settings.ANSWER_MIN_RELEVANCE]
    run.dropped_sources = len(found) - len(sources)
    if sources:
        record.sources = [_source_json(n, s) for n, s in enumerate(sources, 1)]
    else:
        closest = sorted(found, key=lambda s: -(s.dense_score or 0.0))[:NO_SOURCES_LISTED]
        record.sources = [_source_json(n, s, below_floor=True) for n, s in enumerate(closest, 1)]
    return sources, found


def _escalate(
    first: _Generation,
    record: AnswerRecord,
    *,
    to: str,
    ask: _Ask,
    query: str,
    sources: Sequence[ScoredChunk],
    thread: _Thread,
    run: _Run,
):
    """Ask ``to`` again when the internal model's answer is not grounded (rag.routing)."""
    if first.completion is None:
        return first
    escalate, why = routing.should_escalate(
        status=first.status,
        # the model's own answer is judged, not the quotes that replaced it
        has_unsupported=(first.model_report or first.report).has_unsupported,
        abstained=first.status == Turn.Status.ABSTAINED,
        relevant_sources=len(sources),
    )
    if not escalate:
        return first
    yield {"event": "escalate", "to": to, "reason": why}
    second = yield from _generate(
        (to,),
        question=ask.question,
        query=query,
        sources=sources,
        history=thread.history,
        run=run,
        stop=thread.claim.stop_requested,
    )
    record.route_trace["escalation"] = {"reason": why, "from": first.summary(), "to": to}
    if second.completion is not None or second.status == Turn.Status.STOPPED:
        record.route_reason += f"; escalated to {to}: {why}"
        return second
    record.route_reason += f"; escalation to {to} failed ({second.error}), the first answer stands"
    return first.with_generations(first.generations + second.generations)


def _ask_check(
    *,
    user: AbstractBaseUser,
    question: str,
    conversation: Conversation | None,
    model_id: str | None,
    regenerate: bool,
    edit: bool,
) -> _Ask:
    if conversation is not None and conversation.user_id != user.pk:
        raise QuestionError("no such conversation")
    last = None
    if regenerate or edit:
        if regenerate and edit:
            raise QuestionError("regenerate or edit, not both")
        if conversation is None:
            raise QuestionError("regenerate and edit need the conversation (conversation_id)")
        last = _last_question(conversation)
        if last is None:
            raise QuestionError("the conversation has no question to answer again")
        if regenerate:
            question = last.content
    question = (question or "").strip()
    if not question:
        raise QuestionError("the question is empty")
    if len(question) > settings.QUESTION_MAX_CHARS:
        raise QuestionError(
            f"the question is {len(question)} characters long; the limit is "
            f"{settings.QUESTION_MAX_CHARS} (QUESTION_MAX_CHARS)"
        )
    try:
        choice = llms.model_get(model_id)
    except llms.UnknownModel as exc:
        raise QuestionError(str(exc)) from exc
    return _Ask(
        question=question,
        choice=choice,
        model_id=model_id,
        conversation=conversation,
        regenerate=last if regenerate else None,
        edit=last if edit else None,
    )


def _thread_begin(*, user: AbstractBaseUser, ask: _Ask) -> _Thread:
    """Claim the conversation for this answer (a new one for a first question) and record the
    question: a new turn, or for Regenerate the last one, whose answer the new one replaces."""
    conversation = ask.conversation
    if conversation is None:
        title = " ".join(ask.question.split())
        title = title if len(title) <= 80 else title[:79] + "…"
        conversation = Conversation.objects.create(user=user, title=title)
    try:
        claim = inflight.InFlight.claim(conversation.pk)
    except inflight.Busy:
        raise ConversationBusy(
            "an answer is already being written in this conversation: wait for it or stop it"
        ) from None
    try:
        replaces = None
        if ask.regenerate is not None:
            question = ask.regenerate
            replaces = (
                conversation.messages.filter(
                    role=Turn.Role.ASSISTANT, superseded=False, pk__gt=question.pk
                )
                .order_by("-pk")
                .first()
            )
        else:
            with transaction.atomic():
                if ask.edit is not None:  # the edited question and its answers step aside
                    conversation.messages.filter(pk__gte=ask.edit.pk).update(superseded=True)
                question = Turn.objects.create(
                    conversation=conversation,
                    role=Turn.Role.USER,
                    content=ask.question,
                    replaces=ask.edit,
                )
        history = _history(conversation, before=question)
    except BaseException:
        claim.release()
        raise
    return _Thread(
        conversation=conversation, question=question, history=history, claim=claim,
        replaces=replaces,
    )  # fmt: skip


def answer_stop(*, user: AbstractBaseUser, conversation: Conversation) -> bool:
    """Stop the answer being written in ``conversation`` (it is recorded as ``stopped`` with
    what was written so far); False when none is being written."""
    if conversation.user_id != user.pk:
        raise QuestionError("no such conversation")
    return inflight.stop_request(conversation.pk)


STOPPED_BEFORE_TEXT = "Stopped before an answer was written."


@dataclass
class _Generation:
    """One model's go at the answer: which model, what it wrote, how it was judged."""

    choice: llms.ModelChoice
    prompt: object
    completion: Completion | None = None
    status: str = ""
    content: str = ""
    report: object = None
    error: str = ""
    partial: dict = field(default_factory=dict)
    generations: list = field(default_factory=list)  # the attempts trace of every model asked
    parameters: dict = field(default_factory=dict)
    prompt_sources: Sequence[ScoredChunk] = ()  # the passages in the prompt, [1] first
    model_report: object = None  # the verifier's report on the model's own answer

    def summary(self) -> dict:
        return {
            "llm_id": self.choice.id,
            "status": self.status,
            "answer": self.completion.answer if self.completion else self.partial.get("answer", ""),
        }

    def with_generations(self, generations: list) -> _Generation:
        self.generations = generations
        return self

    def fill(self, record: AnswerRecord, run: _Run) -> None:
        """Set what this generation decided on the answer's record."""
        record.route_trace["generations"] = self.generations
        record.llm_id = record.route = self.choice.id
        record.provider = self.choice.llm.provider
        record.template_version = self.prompt.template_version
        record.prompt = [{"role": m.role, "content": m.content} for m in self.prompt.messages]
        record.parameters = self.parameters
        record.status, record.content, record.error = self.status, self.content, self.error
        if self.report is not None:  # the whole answer's, or what was written before a Stop
            record.citations = [_citation_json(c) for c in self.report.citations]
            record.invalid_markers = list(self.report.invalid_markers)
            record.uncited_sentences = list(self.report.uncited_sentences)
        completion = self.completion
        if completion is None:
            record.model_answer = self.partial.get("answer", "")
            record.reasoning = self.partial.get("reasoning", "")
            record.reasoning_source = "model"
            return
        usage = _usage_json(completion)
        record.model = completion.model or self.choice.llm.model
        record.model_answer = completion.answer
        record.usage = {**usage, "cost": self.choice.cost(usage)}
        if completion.reasoning.strip():
            record.reasoning, record.reasoning_source = completion.reasoning, "model"
        else:
            record.reasoning_source = "pipeline"
            record.reasoning = _trace(record, run, prompt=self.prompt, completion=completion)


def _generate(
    chain: Sequence[str],
    *,
    question,
    sources,
    history,
    run: _Run,
    query: str | None = None,
    live_verdicts: bool = True,
    stop: Callable[[], bool] | None = None,
):
    """Ask the chain's first model (retries, then fallbacks down the chain), stream its pieces,
    then judge the answer. Returns a _Generation; a model error is kept on it, not raised.
    ``live_verdicts``: judge each cited sentence while streaming (for a reader watching).

    ``sources`` are the numbered sources, content first; navigation passages (contents, index)
    are never given to the model. ``query`` (default: the question) is the standalone query, a
    follow-up with its subject: what an extractive answer's sentences are chosen for.
    ``stop``: polled while the model writes; when it says so, the model is no longer asked
    (its stream is closed) and what it wrote is kept, status ``stopped``."""
    choices = [llms.model_get(model_id) for model_id in chain]
    primary = choices[0]
    local = primary.llm.provider == "local"
    explaining = [s for s in sources if s.kind == "content"]
    used = explaining[: settings.LOCAL_ANSWER_TOP_K] if local else explaining
    prompt = prompting.build_prompt(
        question=question,
        sources=used,
        history=history,
        max_source_chars=settings.LOCAL_SOURCE_CHARS if local else None,
    )
    max_tokens = settings.LOCAL_ANSWER_MAX_TOKENS if local else settings.ANSWER_MAX_TOKENS
    resilient, guards = llms.resilient(choices)
    pieces, trace = resilient.stream_with_trace(prompt.messages, max_tokens=max_tokens)
    result = _Generation(
        choice=primary,
        prompt=prompt,
        parameters={"max_tokens": max_tokens, "temperature": None, "sources": len(used)},
        prompt_sources=used,
    )
    streamed = {"reasoning": [], "answer": []}
    # Each cited sentence is judged as soon as the next one starts, so the reader sees which
    # claims hold up while the answer is still provisional (the `verdict` events).
    live = LiveVerdicts(sources=used, embedder=get_embedder()) if live_verdicts else None
    stopped = False
    try:
        for piece in pieces:
            if stop is not None and stop():
                stopped = True
                pieces.close()  # ends the HTTP stream or the local model's decoding loop
                break
            if isinstance(piece, Delta):
                if "first_token" not in run.timings and (piece.answer or piece.reasoning):
                    run.lap("first_token", run.started)
                for kind in ("reasoning", "answer"):
                    if text := getattr(piece, kind):
                        streamed[kind].append(text)
                        yield {"event": kind, "text": text}
                if live is not None and piece.answer:
                    yield from live.feed(piece.answer)
            else:
                result.completion = piece
    except (LLMError, LocalModelError) as exc:
        result.partial = {k: "".join(v) for k, v in streamed.items()}
        result.error = exc.user_message
        incomplete = bool(result.partial["answer"]) or getattr(exc, "kind", "") == "incomplete"
        result.status = Turn.Status.INCOMPLETE if incomplete else Turn.Status.ERROR
        result.content = result.partial["answer"]
    result.generations = [{"chain": list(chain), **trace.as_record()}]
    redacted = {g.id: g.redaction.audit() for g in guards if g.redaction is not None}
    if any(redacted.values()):
        result.generations[0]["pii_redacted"] = redacted  # kinds and digests, never values
    if trace.answered_by:
        result.choice = llms.model_get(trace.answered_by)
    if stopped:
        return _stopped(result, streamed, sources=used)
    if result.completion is None:
        return result

    completion = result.completion
    _check_pinned_version(result.choice, completion.model)
    embedder = get_embedder()
    began = time.perf_counter()
    report = verifier.verify_citations(answer=completion.answer, sources=used, embedder=embedder)
    result.model_report = report
    answered_locally = result.choice.llm.provider == "local"
    if prompting.is_abstention(completion.answer):
        status, content = Turn.Status.ABSTAINED, completion.answer
    elif (report.citations and not report.has_unsupported) or not answered_locally:
        # An API model's answer is shown as written; unsupported or missing citations are
        # flagged on it (has_unsupported, uncited_sentences) for the reader to weigh.
        status, content = Turn.Status.ANSWERED, completion.answer
    else:
        # The small offline model's unverified answer is not shown as the answer: the sentences
        # of the passages found that best answer the question are quoted instead, labelled as
        # such, if any answers it well enough; otherwise nothing is. Its text stays in
        # model_answer. The quotes' citations are "quoted", never "supported": nothing was
        # verified, they are the document's own words.
        content, report = _extractive_answer(query or question, sources, embedder)
        status = Turn.Status.EXTRACTIVE if content else Turn.Status.WITHHELD
        content = content or WITHHELD_TEXT
    run.lap("verify", began)
    result.status, result.content, result.report = status, content, report
    return result


def _stopped(result: _Generation, streamed: dict, *, sources) -> _Generation:
    """The user pressed Stop: what the model wrote until then is the answer, its citations
    verified as far as it got."""
    result.partial = {k: "".join(v) for k, v in streamed.items()}
    result.status = Turn.Status.STOPPED
    result.content = result.partial["answer"].strip() or STOPPED_BEFORE_TEXT
    result.completion = None
    result.generations[0]["stopped"] = True
    if result.partial["answer"].strip():
        result.report = verifier.verify_citations(
            answer=result.partial["answer"], sources=sources, embedder=get_embedder()
        )
    return result


def _serve_cached(entry, similarity: float, *, record: AnswerRecord, thread: _Thread, run: _Run):
    """The verified answer to the same question over the same documents, recorded anew."""
    cached = entry.message
    CachedAnswer.objects.filter(pk=entry.pk).update(hits=F("hits") + 1)
    run.lap("cache", run.started)
    for name in CACHED_FIELDS:
        setattr(record, name, getattr(cached, name))
    record.route = "cache"
    record.route_reason = (
        f"served from the cache: answer #{cached.audit_seq} to {entry.question!r} "
        f"(similarity {similarity:.3f}, same readable collections, documents unchanged)"
    )
    record.route_trace = {
        "cache_hit": {
            "answer_seq": cached.audit_seq,
            "message_id": cached.pk,
            "similarity": round(similarity, 4),
        }
    }
    yield {"event": "sources", "query": record.standalone_query, "sources": cached.sources}
    yield {"event": "answer", "text": cached.content}
    yield _record(record, thread=thread, run=run)


CACHED_FIELDS = (  # what a cache hit copies from the answer it serves again
    "sources",
    "citations",
    "invalid_markers",
    "uncited_sentences",
    "content",
    "model_answer",
    "reasoning",
    "reasoning_source",
    "llm_id",
    "provider",
    "model",
    "template_version",
    "status",
)


def _route(*, question: str, sources: Sequence[ScoredChunk], requested: str | None):
    """Which models may see these passages, in which order (rag.routing, from settings)."""
    slugs = {s.collection for s in sources}
    levels = Collection.objects.filter(slug__in=slugs).values_list("sensitivity", flat=True)
    request = routing.RouteRequest(
        question=question,
        sensitivity=routing.context_sensitivity(levels),
        models=tuple(choice.spec for choice in llms.available_models().values()),
        requested_model=requested,
    )
    return routing.decide_route(request, llms.routing_policy())


@dataclass(frozen=True)
class Draft:
    """An answer made by the answering step alone, recorded nowhere (see `answer_unrecorded`)."""

    status: str
    content: str  # what the user would be shown
    model_answer: str  # what the model wrote ("" when no model was asked)
    llm_id: str
    model: str
    sources: tuple[ScoredChunk, ...]  # the passages the model was given
    report: object = None  # the verifier's CitationReport on model_answer
    error: str = ""
    usage: dict = field(default_factory=dict)
    seconds: float = 0.0


def answer_unrecorded(
    *, question: str, sources: Sequence[ScoredChunk], model_id: str | None = None
) -> Draft:
    """Answer ``question`` from the given passages exactly as a recorded answer would be made
    (relevance floor, prompt, the model with its retries, verification, the extractive
    fallback of the offline model), without a conversation, the cache or the audit log: for
    evaluating a model or a prompt on questions that are not users' questions.

    Raises QuestionError for an unknown model."""
    try:
        choice = llms.model_get(model_id)
    except llms.UnknownModel as exc:
        raise QuestionError(str(exc)) from exc
    run = _Run(question=question)

    def not_asked(status: str, content: str) -> Draft:
        return Draft(
            status=status,
            content=content,
            model_answer="",
            llm_id=choice.id,
            model=choice.llm.model,
            sources=(),
        )

    used = tuple(
        s for s in content_first(sources) if (s.dense_score or 0.0) >= settings.ANSWER_MIN_RELEVANCE
    )
    if not used:
        return not_asked(Turn.Status.NO_SOURCES, NO_SOURCES_TEXT)
    if not any(s.kind == "content" for s in used):
        return not_asked(Turn.Status.WITHHELD, NAVIGATION_ONLY_TEXT)
    refused = route_refusal(question=question, sources=used, model_id=choice.id)
    if refused:
        return not_asked(Turn.Status.REFUSED, refused)
    # Only the chosen model: a fallback's answer would be scored as this model's.
    steps = _generate(
        (choice.id,), question=question, sources=used, history=[], run=run, live_verdicts=False
    )
    while True:  # the events are for a browser; only the generator's result matters here
        try:
            next(steps)
        except StopIteration as stop:
            result: _Generation = stop.value
            break
    completion = result.completion
    return Draft(
        status=result.status,
        content=result.content,
        model_answer=completion.answer if completion else result.partial.get("answer", ""),
        llm_id=result.choice.id,
        model=(completion.model if completion else "") or result.choice.llm.model,
        sources=tuple(result.prompt_sources),
        # the model's own citations: an extractive answer's "quoted" ones are no model's claims
        report=result.model_report,
        error=result.error,
        usage=_usage_json(completion) if completion else {},
        seconds=round(time.perf_counter() - run.started, 3),
    )


def route_refusal(*, question: str, sources: Sequence[ScoredChunk], model_id: str) -> str | None:
    """Why ``model_id`` may not be given these passages (their collections' sensitivity keeps
    them from external models), or None when it may."""
    return _route(question=question, sources=sources, requested=model_id).refused


def answer_question(**kwargs) -> Turn:
    """Run `answer_stream` to the end and return the recorded assistant message."""
    message_id = None
    for event in answer_stream(**kwargs):
        if event["event"] == "done":
            message_id = event["message_id"]
    return Turn.objects.get(pk=message_id)


def conversation_delete(*, conversation: Conversation) -> None:
    conversation.delete()


FEEDBACK_COMMENT_MAX = 2000


def feedback_give(
    *, user: AbstractBaseUser, message: Turn, rating: int, comment: str = ""
) -> Feedback:
    """Record (or change) ``user``'s thumbs up/down on an answer they were given."""
    if message.role != Turn.Role.ASSISTANT or message.conversation.user_id != user.pk:
        raise QuestionError("no such answer")
    if rating not in (Feedback.Rating.UP, Feedback.Rating.DOWN):
        raise QuestionError("rating must be up or down")
    comment = (comment or "").strip()
    if len(comment) > FEEDBACK_COMMENT_MAX:
        raise QuestionError(f"the comment is longer than {FEEDBACK_COMMENT_MAX} characters")
    with transaction.atomic():
        feedback, _ = Feedback.objects.update_or_create(
            message=message, user=user, defaults={"rating": rating, "comment": comment}
        )
        audit_append(
            kind="feedback",
            actor=user,
            subject=f"message:{message.pk}",
            payload={
                "message_id": message.pk,
                "answer_seq": message.audit_seq,
                "rating": "up" if rating > 0 else "down",
            },
            content={"comment": comment},
        )
    return feedback


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------


def _last_question(conversation: Conversation) -> Turn | None:
    return (
        conversation.messages.filter(role=Turn.Role.USER, superseded=False).order_by("-pk").first()
    )


def _history(conversation: Conversation, *, before: Turn) -> list[Message]:
    """The turns before ``before`` the model is told of (superseded ones are not)."""
    earlier = list(
        conversation.messages.filter(pk__lt=before.pk, superseded=False)
        .exclude(content="")
        .order_by("-pk")[:HISTORY_TURNS]
    )
    return [Message(role=m.role, content=m.content) for m in reversed(earlier)]


def _cited_sections(conversation: Conversation, *, before: Turn) -> list[tuple[str, ...]]:
    """The section paths of the passages the answer before ``before`` cited, in citation
    order: what a follow-up's "it" most likely refers to."""
    last = (
        conversation.messages.filter(role=Turn.Role.ASSISTANT, superseded=False, pk__lt=before.pk)
        .order_by("-pk")
        .first()
    )
    if last is None:
        return []
    paths = {s.get("chunk_id"): tuple(s.get("heading_path") or ()) for s in last.sources}
    cited = dict.fromkeys(c.get("chunk_id") for c in last.citations)
    return [paths[chunk_id] for chunk_id in cited if paths.get(chunk_id)]


def _searchable(
    user: AbstractBaseUser, requested: Sequence[str] | None, *, unrestricted: bool
) -> list[str] | None:
    """What to search: the requested collections, within what the user may read (None: all)."""
    readable = None if unrestricted else readable_collection_slugs(user)
    if not requested:
        return readable
    if readable is not None:
        refused = [slug for slug in requested if slug not in readable]
        if refused:
            # the same words whether it does not exist or may not be read: no existence leak
            raise QuestionError(f"unknown collection: {', '.join(refused)}")
    return list(requested)


_versions_seen: set[tuple[str, str]] = set()


def _check_pinned_version(choice: llms.ModelChoice, reported: str) -> None:
    """A provider silently swapping the model behind a name changes answers: log it and record
    it in the audit log, once per process and version."""
    if not choice.pinned_version or not reported or reported == choice.pinned_version:
        return
    if (choice.id, reported) in _versions_seen:
        return
    _versions_seen.add((choice.id, reported))
    logger.warning(
        "model %s reported version %r, pinned %r", choice.id, reported, choice.pinned_version
    )
    audit_append(
        kind="model.version_change",
        subject=f"model:{choice.id}",
        payload={"model": choice.id, "pinned": choice.pinned_version, "reported": reported},
    )


def _route_reason(choice: llms.ModelChoice, requested: str | None) -> str:
    if requested:
        return f"chosen by the user: {choice.label}"
    return f"default model: {choice.label}"


def _record(record: AnswerRecord, *, thread: _Thread, run: _Run) -> dict:
    """Store the turn and its audit record (one transaction), and say it is done."""
    run.lap("total", run.started)
    conversation = thread.conversation
    with transaction.atomic():
        turn = Turn.objects.create(
            conversation=conversation,
            role=Turn.Role.ASSISTANT,
            timings=dict(run.timings),
            **record.columns(),
        )
        if record.replaces is not None:  # a regenerated answer: the one it replaces steps aside
            Turn.objects.filter(pk=record.replaces.pk).update(superseded=True)
        Conversation.objects.filter(pk=conversation.pk).update(updated_at=turn.created_at)
        # The audit record is written in the same transaction, last (it locks the chain head):
        # an answer exists in the chat if and only if it exists in the audit log.
        entry = audit_append(
            kind="answer",
            actor=conversation.user,
            subject=f"message:{turn.pk}",
            payload=_audit_payload(turn),
            content=_audit_content(turn),
        )
        Turn.objects.filter(pk=turn.pk).update(audit_seq=entry.seq)
        turn.audit_seq = entry.seq
    from .selectors import message_json

    return {"event": "done", "message_id": turn.pk, "message": message_json(turn)}


def _audit_payload(turn: Turn) -> dict:
    """What the audit log keeps for good: everything but the text (which may be redacted)."""
    text_free = ("text", "heading_path", "start", "end")
    return {
        "user": turn.conversation.user.get_username(),
        "conversation_id": turn.conversation_id,
        "message_id": turn.pk,
        "collections": turn.collections,
        "retrieved_collections": sorted({s["collection"] for s in turn.sources}),
        "status": turn.status,
        "error": turn.error or None,
        "route": turn.route,
        "route_reason": turn.route_reason,
        "route_trace": turn.route_trace,
        "llm_id": turn.llm_id,
        "provider": turn.provider,
        "model": turn.model,
        "parameters": turn.parameters,
        "template_version": turn.template_version,
        "usage": turn.usage,
        "timings_ms": turn.timings,
        "retrieved": [{k: v for k, v in s.items() if k not in text_free} for s in turn.sources],
        "citations": [
            {k: v for k, v in c.items() if k not in ("quote", "sentence")} for c in turn.citations
        ],
        "invalid_markers": turn.invalid_markers,
        "has_unsupported": turn.has_unsupported,
        "abstained": turn.status == Turn.Status.ABSTAINED,
        "reasoning_source": turn.reasoning_source,
        **({"replaces": turn.replaces_id} if turn.replaces_id else {}),
    }


def _audit_content(turn: Turn) -> dict:
    """The words: what was asked, sent, reasoned and answered, and the evidence shown."""
    return {
        "question": turn.question,
        "standalone_query": turn.standalone_query,
        "prompt": turn.prompt,
        "reasoning": turn.reasoning,
        "answer": turn.content,
        "model_answer": turn.model_answer,
        "source_texts": {str(s["n"]): s["text"] for s in turn.sources},
        "citation_sentences": [c["sentence"] for c in turn.citations],
        "uncited_sentences": turn.uncited_sentences,
    }


def _source_json(number: int, chunk: ScoredChunk, *, below_floor: bool = False) -> dict:
    """A source as listed with the answer. ``below_floor``: listed with a no-sources answer as
    one of the closest passages, under the relevance floor, given to no model."""
    return {
        "n": number,
        "chunk_id": chunk.chunk_id,
        "document_id": int(chunk.document_id) if chunk.document_id.isdigit() else None,
        "document": chunk.document_name,
        "collection": chunk.collection,
        "page": chunk.page,
        "start": chunk.start,
        "end": chunk.end,
        "heading_path": list(chunk.heading_path),
        "text": chunk.text,
        "score": round(chunk.score, 6),
        "dense_score": _round(chunk.dense_score),
        "lexical_score": _round(chunk.lexical_score),
        "dense_rank": chunk.dense_rank,
        "lexical_rank": chunk.lexical_rank,
        "injection_reasons": list(chunk.injection_reasons),
        "kind": chunk.kind,
        "below_floor": below_floor,
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def _citation_json(citation) -> dict:
    chunk = citation.chunk
    return {
        "marker": citation.marker,
        "chunk_id": chunk.chunk_id,
        "document_id": int(chunk.document_id) if chunk.document_id.isdigit() else None,
        "document": chunk.document_name,
        "page": chunk.page,
        "quote": citation.quote,
        "quote_start": citation.quote_start,
        "quote_end": citation.quote_end,
        "verdict": citation.verdict,
        "score": round(citation.score, 4),
        "sentence": citation.sentence,
    }


def _usage_json(completion: Completion) -> dict:
    usage = completion.usage
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "reasoning_tokens": usage.reasoning_tokens,
        "total_tokens": usage.total_tokens,
        "finish_reason": completion.finish_reason,
    }


def _nothing_found(query: str, found: Sequence[ScoredChunk]) -> str:
    text = f'{NO_SOURCES_TEXT} I searched for: "{query}".'
    if found:
        text += (
            " The closest passages are listed as sources, but they are too far from the "
            "question to answer it."
        )
    else:
        text += " No document is indexed in the collections you searched."
    return text


def _extractive_answer(
    query: str, sources: Sequence[ScoredChunk], embedder
) -> tuple[str, CitationReport]:
    """Quote, verbatim, the sentences of the passages that best answer ``query`` (the
    standalone query), each with its source number, document, page and section; ("", an empty
    report) when none scores EXTRACTIVE_MIN_SUPPORT (a passage that merely passed the relevance
    floor is no answer: without the evidence, quoting it misleads).

    ``sources`` are the numbered sources: ``sources[n - 1]`` is ``[n]``. Navigation passages are
    skipped. The citations are built from the quotes themselves, verdict "quoted"."""
    picked = extractive.pick_sentences(
        query=query,
        passages=sources,
        embedder=embedder,
        settings=extractive.PickerSettings(
            min_score=settings.EXTRACTIVE_MIN_SUPPORT, max_sentences=EXTRACTIVE_QUOTES
        ),
    )
    if not picked.excerpts:
        return "", CitationReport(citations=())
    lines = [EXTRACTIVE_LABEL, ""]
    citations = []
    for excerpt in picked.excerpts:
        number = excerpt.source + 1
        chunk = excerpt.chunk
        where = [chunk.document_name or "document"]
        if chunk.page:
            where.append(f"page {chunk.page}")
        if chunk.heading_path:
            where.append(" › ".join(chunk.heading_path))
        lines.append(f"> {excerpt.text} [{number}]")
        lines.append(f"> — *{', '.join(where)}*")
        lines.append("")
        citations.append(
            Citation(
                marker=number,
                chunk=chunk,
                sentence=excerpt.text,
                quote=excerpt.quote,
                quote_start=excerpt.start,
                quote_end=excerpt.end,
                verdict="quoted",
                score=excerpt.score,
            )
        )
    return "\n".join(lines).strip(), CitationReport(citations=tuple(citations))


def _trace(record: AnswerRecord, run: _Run, *, prompt, completion: Completion | None) -> str:
    """The pipeline's own account, shown when the model gives no reasoning of its own."""
    lines = ["Pipeline trace (the model gave no reasoning of its own).", ""]
    lines.append(f"Standalone query: {record.standalone_query!r}")
    searched = record.collections
    lines.append(f"Collections searched: {', '.join(searched) if searched else 'all'}")
    sources = record.sources
    relevant = [s for s in sources if not s.get("below_floor")]
    lines.append(
        f"Retrieved {len(relevant)} relevant passage(s), hybrid dense + BM25 fused by reciprocal "
        f"rank; {run.dropped_sources} below the relevance floor "
        f"{settings.ANSWER_MIN_RELEVANCE} dropped"
        + (
            f" ({len(sources) - len(relevant)} closest listed)."
            if len(relevant) < len(sources)
            else "."
        )
    )
    for source in sources:
        page = f" p.{source['page']}" if source["page"] else ""
        notes = [
            note
            for note, applies in (
                ("navigation: not given to the model", source.get("kind") == "navigation"),
                ("below the relevance floor", source.get("below_floor")),
            )
            if applies
        ]
        lines.append(
            f"  [{source['n']}] {source['document']}{page}: fused {source['score']:.4f}, "
            f"cosine {_fmt(source['dense_score'])} (rank {source['dense_rank'] or '-'}), "
            f"BM25 {_fmt(source['lexical_score'])} (rank {source['lexical_rank'] or '-'})"
            + (f" [{'; '.join(notes)}]" if notes else "")
        )
    if prompt is not None:
        size = sum(len(m.content) for m in prompt.messages)
        lines.append(
            f"Prompt: {len(prompt.messages)} messages, {size:,} characters, template "
            f"{prompt.template_version}"
        )
    if completion is not None:
        usage = completion.usage
        lines.append(
            f"Model: {completion.model} ({completion.provider}), {usage.prompt_tokens} tokens "
            f"in, {usage.completion_tokens} out, finish: {completion.finish_reason}"
        )
    if record.status == Turn.Status.EXTRACTIVE:
        lines.append(
            "Verification: the model's answer had unsupported or missing citations, so the "
            "sentences of the passages that best answer the standalone query are quoted "
            "instead (verdict: quoted). The model wrote:"
        )
        lines.append("  " + (record.model_answer or "(nothing)").replace("\n", "\n  "))
    timings = ", ".join(f"{name} {ms:,.0f} ms" for name, ms in run.timings.items())
    lines.append(f"Timings so far: {timings}")
    return "\n".join(lines)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"
