"""The semantic answer cache: the same question, by the same right to read, over the same
documents, gets the answer already verified, without asking a model again. Every hit is an
answer of its own in the audit log, marked as served from the cache."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
from django.conf import settings
from django.db.models import Count, Max

from ingest.components import get_embedder
from ingest.models import Document

from .models import CachedAnswer, Message

CANDIDATES = 500  # newest entries compared per lookup: a brute-force cosine over them is ~1 ms


def access_key(collections: Sequence[str] | None) -> str:
    return hashlib.sha256(
        ("*" if collections is None else ",".join(sorted(collections))).encode()
    ).hexdigest()


def corpus_version(collections: Sequence[str] | None) -> str:
    """Changes whenever a document of these collections is added, re-indexed or deleted."""
    documents = Document.objects.all()
    if collections is not None:
        documents = documents.filter(collection__slug__in=collections)
    state = documents.aggregate(n=Count("id"), last=Max("updated_at"))
    return hashlib.sha256(f"{state['n']}|{state['last']}".encode()).hexdigest()


def question_vector(query: str) -> list[float]:
    return [float(x) for x in get_embedder().embed([query])[0]]


def cache_lookup(
    *, vector: list[float], collections: Sequence[str] | None, llm_id: str
) -> tuple[CachedAnswer, float] | None:
    if not settings.ANSWER_CACHE:
        return None
    entries = list(
        CachedAnswer.objects.filter(
            access_key=access_key(collections),
            llm_id=llm_id,
            corpus_version=corpus_version(collections),
        ).select_related("message")[:CANDIDATES]
    )
    if not entries:
        return None
    matrix = np.asarray([e.vector for e in entries], dtype=np.float32)
    scores = matrix @ np.asarray(vector, dtype=np.float32)
    best = int(np.argmax(scores))
    if scores[best] < settings.ANSWER_CACHE_MIN_SIMILARITY:
        return None
    return entries[best], float(scores[best])


def cache_store(
    *, message: Message, vector: list[float], collections: Sequence[str] | None
) -> CachedAnswer | None:
    """Only grounded answers are worth serving again."""
    if not settings.ANSWER_CACHE or message.status != Message.Status.ANSWERED:
        return None
    if not message.citations or message.has_unsupported:
        return None
    return CachedAnswer.objects.create(
        message=message,
        question=message.question,
        vector=vector,
        access_key=access_key(collections),
        llm_id=message.llm_id,
        corpus_version=corpus_version(collections),
        cited_document_ids=sorted(
            {c["document_id"] for c in message.citations if c["document_id"]}
        ),
    )


def cache_drop_document(document_id: int) -> int:
    """Forget every cached answer that cited this document (it changed or is gone)."""
    stale = [
        entry.pk
        for entry in CachedAnswer.objects.only("pk", "cited_document_ids").iterator()
        if document_id in entry.cited_document_ids
    ]
    CachedAnswer.objects.filter(pk__in=stale).delete()
    return len(stale)
