import time

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from ingest import selectors
from ingest.components import get_retriever
from rag.store import StoreLocked, StoreUnavailable


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """Passage search over the indexed documents (the chat arrives with the answering issue)."""
    query = request.GET.get("q", "").strip()
    collection = request.GET.get("collection") or None
    results, error, latency_ms = [], "", None
    if query:
        started = time.perf_counter()
        try:
            hits = get_retriever().search(
                query, k=10, collections=[collection] if collection else None
            )
        except (StoreUnavailable, StoreLocked) as exc:
            hits, error = [], f"search is unavailable: {exc}"
        latency_ms = round((time.perf_counter() - started) * 1000)
        results = hits
    return render(
        request,
        "assistant/home.html",
        {
            "query": query,
            "results": results,
            "error": error,
            "latency_ms": latency_ms,
            "collections": selectors.collection_list(),
            "collection": collection or "",
        },
    )
