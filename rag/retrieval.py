"""Retrieval over the vector store. Dense only for now; the lexical half is indexed already."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .embedding import Embedder
from .store import VectorStore
from .types import ScoredChunk


@dataclass(frozen=True)
class Retriever:
    embedder: Embedder
    store: VectorStore

    def warm_up(self) -> None:
        self.store.ensure_collection()
        self.embedder.embed(["warm-up"])

    def search(
        self, query: str, *, k: int = 10, collections: Sequence[str] | None = None
    ) -> list[ScoredChunk]:
        if k < 1:
            raise ValueError("k must be at least 1")
        if not query.strip():
            return []
        vector = self.embedder.embed([query])[0]
        return self.store.search_dense(vector.tolist(), k=k, collections=collections)
