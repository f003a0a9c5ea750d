"""The assistant as an OpenAI-compatible chat model (POST /v1/chat/completions, GET /v1/models),
so that any OpenAI client or chat UI can ask it with an API token.

Model ids: ``assistant`` (the default model, every collection one may read),
``assistant:<model id>`` (one of `assistant.llms.available_models`), ``assistant@<collection
slug>`` (one readable collection), and both: ``assistant:<model id>@<slug>``. GET /v1/models
lists the first three kinds.

A call is answered like a chat question: the earlier messages become a new conversation of the
token's user (their questions and the answers they were given, as the turns the model is told
of), the last user message is the question, and `services.answer_stream` answers it — so the
answer is retrieved, verified, recorded and audited exactly as in the chat, and shows in the
user's conversation list. The answer keeps its ``[n]`` markers; the citations come alongside in
a ``citations`` field (the `ask` contract's objects), the model's reasoning in
``reasoning_content`` (as DeepSeek's API names it).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from ingest.models import Collection
from ingest.selectors import readable_collection_slugs

from . import llms, selectors, services
from .models import Conversation
from .models import Message as Turn

MODEL_PREFIX = "assistant"
OWNER = "document-assistant"
HISTORY_ROLES = ("user", "assistant")  # system prompts are the pipeline's own; tools unused
FINISH_REASONS = ("stop", "length", "content_filter")
# Said between the text already streamed and the answer recorded in its place, when the
# pipeline replaced it (escalation to another model, or the offline model's unverified answer
# quoted instead): a stream cannot take back what a client has shown.
REPLACED = "\n\n---\n\n"


class CompatError(Exception):
    """A request the endpoint refuses, with its HTTP status and OpenAI's error ``code``."""

    def __init__(self, status: int, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


@dataclass(frozen=True)
class Target:
    """What a model id asks for."""

    id: str
    model_id: str | None  # None: the default model
    collection: str | None  # None: every readable collection


def target_parse(*, model: str, user: AbstractBaseUser) -> Target:
    """``assistant[:MODEL][@COLLECTION]``; 404 for anything else, a model that is not
    configured or a collection the user may not read (the same words: no existence leak)."""
    rest, _, collection = model.partition("@")
    prefix, has_model, model_id = rest.partition(":")
    unknown = CompatError(
        404,
        f"the model {model!r} does not exist: use one of GET /v1/models "
        f"({MODEL_PREFIX}, {MODEL_PREFIX}:<model>, {MODEL_PREFIX}@<collection>)",
        code="model_not_found",
    )
    if prefix != MODEL_PREFIX or (has_model and not model_id) or ("@" in model and not collection):
        raise unknown
    if model_id and model_id not in llms.available_models():
        raise unknown
    if collection and collection not in _readable(user):
        raise unknown
    return Target(id=model, model_id=model_id or None, collection=collection or None)


def models_list(*, user: AbstractBaseUser) -> list[dict]:
    """OpenAI's model objects: the assistant, each model choice, each readable collection."""
    ids = [MODEL_PREFIX]
    ids += [f"{MODEL_PREFIX}:{model_id}" for model_id in llms.available_models()]
    ids += [f"{MODEL_PREFIX}@{slug}" for slug in _readable(user)]
    return [{"id": i, "object": "model", "created": 0, "owned_by": OWNER} for i in ids]


def _readable(user: AbstractBaseUser) -> list[str]:
    readable = readable_collection_slugs(user)
    if readable is None:
        return list(Collection.objects.order_by("slug").values_list("slug", flat=True))
    return readable


@dataclass
class Started:
    """A chat completion under way: the answer's events, its first one already taken (the
    question was valid)."""

    target: Target
    events: Iterator[dict]
    id: str = field(default_factory=lambda: f"chatcmpl-{uuid.uuid4().hex}")
    created: int = field(default_factory=lambda: int(time.time()))

    def chunks(self) -> Iterator[dict | str]:
        return completion_chunks(self)


def completion_start(*, user: AbstractBaseUser, model: str, messages: Sequence[dict]) -> Started:
    """Check the request, record the earlier messages as a conversation, start the answer.
    Raises CompatError (400 for a request that cannot be asked, 404 for an unknown model)."""
    target = target_parse(model=model, user=user)
    turns = [(m["role"], _text(m.get("content"))) for m in messages]
    if not turns or turns[-1][0] != "user" or not turns[-1][1].strip():
        raise CompatError(400, "the last message must be the user's question (a text)")
    conversation = conversation_from_messages(user=user, turns=turns[:-1], question=turns[-1][1])
    events = services.answer_stream(
        user=user,
        question=turns[-1][1],
        conversation=conversation,
        collections=[target.collection] if target.collection else None,
        model_id=target.model_id,
    )
    try:
        first = next(events)  # the question is checked before the first event
    except services.QuestionError as exc:
        services.conversation_delete(conversation=conversation)  # nothing was asked
        raise CompatError(400, str(exc)) from exc
    return Started(target=target, events=_prepend(first, events))


def conversation_from_messages(
    *, user: AbstractBaseUser, turns: Sequence[tuple[str, str]], question: str
) -> Conversation:
    """A new conversation of ``user`` holding the client's earlier user and assistant turns
    (what the model is told of a follow-up), titled like a chat."""
    title = " ".join(next((text for role, text in turns if role == "user"), question).split())
    with transaction.atomic():
        conversation = Conversation.objects.create(
            user=user, title=title if len(title) <= 80 else title[:79] + "…"
        )
        Turn.objects.bulk_create(
            Turn(conversation=conversation, role=role, content=text)
            for role, text in turns
            if role in HISTORY_ROLES and text.strip()
        )
    return conversation


def completion_json(started: Started) -> dict:
    """Run the answer to its end: OpenAI's ``chat.completion`` object. A failed answer (status
    ``error``, recorded and audited all the same) is a 502 with its reason."""
    message_id = None
    for event in started.events:  # to its end: the answer's claim on its conversation ends
        if event["event"] == "done":
            message_id = event["message_id"]
    answer = selectors.ask_json(Turn.objects.get(pk=message_id))
    if answer["status"] == Turn.Status.ERROR:
        raise CompatError(502, answer["error"] or "the answer failed", code="answer_failed")
    message = {"role": "assistant", "content": answer["answer"]}
    if answer["reasoning"]:
        message["reasoning_content"] = answer["reasoning"]
    return {
        **_envelope(started, "chat.completion"),
        "choices": [
            {"index": 0, "message": message, "finish_reason": _finish_reason(answer["usage"])}
        ],
        "usage": _usage(answer["usage"]),
        **_extension(answer),
    }


def completion_chunks(started: Started) -> Iterator[dict | str]:
    """OpenAI's ``chat.completion.chunk`` objects as the answer is written (``reasoning_content``
    and ``content`` deltas), the citations with the last one, then "[DONE]"."""
    envelope = _envelope(started, "chat.completion.chunk")

    def chunk(delta: dict, finish_reason: str | None = None, **extra) -> dict:
        choice = {"index": 0, "delta": delta, "finish_reason": finish_reason}
        return {**envelope, "choices": [choice], **extra}

    streamed = ""
    for event in started.events:
        kind = event["event"]
        if kind == "start":
            yield chunk({"role": "assistant", "content": ""})
        elif kind == "reasoning":
            yield chunk({"reasoning_content": event["text"]})
        elif kind == "answer":
            streamed += event["text"]
            yield chunk({"content": event["text"]})
        elif kind == "escalate" and streamed:
            streamed = ""  # another model answers again: its text follows a rule
            yield chunk({"content": REPLACED})
        elif kind == "done":
            answer = selectors.ask_json(Turn.objects.get(pk=event["message_id"]))
            if answer["status"] == Turn.Status.ERROR:  # OpenAI's SDKs raise it
                yield {
                    "error": {
                        "message": answer["error"] or "the answer failed",
                        "type": "server_error",
                        "param": None,
                        "code": "answer_failed",
                    }
                }
                continue
            if answer["answer"] != streamed:
                rest = answer["answer"].removeprefix(streamed)
                yield chunk({"content": rest if rest != answer["answer"] else REPLACED + rest})
            yield chunk(
                {},
                _finish_reason(answer["usage"]),
                usage=_usage(answer["usage"]),
                **_extension(answer),
            )
    yield "[DONE]"


def frame(item: dict | str) -> bytes:
    """One server-sent event as OpenAI's clients read them: ``data: …`` lines, no names."""
    data = item if isinstance(item, str) else json.dumps(item, ensure_ascii=False)
    return f"data: {data}\n\n".encode()


# --- helpers ---------------------------------------------------------------------------------


def _prepend(first: dict, rest: Iterator[dict]) -> Iterator[dict]:
    yield first
    yield from rest


def _text(content) -> str:
    """A message's text: a string, or the text of OpenAI's content parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text"
        )
    return ""


def _envelope(started: Started, kind: str) -> dict:
    return {
        "id": started.id,
        "object": kind,
        "created": started.created,
        "model": started.target.id,
    }


def _extension(answer: dict) -> dict:
    """What OpenAI's shape has no place for: the citations, and what to look the answer up by."""
    return {
        "citations": answer["citations"],
        "status": answer["status"],
        "conversation_id": answer["conversation_id"],
        "audit_id": answer["audit_id"],
    }


def _finish_reason(usage: dict) -> str:
    reason = (usage or {}).get("finish_reason")
    return reason if reason in FINISH_REASONS else "stop"


def _usage(usage: dict) -> dict | None:
    """OpenAI's usage when the model reported it (a cached or declined answer asked none)."""
    usage = usage or {}
    if not isinstance(usage.get("prompt_tokens"), int):
        return None
    prompt, completion = usage["prompt_tokens"], usage.get("completion_tokens") or 0
    shown = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": usage.get("total_tokens") or prompt + completion,
    }
    if usage.get("reasoning_tokens"):
        shown["completion_tokens_details"] = {"reasoning_tokens": usage["reasoning_tokens"]}
    return shown
