"""JSON API for answers: POST /api/v1/ask (JSON, or server-sent events with "stream": true)."""

from __future__ import annotations

import json

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_POST

from ingest.api import api_login_required

from . import selectors, services
from .models import Conversation
from .streaming import sse_response


def _error(status: int, message: str) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


@api_login_required
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
    collections = body.get("collections") or ([collection] if collection else None)
    if collections is not None and not (
        isinstance(collections, list) and all(isinstance(c, str) for c in collections)
    ):
        return _error(400, '"collections" must be a list of collection slugs')
    conversation = None
    if (conversation_id := body.get("conversation_id")) is not None:
        conversation = Conversation.objects.filter(pk=conversation_id, user=request.user).first()
        if conversation is None:
            return _error(404, "no such conversation")
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        return _error(400, '"model" must be a model id')

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

    if body.get("stream"):

        def resume():
            yield first
            yield from stream

        return sse_response(request, resume)
    message = None
    for event in stream:
        if event["event"] == "done":
            message = event["message_id"]
    from .models import Message

    return JsonResponse(selectors.ask_json(Message.objects.get(pk=message)))
