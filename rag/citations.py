"""Find the ``[n]`` markers in an answer and check each cited sentence against its passage.

Three steps, each usable on its own:

* ``split_sentences`` / ``parse_markers`` read the answer as light markdown: paragraphs, list
  items, headings and table rows are separate units; inside them sentences end at ``.?!``
  except after abbreviations ("e.g.", "Dr.", "p.") and inside decimals ("3.5"). Markers written
  after the full stop ("… 30 days. [2]") belong to the sentence before them. Code, markdown
  links and reference definitions are masked first, so ``[0]`` in code, ``[text](url)`` and
  ``[1]: http://…`` are never taken for citations.
* ``verify_citations`` scores every (sentence, marker) pair: a lexical score (how many of the
  claim's content words, stemmed, with number words read as digits, occur in the best passage
  span and in the passage as a whole) blended with the embedding cosine between the claim and
  the best span. Numbers are a hard gate: a claim whose numbers are not in the passage is never
  ``supported``. Every claim and candidate span of one answer is embedded in a single call.
* ``VerifierThresholds`` holds the numbers, calibrated on the labelled pairs in
  ``tests/rag/test_citations.py``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .embedding import Embedder
from .lexical import STOPWORDS
from .prompting import is_abstention
from .types import Citation, CitationReport, ScoredChunk, Verdict

# ---------------------------------------------------------------------------------------------
# Markers and sentences
# ---------------------------------------------------------------------------------------------

# [1]  [1, 2]  [1;2]  [1-3]  — one to three digits; "[2023]" is a year, not a citation.
_MARKER_RE = re.compile(r"\[\s*(\d{1,3}(?:\s*(?:,|;|-|–|and)\s*\d{1,3})*)\s*\](?!\()")
_MAX_RANGE = 20  # "[1-3]" expands; "[1-999]" is nonsense and is read as its two ends

# Masked before looking for markers or sentence ends (replaced by the same number of filler
# characters, so offsets stay valid).
_MASK_RES = (
    re.compile(r"```.*?(?:```|\Z)|~~~.*?(?:~~~|\Z)", re.DOTALL),  # fenced code
    re.compile(r"`[^`\n]*`"),  # inline code
    re.compile(r"!?\[[^\[\]\n]*\]\([^()\n]*\)"),  # inline links and images
    re.compile(r"\[[^\[\]\n]*[^\[\]\d\s,;\-–][^\[\]\n]*\]\[[^\[\]\n]*\]"),  # reference links
    re.compile(r"(?m)^[ \t]{0,3}\[[^\[\]\n]+\]:.*$"),  # reference definitions
)
_FILLER = "\u2591"

_LINE_KIND_RES = (
    ("fence", re.compile(r"^\s*(?:```|~~~)")),
    ("rule", re.compile(r"^\s*(?:-{3,}|\*{3,}|_{3,}|\|?(?:\s*:?-+:?\s*\|)+\s*:?-*:?)\s*$")),
    ("heading", re.compile(r"^\s{0,3}#{1,6}\s+")),
    ("item", re.compile(r"^\s*(?:[-*+•]|\d{1,3}[.)])\s+")),
    ("quote", re.compile(r"^\s*>\s?")),
    ("table", re.compile(r"^\s*\|")),
)
_PREFIX_RE = re.compile(r"^\s*(?:#{1,6}\s+|>\s?|(?:[-*+•]|\d{1,3}[.)])\s+)")
_BOLD_LINE_RE = re.compile(r"^\s*(?:\*\*|__)[^*_]+(?:\*\*|__)\s*:?\s*$")
_REFERENCES_HEAD_RE = re.compile(
    r"^\W*(?:sources?|references?|citations?|bibliography)\W*$", re.IGNORECASE
)
_REFERENCE_DEFINITION_RE = re.compile(r"^[ \t]{0,3}\[[^\[\]\n]+\]:")
_REFERENCE_LINE_RE = re.compile(r"^\s*(?:[-*+•]\s+)?\[\d{1,3}\]")

_END_RE = re.compile(r"(?:\.\.\.|…|[.!?])+[\"'”’)*_]*")
_TRAILING_MARKERS_RE = re.compile(r"(?:[ \t]*" + _MARKER_RE.pattern + r")+")
_ABBREVIATIONS = frozenset(
    """e.g i.e etc vs cf al approx dept est fig figs no nos p pp para paras sec secs art arts ch
    chap vol vols eq ref refs mr mrs ms dr prof st jr sr inc ltd co corp jan feb mar apr jun jul
    aug sep sept oct nov dec min max incl excl misc resp viz ca nb ps""".split()
)
_WORD_BEFORE_RE = re.compile(r"([^\W\d_]+(?:\.[^\W\d_]+)*)$")


@dataclass(frozen=True, slots=True)
class MarkedSentence:
    """One sentence of an answer: ``answer[start:end] == text``."""

    start: int
    end: int
    text: str  # as written, markers included
    claim: str  # markdown and markers removed: what gets verified or reported
    markers: tuple[int, ...]  # in order of appearance, repeats removed, unchecked (may be 0)
    kind: str = "text"  # "text", "item", "heading", "quote" or "table"

    @property
    def is_heading(self) -> bool:
        return self.kind == "heading"


def split_sentences(answer: str) -> list[str]:
    """The answer's sentences with markdown syntax removed (markers kept)."""
    return [_clean(answer[s:e]) for s, e, _ in _sentence_spans(answer)]


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """``(start, end)`` of each sentence of ``text`` (trimmed), by the rules above: for reading
    a passage sentence by sentence (rag.extractive) as the verifier reads an answer."""
    return [(start, end) for start, end, _ in _sentence_spans(text)]


def content_words(text: str, *, stopwords: frozenset[str] | None = None) -> tuple[str, ...]:
    """The words that carry meaning, stemmed, numbers as digits (what verification compares).

    ``stopwords``: the words to leave out (default: function words and the framing words of a
    claim, "according to the document"; a question about "the source code" needs "source")."""
    return _tokens(text, _CLAIM_STOPWORDS if stopwords is None else stopwords).words


def parse_markers(answer: str) -> list[MarkedSentence]:
    """Every sentence of the answer with the citation markers it carries (possibly none).

    ``[n]``, ``[n, m]``, ``[n][m]`` and ``[n-m]`` are markers; ``[note]``, ``[text](url)``,
    ``[1]: …`` reference lines and anything inside backticks are not. Markers are returned as
    written, including ``0`` and numbers beyond the sources: range checks belong to the caller.
    """
    masked = _mask(answer)
    sentences = []
    for start, end, kind in _sentence_spans(answer, masked):
        markers: list[int] = []
        pieces: list[str] = []
        cursor = start
        for match in _MARKER_RE.finditer(masked, start, end):
            for number in _expand(match.group(1)):
                if number not in markers:
                    markers.append(number)
            pieces.append(answer[cursor : match.start()])
            cursor = match.end()
        pieces.append(answer[cursor:end])
        text = answer[start:end]
        sentences.append(
            MarkedSentence(start, end, text, _clean("".join(pieces)), tuple(markers), kind)
        )
    return sentences


def _expand(group: str) -> list[int]:
    numbers: list[int] = []
    for part in re.split(r"\s*(?:,|;|and)\s*", group):
        ends = [int(n) for n in re.findall(r"\d+", part)]
        if len(ends) == 2 and 0 < ends[1] - ends[0] <= _MAX_RANGE:
            numbers.extend(range(ends[0], ends[1] + 1))
        else:
            numbers.extend(ends)
    return numbers


def _mask(text: str) -> str:
    for pattern in _MASK_RES:
        text = pattern.sub(lambda m: re.sub(r"[^\n]", _FILLER, m.group(0)), text)
    return text


def _clean(text: str) -> str:
    """Markdown to plain text: list/heading/quote prefixes, emphasis, code ticks, link targets."""
    text = re.sub(r"!?\[([^\[\]\n]*)\]\([^()\n]*\)", r"\1", text)
    text = re.sub(r"^\s*(?:#{1,6}\s+|>\s?|(?:[-*+•]|\d{1,3}[.)])\s+)", "", text)
    text = re.sub(r"\*\*|__|~~|`", "", text).replace("|", " ")
    text = re.sub(r"(?<!\w)[*_](?=\S)|(?<=\S)[*_](?!\w)", "", text)
    text = re.sub(r"\s+([.,;:!?])", r"\1", " ".join(text.split()))
    return text.strip()


def _sentence_spans(text: str, masked: str | None = None) -> list[tuple[int, int, str]]:
    """``(start, end, kind)`` of each sentence; offsets are into ``text``, trimmed."""
    if masked is None:
        masked = _mask(text)
    spans: list[tuple[int, int, str]] = []
    for seg_start, seg_end, kind in _segments(text):
        if kind in ("heading", "table"):
            spans.append((seg_start, seg_end, kind))
            continue
        cursor = seg_start
        for match in _END_RE.finditer(masked, seg_start, seg_end):
            end = match.end()
            trailing = _TRAILING_MARKERS_RE.match(masked, end, seg_end)
            if trailing:
                end = trailing.end()
            rest = masked[end:seg_end]
            if rest and not rest[0].isspace():
                continue  # "3.5", "v2.0", "example.com"
            upcoming = rest.lstrip()
            if upcoming and upcoming[0].islower():
                continue  # "e.g. the", "approx. five"
            if "." in match.group(0) and "..." not in match.group(0) and "…" not in match.group(0):
                before = _WORD_BEFORE_RE.search(masked, seg_start, match.start())
                word = before.group(1).lower() if before else ""
                if word in _ABBREVIATIONS or len(word) == 1 or re.fullmatch(r"(?:\w\.)+\w", word):
                    continue  # "Dr. Smith", "J. Smith", "U.S. staff"
            spans.append((cursor, end, kind))
            cursor = end
        spans.append((cursor, seg_end, kind))
    trimmed = []
    for start, end, kind in spans:
        chunk = text[start:end]
        lead = len(chunk) - len(chunk.lstrip())
        tail = len(chunk.rstrip())
        if tail > lead and masked[start + lead : start + tail].strip(_FILLER + " \t\n"):
            trimmed.append((start + lead, start + tail, kind))
    return trimmed


def _segments(text: str) -> list[tuple[int, int, str]]:
    """Paragraphs, list items, headings and table rows, as ``(start, end, kind)``."""
    segments: list[tuple[int, int, str]] = []
    open_start: int | None = None
    open_kind = "text"
    open_end = 0
    in_fence = False
    in_references = False
    offset = 0

    def close() -> None:
        nonlocal open_start
        if open_start is not None:
            segments.append((open_start, open_end, open_kind))
        open_start = None

    for line in text.splitlines(keepends=True):
        start, offset = offset, offset + len(line)
        end = start + len(line.rstrip("\r\n"))
        kind = next((k for k, pattern in _LINE_KIND_RES if pattern.match(line)), "text")
        if kind == "fence":
            close()
            in_fence = not in_fence
            continue
        if in_fence or not line.strip() or kind == "rule":
            close()
            continue
        if _REFERENCE_DEFINITION_RE.match(line):
            close()
            continue  # "[1]: https://…"
        if _REFERENCES_HEAD_RE.match(_clean(line)):
            close()
            in_references = True
            continue
        if in_references and _REFERENCE_LINE_RE.match(line):
            continue  # "[1] Travel policy, page 4" under a "Sources:" line
        in_references = False
        if kind == "text" and _BOLD_LINE_RE.match(line):
            kind = "heading"
        if kind != "text" or open_kind in ("heading", "table") or open_start is None:
            close()
            prefix = _PREFIX_RE.match(line) if kind in ("heading", "item", "quote") else None
            open_start, open_kind = start + (prefix.end() if prefix else 0), kind
        open_end = end
    close()
    return segments


# ---------------------------------------------------------------------------------------------
# Lexical features
# ---------------------------------------------------------------------------------------------

# Function words and "according to the policy"-style framing carry no evidence either way.
_CLAIM_STOPWORDS = STOPWORDS | frozenset(
    """also any all do does did done been being about after before each such only other some
    here via per up out every can could should would may might must shall need needs needed
    according state states stated say says said mention mentions mentioned note notes noted
    document documents source sources passage text there""".split()
)
_UNITS = {
    w: i
    for i, w in enumerate(
        """zero one two three four five six seven eight nine ten eleven twelve thirteen
        fourteen fifteen sixteen seventeen eighteen nineteen""".split()
    )
}
_TENS = {
    w: 10 * i
    for i, w in enumerate("_ _ twenty thirty forty fifty sixty seventy eighty ninety".split())
    if w != "_"
}
_SCALES = {"hundred": 100, "thousand": 1000, "million": 1_000_000}
_MONTHS = {
    name: index
    for index, names in enumerate(
        (
            "january jan",
            "february feb",
            "march",
            "april apr",
            "june jun",
            "july jul",
            "august aug",
            "september sep sept",
            "october oct",
            "november nov",
            "december dec",
        ),
        start=1,
    )
    for name in names.split()
}  # "May" is left out: it is far more often a modal verb
_TOKEN_RE = re.compile(r"\d+(?:[.,]\d+)*|%|[^\W\d_]+")
# Not gated: "one" is mostly a pronoun ("no one", "one of the"); as a token it is still "1".
_NOT_A_NUMBER = frozenset({"one"})


def _stem(word: str) -> str:
    """A deliberately light suffix stripper: enough to match receipts/receipt, submitted/submit."""
    if len(word) <= 3 or not word.isalpha():
        return word
    for suffix, replacement in (
        ("ies", "y"),
        ("ments", ""),
        ("ment", ""),
        ("ings", ""),
        ("ing", ""),
        ("edly", ""),
        ("ed", ""),
        ("ly", ""),
        ("es", ""),
        ("s", ""),
    ):
        if word.endswith(suffix) and not word.endswith("ss") and len(word) - len(suffix) >= 3:
            word = word[: len(word) - len(suffix)] + replacement
            break
    if len(word) > 3 and word.endswith("e"):
        word = word[:-1]
    if len(word) > 3 and word[-1] == word[-2] and word[-1] not in "lsz":
        word = word[:-1]
    return word


def _number(raw: str) -> str:
    raw = re.sub(r",(?=\d{3}\b)", "", raw)
    if re.fullmatch(r"\d+", raw):
        return str(int(raw))
    if re.fullmatch(r"\d+\.\d+", raw):
        return str(float(raw)).removesuffix(".0")
    return raw  # "4.2.1", "1,5"


@dataclass(frozen=True, slots=True)
class _Tokens:
    words: tuple[str, ...]  # content tokens, stemmed; numbers as digits
    numbers: frozenset[str]  # the subset that are numbers, months or years, for the gate
    quantities: frozenset[tuple[str, str]]  # (number, the word after it): ("30", "day")


def _tokens(text: str, stopwords: frozenset[str] = _CLAIM_STOPWORDS) -> _Tokens:
    words: list[str] = []
    numbers: set[str] = set()
    raw = [t.lower() for t in _TOKEN_RE.findall(text)]
    i = 0
    while i < len(raw):
        token = raw[i]
        if token[0].isdigit():
            value = _number(token)
            if i + 1 < len(raw) and raw[i + 1] in ("st", "nd", "rd", "th"):
                i += 1  # "30th"
            words.append(value)
            numbers.add(value)
        elif token in _UNITS or token in _TENS:
            total = _UNITS.get(token, _TENS.get(token, 0))
            gated = token not in _NOT_A_NUMBER
            while i + 1 < len(raw):
                follow = raw[i + 1]
                if token in _TENS and follow in _UNITS and 0 < _UNITS[follow] < 10:
                    total += _UNITS[follow]  # "thirty five"
                elif follow in _SCALES:
                    total *= _SCALES[follow]  # "two hundred"
                    gated = True
                else:
                    break
                token = follow
                i += 1
            words.append(str(total))
            if gated:
                numbers.add(str(total))
        elif token in _MONTHS:
            words.append(f"month{_MONTHS[token]}")
            numbers.add(f"month{_MONTHS[token]}")
        elif token == "%":
            words.append("percent")
        elif token not in stopwords and len(token) > 1:
            words.append(_stem(token))
        i += 1
    quantities = set()
    for index, word in enumerate(words):
        if word in numbers:
            unit = next((w for w in words[index + 1 : index + 3] if not w[0].isdigit()), None)
            if unit:
                quantities.add((word, unit))
    return _Tokens(tuple(words), frozenset(numbers), frozenset(quantities))


# Where one claim joins several assertions: each must find its own words in the passage.
_CLAUSE_SPLIT_RE = re.compile(
    r"\s*;\s*|,?\s+(?:and|but|plus|while|whereas|as well as|and also)\s+", re.IGNORECASE
)


def _weakest_clause(claim: str, evidence: set[str]) -> float:
    """Coverage of the least supported clause ("… within 30 days and approved by the CFO")."""
    clauses = [_tokens(part).words for part in _CLAUSE_SPLIT_RE.split(claim)]
    clauses = [words for words in clauses if words]
    if len(clauses) < 2:
        return 1.0
    return min(_coverage(words, evidence) for words in clauses)


def _coverage(claim: Sequence[str], evidence: set[str]) -> float:
    if not claim:
        return 0.0
    return sum(1 for w in claim if w in evidence) / len(claim)


# ---------------------------------------------------------------------------------------------
# Candidate spans of a passage
# ---------------------------------------------------------------------------------------------

_WINDOW_WORDS = 28
_LONG_SENTENCE_WORDS = 40
_MAX_SPANS = 80


def _candidate_spans(text: str) -> list[tuple[int, int]]:
    """Sentences, pairs of neighbouring sentences, and word windows over very long sentences."""
    sentences = [(s, e) for s, e, _ in _sentence_spans(text)]
    spans = list(sentences)
    spans += [(a[0], b[1]) for a, b in zip(sentences, sentences[1:], strict=False)]
    for start, end in sentences:
        words = list(re.finditer(r"\S+", text[start:end]))
        if len(words) > _LONG_SENTENCE_WORDS:
            step = _WINDOW_WORDS // 2
            for first in range(0, len(words) - step, step):
                last = min(first + _WINDOW_WORDS, len(words)) - 1
                spans.append((start + words[first].start(), start + words[last].end()))
    if not spans and text.strip():
        lead = len(text) - len(text.lstrip())
        spans.append((lead, len(text.rstrip())))
    return list(dict.fromkeys(spans))[:_MAX_SPANS]


def _embedding_text(text: str) -> str:
    return " ".join(text.split())


# ---------------------------------------------------------------------------------------------
# Verification
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VerifierThresholds:
    """The verifier's numbers, calibrated on the labelled pairs in tests/rag/test_citations.py.

    How they were chosen: every pair's features were computed with the packaged MiniLM. The
    weights came first: an even blend of meaning and wording, because MiniLM alone rates a
    wrong number or an on-topic but different claim as close (cosine 0.8+), and word overlap
    alone misses paraphrase. The cut-offs were then placed in the gaps between the classes of
    the 39-pair set and a 16-pair second round, rounded, and a grid over nearby values
    confirmed nothing did clearly better: supported claims scored 0.70 and up, unsupported ones
    without a number 0.62 at most (bar one claim built from the passage's own words, 0.87: a
    blind spot of both signals), and claims with an extra clause or an extra number are
    caught by the two rules below rather than by the score. The must-hold cases (exact quote →
    supported, a citation to an unrelated passage → unsupported) are far from either cut-off.
    ``lexical_*`` are the cut-offs for the embedder-less mode, chosen the same way on the
    lexical score alone; that mode is noticeably weaker on paraphrase and on-topic errors.

    * ``supported`` / ``partial``: combined score cut-offs (with an embedder).
    * ``embedding_weight``: share of the combined score from the embedding cosine.
    * ``span_weight``: share of the lexical score from the best span (rest: whole passage).
    * ``cosine_floor`` / ``cosine_ceiling``: MiniLM cosines are rescaled linearly from this
      range onto [0, 1]; unrelated English sentences already score ~0.1–0.3.
    * ``number_penalty``: multiplies the score when a claim's numbers are missing from the
      passage; the verdict is then ``unsupported`` if none of its numbers is there or one
      contradicts the passage ("five quotes" against "three quotes", "31 April" against "31
      March"), and at most ``partial`` otherwise.
    * ``clause_coverage``: a claim joining clauses ("… and approved by the CFO") is at most
      ``partial`` when one clause has less than this share of its words in the passage.
    * ``min_claim_words``: an uncited sentence with fewer content words is not a claim.
    * ``verbatim_coverage``: a claim with at least this share of its content words in one span
      of the passage is near-verbatim; wording decides it as surely as meaning would, so it is
      scored lexically and not embedded (the embedder is most of the verifier's cost). Set it
      above 1 to embed every claim.
    """

    supported: float = 0.65
    partial: float = 0.5
    lexical_supported: float = 0.65
    lexical_partial: float = 0.4
    embedding_weight: float = 0.5
    span_weight: float = 0.6
    cosine_floor: float = 0.25
    cosine_ceiling: float = 0.85
    number_penalty: float = 0.5
    clause_coverage: float = 0.5
    min_claim_words: int = 4
    verbatim_coverage: float = 0.9

    def __post_init__(self) -> None:
        for name in ("embedding_weight", "span_weight", "number_penalty", "clause_coverage"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be within [0, 1]")
        if not 0 <= self.partial <= self.supported <= 1:
            raise ValueError("need 0 <= partial <= supported <= 1")
        if not 0 <= self.lexical_partial <= self.lexical_supported <= 1:
            raise ValueError("need 0 <= lexical_partial <= lexical_supported <= 1")
        if not -1 <= self.cosine_floor < self.cosine_ceiling <= 1:
            raise ValueError("need -1 <= cosine_floor < cosine_ceiling <= 1")
        if self.verbatim_coverage < 0:
            raise ValueError("verbatim_coverage must be >= 0 (above 1: embed every claim)")
        if self.min_claim_words < 1:
            raise ValueError("min_claim_words must be positive")


DEFAULT_THRESHOLDS = VerifierThresholds()


@dataclass(frozen=True, slots=True)
class SupportScore:
    """How well one claim is supported by one passage, with the features behind the score."""

    score: float
    verdict: Verdict
    quote_start: int
    quote_end: int
    span_coverage: float
    chunk_coverage: float
    cosine: float | None
    clause_coverage: float
    missing_numbers: tuple[str, ...]


def verify_citations(
    *,
    answer: str,
    sources: Sequence[ScoredChunk],
    embedder: Embedder | None = None,
    thresholds: VerifierThresholds = DEFAULT_THRESHOLDS,
) -> CitationReport:
    """Check every ``[n]`` of the answer against ``sources[n - 1]``.

    Out-of-range markers (``[0]``, ``[n]`` with n > len(sources)) are dropped and listed in
    ``invalid_markers``; sentences that make a claim without a marker are listed in
    ``uncited_sentences``. With an embedder, the claims that are not near-verbatim and the
    candidate spans of their passages are embedded in one call; near-verbatim claims, and all of
    them without an embedder, are decided on the lexical score.
    """
    pairs: list[tuple[MarkedSentence, int]] = []
    invalid: list[int] = []
    uncited: list[str] = []
    for sentence in parse_markers(answer):
        if not sentence.markers:
            if _is_claim(sentence, thresholds):
                uncited.append(sentence.claim)
            continue
        for number in sentence.markers:
            if 1 <= number <= len(sources):
                pairs.append((sentence, number))
            elif number not in invalid:
                invalid.append(number)

    spans = {n: _candidate_spans(sources[n - 1].text) for n in sorted({n for _, n in pairs})}
    vectors: dict[str, np.ndarray] = {}
    paraphrased = [
        (sentence, n)
        for sentence, n in pairs
        if _best_span_coverage(sentence.claim, sources[n - 1].text, spans[n])
        < thresholds.verbatim_coverage
    ]
    if embedder is not None and paraphrased:
        texts = list(
            dict.fromkeys(
                [_embedding_text(s.claim) for s, _ in paraphrased]
                + [
                    _embedding_text(sources[n - 1].text[a:b])
                    for n in sorted({n for _, n in paraphrased})
                    for a, b in spans[n]
                ]
            )
        )
        matrix = np.asarray(embedder.embed(texts), dtype=np.float32)
        vectors = dict(zip(texts, matrix, strict=True))

    citations = []
    for sentence, number in pairs:
        chunk = sources[number - 1]
        result = _score(sentence.claim, chunk, spans[number], vectors, thresholds)
        quote = chunk.text[result.quote_start : result.quote_end]
        citations.append(
            Citation(
                marker=number,
                chunk=chunk,
                sentence=sentence.claim,
                quote=quote,
                quote_start=result.quote_start,
                quote_end=result.quote_end,
                verdict=result.verdict,
                score=result.score,
            )
        )
    return CitationReport(
        citations=tuple(citations),
        invalid_markers=tuple(invalid),
        uncited_sentences=tuple(uncited),
    )


def _best_span_coverage(claim: str, text: str, spans: Sequence[tuple[int, int]]) -> float:
    words = _tokens(claim).words
    if not words:
        return 0.0
    return max((_coverage(words, set(_tokens(text[a:b]).words)) for a, b in spans), default=0.0)


def score_support(
    *,
    claim: str,
    chunk: ScoredChunk,
    embedder: Embedder | None = None,
    thresholds: VerifierThresholds = DEFAULT_THRESHOLDS,
) -> SupportScore:
    """Score one claim (markers already removed) against one passage; for tests and tuning."""
    spans = _candidate_spans(chunk.text)
    vectors: dict[str, np.ndarray] = {}
    if embedder is not None:
        texts = list(
            dict.fromkeys(
                [_embedding_text(claim)] + [_embedding_text(chunk.text[a:b]) for a, b in spans]
            )
        )
        vectors = dict(zip(texts, np.asarray(embedder.embed(texts), dtype=np.float32), strict=True))
    return _score(claim, chunk, spans, vectors, thresholds)


def _score(
    claim: str,
    chunk: ScoredChunk,
    spans: Sequence[tuple[int, int]],
    vectors: dict[str, np.ndarray],
    t: VerifierThresholds,
) -> SupportScore:
    claim_tokens = _tokens(claim)
    context = " ".join((chunk.document_name, *chunk.heading_path, chunk.text))
    context_tokens = _tokens(context)
    chunk_coverage = _coverage(claim_tokens.words, set(context_tokens.words))
    claim_vector = vectors.get(_embedding_text(claim))
    use_embedding = claim_vector is not None and bool(spans)

    best = (-1.0, 0.0, None, (0, 0))  # (span score, coverage, cosine, span)
    for start, end in spans:
        coverage = _coverage(claim_tokens.words, set(_tokens(chunk.text[start:end]).words))
        cosine = None
        span_score = coverage
        if use_embedding:
            span_vector = vectors.get(_embedding_text(chunk.text[start:end]))
            if span_vector is not None:
                cosine = float(np.dot(claim_vector, span_vector))
                span_score = (
                    t.embedding_weight * _rescale(cosine, t) + (1 - t.embedding_weight) * coverage
                )
        if span_score > best[0]:
            best = (span_score, coverage, cosine, (start, end))
    _, span_coverage, cosine, (quote_start, quote_end) = best

    lexical = t.span_weight * span_coverage + (1 - t.span_weight) * chunk_coverage
    if cosine is not None:
        score = t.embedding_weight * _rescale(cosine, t) + (1 - t.embedding_weight) * lexical
        supported_at, partial_at = t.supported, t.partial
    else:
        score = lexical
        supported_at, partial_at = t.lexical_supported, t.lexical_partial

    clause_coverage = _weakest_clause(claim, set(context_tokens.words))
    verdict: Verdict = (
        "supported"
        if score >= supported_at
        else "partial"
        if score >= partial_at
        else "unsupported"
    )
    if verdict == "supported" and clause_coverage < t.clause_coverage:
        verdict = "partial"  # one of its clauses is not in the passage
    missing = tuple(sorted(claim_tokens.numbers - context_tokens.numbers))
    if missing:
        score *= t.number_penalty
        if not claim_tokens.numbers & context_tokens.numbers or _contradicts(
            claim_tokens, context_tokens
        ):
            verdict = "unsupported"  # "five quotes" where the passage says "three quotes"
        elif verdict == "supported":
            verdict = "partial"  # some of them are: the rest is unverified
    score = round(min(max(score, 0.0), 1.0), 4)
    if verdict == "unsupported":
        quote_start = quote_end = 0  # nothing in the passage supports it
    return SupportScore(
        score=score,
        verdict=verdict,
        quote_start=quote_start,
        quote_end=quote_end,
        span_coverage=round(span_coverage, 4),
        chunk_coverage=round(chunk_coverage, 4),
        cosine=None if cosine is None else round(cosine, 4),
        clause_coverage=round(clause_coverage, 4),
        missing_numbers=missing,
    )


def _contradicts(claim: _Tokens, passage: _Tokens) -> bool:
    """A number the passage lacks, counting something the passage counts differently, or a
    month the passage lacks where it names another month ("31 April" against "31 March")."""
    units = {unit for number, unit in passage.quantities}
    if any(number not in passage.numbers and unit in units for number, unit in claim.quantities):
        return True
    months = {n for n in passage.numbers if n.startswith("month")}
    return bool(months) and any(n.startswith("month") and n not in months for n in claim.numbers)


def _rescale(cosine: float, t: VerifierThresholds) -> float:
    return min(max((cosine - t.cosine_floor) / (t.cosine_ceiling - t.cosine_floor), 0.0), 1.0)


def _is_claim(sentence: MarkedSentence, t: VerifierThresholds) -> bool:
    """Worth flagging when uncited: not a heading, question, lead-in, abstention or fragment."""
    text = sentence.claim
    if sentence.kind in ("heading", "table") or text.endswith((":", "?")):
        return False
    if is_abstention(text):
        return False
    return len(_tokens(text).words) >= t.min_claim_words
