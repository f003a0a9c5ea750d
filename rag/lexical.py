"""BM25 term weights as sparse vectors, so Qdrant can do the lexical half of hybrid retrieval.

The document side stores BM25's saturated term frequency; Qdrant's IDF modifier supplies the
inverse document frequency at query time from the live collection, so adding documents never
requires re-weighting the ones already indexed. A term is a lower-cased word, not a stop word
(a longer list than :func:`tokenize`'s, :data:`BM25_STOPWORDS`), reduced to its stem by the
Snowball stemmer (PyStemmer; English by default), so "configuring" finds "configuration" and
"libraries" finds "library". Stemming and the stop list raised BM25 and the fused ranking on
the development sets (docs/benchmarks/fusion.json). Term ids are CRC32 hashes of
the term: stable across processes and releases (Python's ``hash`` is salted per process).
Changing how terms are made changes the stored vectors: bump rag.chunking.CHUNKER_VERSION.
"""

from __future__ import annotations

import re
import threading
import zlib
from collections import Counter
from dataclasses import dataclass

from .types import SparseVector

_WORD_RE = re.compile(r"\w+", re.UNICODE)

# A short English stop list: these words carry no lexical signal and only bloat the vectors.
STOPWORDS = frozenset(
    """a an and are as at be but by for from has have he her his i if in into is it its me my no
    not of on or our she so than that the their them then there these they this to was we were
    what when where which who will with you your""".split()
)


# BM25 leaves out more: the usual English stop list of IR toolkits (NLTK's), so the wording of a
# question ("how should I ...", "what do I need to ...") does not count as evidence. Measured in
# docs/benchmarks/fusion.json on every development set and the held-out manuals.
BM25_STOPWORDS = STOPWORDS | frozenset(
    """i me myself we ours ourselves yours yourself yourselves him himself hers herself itself
    theirs themselves whom those am been being had having do does did doing because until while
    about against between through during before after above below up down out off over under
    again further once here why how all any both each few more most other some such nor only
    own same too very s t can just don should now d ll m o re ve y""".split()
)


def tokenize(text: str) -> list[str]:
    return [w for w in _WORD_RE.findall(text.lower()) if w not in STOPWORDS and len(w) < 40]


_stemmers = threading.local()  # a PyStemmer object is not safe to share between threads


def stems(words: list[str], language: str = "english") -> list[str]:
    """Each word's Snowball stem in ``language`` (one stemmer per thread and language)."""
    import Stemmer

    by_language = getattr(_stemmers, "by_language", None)
    if by_language is None:
        by_language = _stemmers.by_language = {}
    stemmer = by_language.get(language)
    if stemmer is None:
        stemmer = by_language[language] = Stemmer.Stemmer(language)
    return stemmer.stemWords(words)


def terms(text: str, language: str | None = "english") -> list[str]:
    """The BM25 terms of ``text``: its tokens but :data:`BM25_STOPWORDS`, stemmed unless
    ``language`` is None."""
    tokens = [t for t in tokenize(text) if t not in BM25_STOPWORDS]
    return stems(tokens, language) if language and tokens else tokens


def term_spans(text: str, query: str, language: str | None = "english") -> list[tuple[int, int]]:
    """The (start, end) character ranges of the words of ``text`` that BM25 counts as the
    query's terms: made into terms as :func:`terms` makes them, so "configuring" in ``text``
    is found for "configuration", and a stop word never is. Positions are in ``text`` as given
    (each word is lower-cased on its own, so a character that lower-cases to two cannot shift
    the ones after it)."""
    wanted = set(terms(query, language))
    if not wanted:
        return []
    words = [
        (match.start(), match.end(), word)
        for match in _WORD_RE.finditer(text)
        if (word := match.group().lower()) not in BM25_STOPWORDS and len(word) < 40
    ]
    found = [word for _, _, word in words]
    keys = stems(found, language) if language and found else found
    return [(start, end) for (start, end, _), key in zip(words, keys, strict=True) if key in wanted]


def term_id(token: str) -> int:
    return zlib.crc32(token.encode("utf-8"))


@dataclass(frozen=True)
class BM25Encoder:
    k1: float = 1.2
    b: float = 0.75
    avg_doc_len: float = 120.0  # tokens after stop-word removal, for ~256-token chunks
    language: str | None = "english"  # Snowball stemmer of the terms; None: words as they are

    def __post_init__(self) -> None:
        if self.k1 <= 0 or not 0 <= self.b <= 1 or self.avg_doc_len <= 0:
            raise ValueError("BM25 needs k1 > 0, 0 <= b <= 1 and avg_doc_len > 0")
        if self.language is not None:
            import Stemmer

            if self.language not in Stemmer.algorithms():
                raise ValueError(
                    f"no Snowball stemmer for {self.language!r} "
                    f"(one of: {', '.join(Stemmer.algorithms())})"
                )

    def encode_document(self, text: str) -> SparseVector:
        tokens = terms(text, self.language)
        counts = Counter(term_id(t) for t in tokens)
        norm = self.k1 * (1 - self.b + self.b * len(tokens) / self.avg_doc_len)
        items = sorted((tid, tf * (self.k1 + 1) / (tf + norm)) for tid, tf in counts.items())
        return SparseVector(tuple(i for i, _ in items), tuple(v for _, v in items))

    def encode_query(self, text: str) -> SparseVector:
        ids = sorted({term_id(t) for t in terms(text, self.language)})
        return SparseVector(tuple(ids), tuple(1.0 for _ in ids))
