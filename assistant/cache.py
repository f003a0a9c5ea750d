"""The semantic answer cache: the same question, by the same right to read, over the same
documents, under the same routing rules, gets the answer already verified, without asking a
model again. Every hit is an answer of its own in the audit log, marked as served from the cache.

The cache must never be a way around the routing policy: an answer an external model wrote
while a collection was internal is not served once that collection is confidential. So the key
carries the routing inputs (`routing_key`), and a hit is served only when a fresh route for the
question would still allow the model that wrote it (`_route_allows`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

import numpy as np
from django.conf import settings
from django.db.models import Count, Max

from core.components import get_embedder
from ingest.models import Collection, Document
from rag import routing

from . import llms
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


def routing_key(*, collections: Sequence[str] | None, llm_id: str) -> str:
    """The inputs of the routing decision: the sensitivity of every searchable collection, the
    policy's version and the model's residency. Any change makes earlier entries miss."""
    scope = Collection.objects.all()
    if collections is not None:
        scope = scope.filter(slug__in=collections)
    choice = llms.available_models().get(llm_id)
    state = {
        "sensitivity": sorted(scope.values_list("slug", "sensitivity")),
        "policy": routing.policy_version(llms.routing_policy()),
        "model": [llm_id, choice.residency if choice else None],
    }
    return hashlib.sha256(json.dumps(state, sort_keys=True).encode()).hexdigest()


def _route_allows(entry: CachedAnswer, *, question: str, requested: str | None) -> bool:
    """Whether routing this question afresh, over the passages the cached answer used, could
    give it to the model that wrote the answer."""
    slugs = {source.get("collection") for source in entry.message.sources}
    levels = list(Collection.objects.filter(slug__in=slugs).values_list("sensitivity", flat=True))
    if len(levels) < len(slugs):
        return False  # a collection is gone: nothing to judge by
    decision = routing.decide_route(
        routing.RouteRequest(
            question=question,
            sensitivity=routing.context_sensitivity(levels),
            models=tuple(choice.spec for choice in llms.available_models().values()),
            requested_model=requested,
        ),
        llms.routing_policy(),
    )
    return not decision.refused and entry.llm_id in (*decision.chain, decision.escalate_to)


def cache_lookup(
    *,
    vector: list[float],
    collections: Sequence[str] | None,
    llm_id: str,
    question: str,
    requested: str | None,
) -> tuple[CachedAnswer, float] | None:
    """The cached answer to serve for this question, if any. ``requested`` is the model the
    user chose (None: the assistant's choice), as given to the router."""
    if not settings.ANSWER_CACHE:
        return None
    same_readers = CachedAnswer.objects.filter(access_key=access_key(collections), llm_id=llm_id)
    route = routing_key(collections=collections, llm_id=llm_id)
    # Made under other routing inputs (a sensitivity or the policy changed): never served again.
    same_readers.exclude(route_key=route).delete()
    entries = list(
        same_readers.filter(
            route_key=route, corpus_version=corpus_version(collections)
        ).select_related("message")[:CANDIDATES]
    )
    if not entries:
        return None
    matrix = np.asarray([e.vector for e in entries], dtype=np.float32)
    scores = matrix @ np.asarray(vector, dtype=np.float32)
    best = int(np.argmax(scores))
    if scores[best] < settings.ANSWER_CACHE_MIN_SIMILARITY:
        return None
    entry = entries[best]
    if not _route_allows(entry, question=question, requested=requested):
        entry.delete()
        return None
    return entry, float(scores[best])


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
        route_key=routing_key(collections=collections, llm_id=message.llm_id),
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
