"""JSON API for answers: POST /api/v1/ask (JSON, or server-sent events with "stream": true)."""

from __future__ import annotations

import json

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_POST

from accounts import roles

from . import selectors, services
from .models import Conversation, Message
from .streaming import sse_response


def _error(status: int, message: str) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


MAX_ID = 2**63 - 1  # a bigint primary key


def _is_id(value) -> bool:
    """A JSON integer that can be a primary key. Strict: bool is an int in Python, and "7",
    1.5 or [1] would be coerced or crash in the ORM."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_ID


def _shown(value) -> str:
    return json.dumps(value)[:40]


@roles.api_requires(roles.can_ask, "asking questions")
@require_POST
def ask(request: HttpRequest) -> HttpResponse:
    try:
        body = json.loads(request.body or b"{}")
    except (ValueError, UnicodeDecodeError):
        return _error(400, "the body must be JSON")
    if not isinstance(body, dict):
        return _error(400, "the body must be a JSON object")
    question = body.get("question")
    if not isinstance(question, str):
        return _error(400, 'missing "question" (a string)')
    collection = body.get("collection")
    if collection is not None and not isinstance(collection, str):
        return _error(400, f'"collection" must be a collection slug, not {_shown(collection)}')
    collections = body.get("collections") or ([collection] if collection else None)
    if collections is not None and not (
        isinstance(collections, list) and all(isinstance(c, str) for c in collections)
    ):
        return _error(400, '"collections" must be a list of collection slugs')
    conversation = None
    if (conversation_id := body.get("conversation_id")) is not None:
        if not _is_id(conversation_id):
            return _error(
                400,
                '"conversation_id" must be a positive integer (a conversation\'s id), '
                f"not {_shown(conversation_id)}",
            )
        conversation = Conversation.objects.filter(pk=conversation_id, user=request.user).first()
        if conversation is None:
            return _error(404, "no such conversation")
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        return _error(400, '"model" must be a model id')
    wants_stream = body.get("stream")
    if wants_stream is not None and not isinstance(wants_stream, bool):
        return _error(400, f'"stream" must be true or false, not {_shown(wants_stream)}')

    def events():
        return services.answer_stream(
            user=request.user,
            question=question,
            conversation=conversation,
            collections=collections,
            model_id=model,
        )

    try:
        stream = events()
        first = next(stream)  # validation happens before the first event
    except services.QuestionError as exc:
        return _error(400, str(exc))

    if wants_stream:

        def resume():
            yield first
            yield from stream

        return sse_response(request, resume)
    message = None
    for event in stream:
        if event["event"] == "done":
            message = event["message_id"]
    return JsonResponse(selectors.ask_json(Message.objects.get(pk=message)))


@roles.api_requires(roles.can_ask, "giving feedback")
@require_POST
def feedback(request: HttpRequest, message_id: int) -> HttpResponse:
    """POST {"rating": "up"|"down", "comment"?} on an answer the user was given."""
    try:
        body = json.loads(request.body or b"{}")
    except (ValueError, UnicodeDecodeError):
        return _error(400, "the body must be JSON")
    given = body.get("rating") if isinstance(body, dict) else None
    rating = {"up": 1, "down": -1}.get(given) if isinstance(given, str) else None
    if rating is None:
        return _error(400, 'send {"rating": "up" | "down", "comment": "..."}')
    comment = body.get("comment") or ""
    if not isinstance(comment, str):
        return _error(400, '"comment" must be a string')
    message = Message.objects.select_related("conversation").filter(pk=message_id).first()
    try:
        if message is None:
            raise services.QuestionError("no such answer")
        given = services.feedback_give(
            user=request.user, message=message, rating=rating, comment=comment
        )
    except services.QuestionError as exc:
        status = 404 if "no such answer" in str(exc) else 400
        return _error(status, str(exc))
    return JsonResponse(
        {"message_id": message_id, "rating": body["rating"], "comment": given.comment}
    )
