"""Reads for conversations and messages, and the JSON shapes the API and CLI return."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet

from .models import Conversation, Message
from .rendering import render_answer


def conversation_list(*, user: AbstractBaseUser, limit: int = 100) -> QuerySet[Conversation]:
    return Conversation.objects.filter(user=user)[:limit]


def conversation_get(*, user: AbstractBaseUser, conversation_id: int) -> Conversation | None:
    return Conversation.objects.filter(user=user, pk=conversation_id).first()


def verdicts_in_order(message: Message) -> dict[int, list[str]]:
    """Each marker's verdicts in the order its citations appear in the answer."""
    ordered: dict[int, list[str]] = {}
    for citation in message.citations:
        ordered.setdefault(citation["marker"], []).append(citation["verdict"])
    return ordered


def message_json(message: Message, *, readable: list[str] | None = None) -> dict:
    """Everything the chat page needs to show a turn, including the rendered answer.

    ``readable``: the collections the viewer may read now (None: all). A source from any other
    collection (access withdrawn since the answer) is shown without its text.
    """
    data = {
        "id": message.pk,
        "conversation_id": message.conversation_id,
        "role": message.role,
        "content": message.content,
        "created_at": message.created_at.isoformat(),
        "superseded": message.superseded,
        "replaces": message.replaces_id,
    }
    if message.role == Message.Role.USER:
        return data
    return {
        **data,
        "html": render_answer(message.content, verdicts=verdicts_in_order(message)),
        "status": message.status,
        "error": message.error or None,
        "query": message.standalone_query,
        "sources": [_visible(source, readable) for source in message.sources],
        "citations": message.citations,
        "invalid_markers": message.invalid_markers,
        "reasoning": message.reasoning,
        "reasoning_source": message.reasoning_source,
        "model": message.model,
        "llm_id": message.llm_id,
        "provider": message.provider,
        "route": message.route,
        "route_reason": message.route_reason,
        "cache_hit": message.route == "cache",
        "usage": message.usage,
        "timings_ms": message.timings,
        "has_unsupported": message.has_unsupported,
        "is_uncited": message.is_uncited,
        "feedback": _feedback_of(message),
    }


def _feedback_of(message: Message) -> dict | None:
    mine = next(iter(message.feedback.all()), None)  # the asker's own: one per answer and user
    if mine is None:
        return None
    return {"rating": "up" if mine.rating > 0 else "down", "comment": mine.comment}


def _visible(source: dict, readable: list[str] | None) -> dict:
    if readable is None or source.get("collection") in readable:
        return source
    return {**source, "text": "", "withheld": "you no longer have access to this collection"}


def ask_json(message: Message) -> dict:
    """The `ask` contract of ARCHITECTURE.md, extended with status, error and ids."""
    timings = message.timings or {}
    return {
        "answer": message.content,
        "citations": [
            {
                key: citation[key]
                for key in ("marker", "chunk_id", "document_id", "document", "page", "quote")
            }
            | {"verdict": citation["verdict"]}
            for citation in message.citations
        ],
        "reasoning": message.reasoning,
        "model": message.model,
        "route": message.route,
        "audit_id": message.audit_seq,
        "timings_ms": {
            "retrieve": timings.get("retrieve"),
            "llm": timings.get("llm"),
            "total": timings.get("total"),
        },
        "status": message.status,
        "error": message.error or None,
        "conversation_id": message.conversation_id,
        "query": message.standalone_query,
        "usage": message.usage,
    }


def feedback_cases(*, rating: int | None = None):
    """Feedback as evaluation cases: the question, what was retrieved and cited, the verdict.

    One JSON-ready dict per feedback, in the `{query, relevant}` shape `manage.py eval` reads,
    with the answer, rating and comment alongside."""
    from .models import Feedback

    feedback = Feedback.objects.select_related("message", "user").order_by("created_at", "id")
    if rating is not None:
        feedback = feedback.filter(rating=rating)
    for item in feedback.iterator():
        message = item.message
        yield {
            "query": message.question,
            "standalone_query": message.standalone_query,
            "relevant": sorted({c["chunk_id"] for c in message.citations}),
            "retrieved": [s["chunk_id"] for s in message.sources],
            "answer": message.content,
            "status": message.status,
            "rating": "up" if item.rating > 0 else "down",
            "comment": item.comment,
            "user": item.user.get_username(),
            "message_id": message.pk,
            "model": message.model,
            "created_at": item.created_at.isoformat(),
        }
