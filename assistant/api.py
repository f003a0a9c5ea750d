"""JSON API for answers (mounted by config/api.py):

- /api/v1/: POST ask (JSON, or server-sent events with "stream": true), POST
  messages/<id>/feedback;
- /v1/: the OpenAI-compatible POST chat/completions and GET models (assistant/openai_compat.py).
"""

from __future__ import annotations

from typing import Any, Literal

from django.http import HttpRequest
from ninja import Field, Router, Schema
from ninja.errors import HttpError
from pydantic import StrictBool, StrictInt, StrictStr

from accounts import roles
from config.api import ERRORS, MAX_ID, ErrorOut, OpenShape, requires

from . import openai_compat, selectors, services
from .models import Conversation, Message
from .streaming import sse_response

router = Router()
openai_router = Router()


# --- POST /api/v1/ask ----------------------------------------------------------------------


class AskIn(Schema):
    """A field's description is also its 400's words: `"stream" must be true or false, …`."""

    question: StrictStr | None = Field(
        None, description="a string: the question (not needed with regenerate)"
    )
    collection: StrictStr | None = Field(
        None, description="a collection slug (the one collection to search)"
    )
    collections: list[StrictStr] | None = Field(
        None, description="a list of collection slugs (default: every collection you may read)"
    )
    model: StrictStr | None = Field(
        None, description="a model id (default: the first configured model)"
    )
    conversation_id: StrictInt | None = Field(
        None,
        gt=0,
        le=MAX_ID,
        description="a positive integer (a conversation's id): a follow-up in that conversation",
    )
    stream: StrictBool = Field(
        False, description="true or false: answer with server-sent events as it is written"
    )
    regenerate: StrictBool = Field(
        False,
        description="true or false: answer the conversation's last question again (the answer "
        "it replaces is kept, marked superseded)",
    )
    edit: StrictBool = Field(
        False,
        description="true or false: the question replaces the conversation's last question "
        "(which steps aside with its answers)",
    )


class CitationOut(OpenShape):
    marker: int = Field(description="the [n] in the answer")
    chunk_id: str
    document_id: int | None
    document: str = Field(description="the document's name")
    page: int | None = Field(description="1-based physical page (a PDF's #page=N); null: none")
    quote: str | None = Field(description="the passage's words the sentence rests on")
    verdict: str = Field(description='"supported" | "partial" | "unsupported" | "quoted"')


class TimingsOut(OpenShape):
    retrieve: float | None
    llm: float | None
    total: float | None


class AskOut(OpenShape):
    answer: str
    citations: list[CitationOut]
    status: str = Field(
        description="answered | extractive | withheld | abstained | no_sources | incomplete | "
        "error | refused | stopped"
    )
    reasoning: str
    model: str = Field(description="the model as its provider reported it")
    route: str = Field(description="the model id that answered, or cache / refused")
    audit_id: int | None = Field(description="the answer's record in the audit log")
    timings_ms: TimingsOut
    error: str | None
    conversation_id: int
    query: str = Field(description="the standalone query searched for")
    usage: dict[str, Any]


SSE_DESCRIPTION = """With `"stream": true` the answer comes as server-sent events
(`text/event-stream`), each `data:` a JSON object with its `event`: `start`, `sources`,
`reasoning` / `answer` pieces, `verdict`, `escalate`, then `done` with the recorded message."""


@router.post(
    "/ask",
    auth=requires(roles.can_ask, "asking questions"),
    response={200: AskOut, **ERRORS, 409: ErrorOut},
    summary="Ask a question of your documents",
    description=SSE_DESCRIPTION,
    url_name="api-ask",
)
def ask(request: HttpRequest, payload: AskIn):
    if payload.question is None and not payload.regenerate:
        description = AskIn.model_fields["question"].description
        raise HttpError(400, f'missing "question" ({description})')
    conversation = None
    if payload.conversation_id is not None:
        conversation = Conversation.objects.filter(
            pk=payload.conversation_id, user=request.user
        ).first()
        if conversation is None:
            raise HttpError(404, "no such conversation")
    collections = payload.collections or ([payload.collection] if payload.collection else None)

    def events():
        return services.answer_stream(
            user=request.user,
            question=payload.question or "",
            conversation=conversation,
            collections=collections,
            model_id=payload.model,
            regenerate=payload.regenerate,
            edit=payload.edit,
        )

    try:
        stream = events()
        first = next(stream)  # validation happens before the first event
    except services.ConversationBusy as exc:
        raise HttpError(409, str(exc)) from exc
    except services.QuestionError as exc:
        raise HttpError(400, str(exc)) from exc

    if payload.stream:

        def resume():
            yield first
            yield from stream

        return sse_response(request, resume)
    message = None
    for event in stream:
        if event["event"] == "done":
            message = event["message_id"]
    return selectors.ask_json(Message.objects.get(pk=message))


# --- POST /api/v1/conversations/<id>/stop -------------------------------------------------


class StopOut(Schema):
    conversation_id: int
    stopped: bool = Field(
        description="true: the answer being written stops and is recorded as stopped with "
        "what it had written; false: none was being written"
    )


@router.post(
    "/conversations/{int:conversation_id}/stop",
    auth=requires(roles.can_ask, "asking questions"),
    response={200: StopOut, **ERRORS},
    summary="Stop the answer being written in a conversation",
    url_name="api-conversation-stop",
)
def stop(request: HttpRequest, conversation_id: int):
    conversation = Conversation.objects.filter(pk=conversation_id, user=request.user).first()
    if conversation is None:
        raise HttpError(404, "no such conversation")
    stopped = services.answer_stop(user=request.user, conversation=conversation)
    return {"conversation_id": conversation_id, "stopped": stopped}


# --- POST /api/v1/messages/<id>/feedback ----------------------------------------------------


class FeedbackIn(Schema):
    rating: Literal["up", "down"] = Field(description='"up" or "down"')
    comment: StrictStr | None = Field(None, description="a string (why; optional)")


class FeedbackOut(Schema):
    message_id: int
    rating: str
    comment: str


@router.post(
    "/messages/{int:message_id}/feedback",
    auth=requires(roles.can_ask, "giving feedback"),
    response={200: FeedbackOut, **ERRORS},
    summary="Rate an answer you were given",
    url_name="api-feedback",
)
def feedback(request: HttpRequest, message_id: int, payload: FeedbackIn):
    message = Message.objects.select_related("conversation").filter(pk=message_id).first()
    try:
        if message is None:
            raise services.QuestionError("no such answer")
        given = services.feedback_give(
            user=request.user,
            message=message,
            rating=1 if payload.rating == "up" else -1,
            comment=payload.comment or "",
        )
    except services.QuestionError as exc:
        status = 404 if "no such answer" in str(exc) else 400
        raise HttpError(status, str(exc)) from exc
    return {"message_id": message_id, "rating": payload.rating, "comment": given.comment}


# --- the OpenAI-compatible endpoint: /v1/ ---------------------------------------------------


class ChatMessageIn(Schema):
    role: Literal["system", "developer", "user", "assistant", "tool", "function"] = Field(
        description='"user" or "assistant" (system, developer and tool messages are ignored)'
    )
    content: StrictStr | list[dict[str, Any]] | None = Field(
        None, description='a string, or a list of {"type": "text", "text": ...} parts'
    )


class ChatCompletionIn(Schema):
    """OpenAI's request; its other parameters (temperature, max_tokens, …) are accepted and
    ignored: the assistant's pipeline decides how its models are asked."""

    model: StrictStr = Field(
        description='a model id of GET /v1/models: "assistant[:MODEL][@COLLECTION]"'
    )
    messages: list[ChatMessageIn] = Field(
        min_length=1, description="a list of messages, the last one the user's question"
    )
    stream: StrictBool | None = Field(False, description="true or false")


@openai_router.get("/models", summary="The model ids one may ask with")
def openai_models(request: HttpRequest):
    return {"object": "list", "data": openai_compat.models_list(user=request.auth)}


@openai_router.post("/chat/completions", summary="Ask, OpenAI-style")
def openai_chat_completions(request: HttpRequest, payload: ChatCompletionIn):
    try:
        started = openai_compat.completion_start(
            user=request.auth,
            model=payload.model,
            messages=[m.model_dump() for m in payload.messages],
        )
    except openai_compat.CompatError as exc:
        raise _openai_http_error(exc) from exc
    if payload.stream:
        return sse_response(request, started.chunks, frame=openai_compat.frame)
    try:
        return openai_compat.completion_json(started)
    except openai_compat.CompatError as exc:
        raise _openai_http_error(exc) from exc


def _openai_http_error(exc: openai_compat.CompatError) -> HttpError:
    error = HttpError(exc.status, exc.message)
    error.code = exc.code  # type: ignore[attr-defined]  (config.api.openai_error reads it)
    return error
