"""Reads for conversations and messages, and the JSON shapes the API and CLI return."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet

from .models import Conversation, Message
from .rendering import render_answer

_VERDICT_ORDER = {"supported": 0, "partial": 1, "unsupported": 2}


def conversation_list(*, user: AbstractBaseUser, limit: int = 100) -> QuerySet[Conversation]:
    return Conversation.objects.filter(user=user)[:limit]


def conversation_get(*, user: AbstractBaseUser, conversation_id: int) -> Conversation | None:
    return Conversation.objects.filter(user=user, pk=conversation_id).first()


def worst_verdicts(message: Message) -> dict[int, str]:
    worst: dict[int, str] = {}
    for citation in message.citations:
        marker, verdict = citation["marker"], citation["verdict"]
        if _VERDICT_ORDER[verdict] >= _VERDICT_ORDER.get(worst.get(marker, ""), -1):
            worst[marker] = verdict
    return worst


def message_json(message: Message) -> dict:
    """Everything the chat page needs to show a turn, including the rendered answer."""
    data = {
        "id": message.pk,
        "conversation_id": message.conversation_id,
        "role": message.role,
        "content": message.content,
        "created_at": message.created_at.isoformat(),
    }
    if message.role == Message.Role.USER:
        return data
    return {
        **data,
        "html": render_answer(message.content, verdicts=worst_verdicts(message)),
        "status": message.status,
        "error": message.error or None,
        "query": message.standalone_query,
        "sources": message.sources,
        "citations": message.citations,
        "invalid_markers": message.invalid_markers,
        "reasoning": message.reasoning,
        "reasoning_source": message.reasoning_source,
        "model": message.model,
        "llm_id": message.llm_id,
        "provider": message.provider,
        "route": message.route,
        "usage": message.usage,
        "timings_ms": message.timings,
        "has_unsupported": message.has_unsupported,
        "is_uncited": message.is_uncited,
    }


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
        "audit_id": message.pk,
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
