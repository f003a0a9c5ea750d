"""The process-wide RAG components, built once from settings (dotted path + options, like CACHES).

The embedded Qdrant store may be opened by one client per process, and the embedding model takes
seconds to load: both are built lazily on first use and shared.
"""

from __future__ import annotations

import atexit
import threading
from functools import cache

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.module_loading import import_string

from rag.chunking import Chunker
from rag.embedding import Embedder
from rag.lexical import BM25Encoder
from rag.retrieval import Retriever
from rag.store import VectorStore

_lock = threading.RLock()  # get_store builds the embedder too


def _build(config: dict):
    return import_string(config["BACKEND"])(**config.get("OPTIONS", {}))


@cache
def get_embedder() -> Embedder:
    with _lock:
        return _build(settings.RAG_EMBEDDER)


@cache
def get_store() -> VectorStore:
    with _lock:
        options = dict(settings.RAG_VECTOR_STORE.get("OPTIONS", {}))
        options.setdefault("dimension", get_embedder().dimension)
        store = _build({**settings.RAG_VECTOR_STORE, "OPTIONS": options})
        atexit.register(
            store.close
        )  # release the embedded folder's lock before interpreter teardown
        return store


@cache
def get_chunker() -> Chunker:
    return Chunker(target_tokens=settings.CHUNK_TOKENS, overlap=settings.CHUNK_OVERLAP)


@cache
def get_lexical_encoder() -> BM25Encoder:
    return BM25Encoder(language=settings.BM25_LANGUAGE)


def get_retriever() -> Retriever:
    return Retriever(
        embedder=get_embedder(),
        store=get_store(),
        lexical=get_lexical_encoder(),
        **settings.RAG_RETRIEVER,
    )


def reset_components(*, keep_embedder: bool = True) -> None:
    """Close the store and forget built components (tests, settings changes)."""
    if get_store.cache_info().currsize:
        get_store().close()
    get_store.cache_clear()
    get_chunker.cache_clear()
    if not keep_embedder:
        get_embedder.cache_clear()


@receiver(setting_changed)
def _on_setting_changed(*, setting: str, **kwargs) -> None:
    if setting in ("CHUNK_TOKENS", "CHUNK_OVERLAP"):
        get_chunker.cache_clear()
    elif setting in ("RAG_VECTOR_STORE", "DATA_DIR"):
        reset_components()
    elif setting == "RAG_EMBEDDER":
        reset_components(keep_embedder=False)
