"""Query-side caches for benchmarks that ask the same questions under many settings: each query
is embedded once and its dense and BM25 candidate lists fetched once, ``depth`` deep; any
``Retriever.search`` over them returns what an uncached search with those settings returns."""

from __future__ import annotations


class CachedEmbedder:
    """Embeds each query once."""

    def __init__(self, embedder) -> None:
        self.embedder, self.dimension, self.name = embedder, embedder.dimension, embedder.name
        self._cache: dict[str, object] = {}

    def embed(self, texts):
        import numpy as np

        for text in texts:
            if text not in self._cache:
                self._require()
                self._cache[text] = self.embedder.embed([text])[0]
        return np.vstack([self._cache[text] for text in texts])

    def _require(self) -> None:
        if self.embedder is None:
            raise RuntimeError("a query that was not embedded (detached cache)")


class CachedStore:
    """Fetches each query's candidates once, ``depth`` deep, and answers any smaller ``k`` from
    them (the top k of the top ``depth`` is the top k). Setting ``store`` to None detaches it:
    only what was fetched can be asked again."""

    def __init__(self, store, depth: int) -> None:
        self.store, self.depth = store, depth
        self._cache: dict[tuple, list] = {}

    def ensure_collection(self) -> None:
        if self.store is not None:
            self.store.ensure_collection()

    def _require(self) -> None:
        if self.store is None:
            raise RuntimeError("a query whose candidates were not fetched (detached cache)")

    def search_dense(self, vector, *, k, collections=None):
        key = ("dense", tuple(vector), None if collections is None else tuple(collections))
        if key not in self._cache:
            self._require()
            self._cache[key] = self.store.search_dense(
                vector, k=max(k, self.depth), collections=collections
            )
        return self._cache[key][:k]

    def search_lexical(self, vector, *, k, collections=None):
        key = ("lexical", vector, None if collections is None else tuple(collections))
        if key not in self._cache:
            self._require()
            self._cache[key] = self.store.search_lexical(
                vector, k=max(k, self.depth), collections=collections
            )
        return self._cache[key][:k]
