import time

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from accounts import roles
from core.components import get_retriever
from ingest import selectors as documents
from rag.store import StoreLocked, StoreUnavailable

from . import llms, selectors, services
from .highlight import passage_html


def home(request: HttpRequest) -> HttpResponse:
    """The chat for those who may ask; an auditor without that role lands on the audit log."""
    user = request.user
    if user.is_authenticated and not roles.can_ask(user) and roles.can_audit(user):
        return redirect("/audit/")
    return chat(request)


@roles.page_requires(roles.can_ask, "asking questions")
def chat(request: HttpRequest, conversation_id: int | None = None) -> HttpResponse:
    conversation = None
    if conversation_id is not None:
        conversation = selectors.conversation_get(
            user=request.user, conversation_id=conversation_id
        )
        if conversation is None:
            raise Http404("no such conversation")
    readable = documents.readable_collection_slugs(request.user)
    messages = (
        [
            selectors.message_json(m, readable=readable)
            for m in conversation.messages.filter(superseded=False)
        ]
        if conversation
        else []
    )
    models = llms.available_models()
    overview = documents.collections_overview(user=request.user)
    readable_with_documents = [c.slug for c in overview if c.ready]
    return render(
        request,
        "assistant/chat.html",
        {
            "conversation": conversation,
            "conversations": selectors.conversation_list(user=request.user),
            "messages": messages,
            # the empty chat's first steps: what there is to ask about, and how to start
            "overview": [c for c in overview if c.ready],
            "examples": (
                documents.example_questions(collections=readable_with_documents)
                if not messages and readable_with_documents
                else []
            ),
            "collections": documents.collection_list(user=request.user),
            "models": [{"id": m.id, "label": m.label} for m in models.values()],
            "default_model": llms.default_model_id(),
        },
    )


@roles.page_requires(roles.can_ask, "asking questions")
@require_POST
def conversation_delete(request: HttpRequest, conversation_id: int) -> HttpResponse:
    conversation = selectors.conversation_get(user=request.user, conversation_id=conversation_id)
    if conversation is None:
        raise Http404("no such conversation")
    services.conversation_delete(conversation=conversation)
    return redirect("home")


@roles.page_requires(roles.can_ask, "searching")
def search(request: HttpRequest) -> HttpResponse:
    """Passage search over the indexed documents."""
    query = request.GET.get("q", "").strip()
    collection = request.GET.get("collection") or None
    results, error, latency_ms = [], "", None
    if query:
        started = time.perf_counter()
        try:
            wanted = documents.searchable_collections(
                request.user, [collection] if collection else None
            )
            hits = get_retriever().search(query, k=settings.SEARCH_TOP_K, collections=wanted)
        except (StoreUnavailable, StoreLocked) as exc:
            error = f"search is unavailable: {exc}"
        else:
            # shown as clean text with the words BM25 matched marked (display only)
            results = [
                (hit, passage_html(hit.text, query, language=settings.BM25_LANGUAGE))
                for hit in hits
            ]
        latency_ms = round((time.perf_counter() - started) * 1000)
    return render(
        request,
        "assistant/search.html",
        {
            "query": query,
            "results": results,
            "error": error,
            "latency_ms": latency_ms,
            "collections": documents.collection_list(user=request.user),
            "collection": collection or "",
        },
    )
