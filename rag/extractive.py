"""Extractive answers: the sentences of the found passages that best answer a question.

When a model's answer cannot be shown (the offline model's answer failed verification), the
user is shown sentences quoted verbatim from the passages instead. Quoting whole passages or
their best-matching span is not enough on real manuals: the best match for a question is often
a section heading ("5.3 How can R be used?"), a contents line ("ii 5.1.2 Reading data . . . 23"),
a cross-reference ("See Section 7.31 for more details.") or half a sentence whose end is a code
line ("To quit the program the command is" + "> q()"). So a passage is read as a sequence of
units (sentences, headings, navigation lines, code lines), the units that cannot answer anything
are rejected with a reason, and the remaining sentences are scored against the question:

* dense: the embedding cosine between the question and the sentence (all sentences of all
  passages and the question in one ``embed`` call), rescaled onto [0, 1];
* lexical: the share of the question's content words (rag.citations' tokenizer and stemmer)
  found in the sentence, and in the sentence with its passage's section path.

The best sentences (1 to ``max_sentences``) above ``min_score`` are shown, each with the
sentence before it when it leans on it ("It …", "This …") and with the code or list that a
lead-in ("… the command is", "… as follows:") introduces, in document order within a passage.
Offsets are into ``chunk.text``, so the cited span can be highlighted in the source.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .citations import content_words, sentence_spans
from .embedding import Embedder
from .lexical import STOPWORDS
from .types import ScoredChunk

# "text" | "item" | "heading" | "navigation" | "code" | "figure" (a chart's numbers and labels),
# and "lead-in": a sentence joined with the code lines or list items it introduces (complete
# only together)
UnitKind = str

# ---------------------------------------------------------------------------------------------
# Reading a passage as units
# ---------------------------------------------------------------------------------------------

# Dotted leaders and their relatives: "Reading data . . . . 23", "Index ........ 7", "____".
_LEADERS_RE = re.compile(r"(?:\.\s*){4,}|(?:…\s*){2,}|(?:·\s*){3,}|_{4,}")
# "5.1.2 Reading data 23", "ii 5.1.2 Reading data", "Appendix A Glossary 101", "Index, 12, 45, 67"
_TOC_LINE_RES = (
    re.compile(
        r"^\s*(?:[ivxlcdm]{1,6}\s+)?(?:\d+(?:\.\d+)*\.?|[A-Z](?:\.\d+)+|(?:chapter|appendix|part)"
        r"\s+\w+)\s+\S.*?\s\d{1,4}\s*$",
        re.IGNORECASE,
    ),
    re.compile(r"^\s*[ivxlcdm]{1,6}\s+\d+(?:\.\d+)+\s", re.IGNORECASE),
    re.compile(r"(?:,\s*\d{1,4}(?:[-–]\d{1,4})?){2,}\s*$"),
)
_LIST_NUMBER_RE = re.compile(r"^\s*\d{1,2}[.)]\s")
_SECTION_NUMBER_RE = re.compile(
    r"^\s*(?:\d+(?:\.\d+)*\.?|[A-Z](?:\.\d+)+\.?)\s+(?=[^\W\d_]|[\"'(`])"
)
_MARKDOWN_HEADING_RE = re.compile(r"^\s{0,3}#{1,6}\s+\S")
_ITEM_RE = re.compile(r"^\s*(?:[-*+•▪◦]|\(?\d{1,3}[.)]|\(?[a-z][.)])\s+\S")
_FENCE_RE = re.compile(r"^\s*(?:```|~~~)")
# Shell, R and Python prompts starting a line: "$ ls", "> q()", ">>> import x", "% make"
_PROMPT_RE = re.compile(r"^\s*(?:\$|>>>|>|%|R>|In \[\d+\]:)\s*\S")
_WORD_RE = re.compile(r"^[^\W\d_]{2,}[.,;:!?)\"']*$")
_CODE_CHARS_RE = re.compile(r"[(){}\[\]=<>;$/\\|&*^~#]")
_PROSE_WORD_RE = re.compile(r"[^\W\d_]{2,}")
_NAME_RE = re.compile(r"^(?=.*(?:[_/\\]|\w\.\w))[\w./\\~:+-]*[\w/\\~+-]$")
_FINAL_RE = re.compile(r"[.!?…][\"'”’)\]*_]*$")


@dataclass(frozen=True, slots=True)
class Unit:
    """A piece of a passage: ``text[start:end]``, its kind, and the block it sits in."""

    start: int
    end: int
    kind: UnitKind
    block: int  # units of one paragraph share it: context is only taken from the same block
    code_from: int | None = None  # a lead-in joined with its code: where the code begins


def passage_units(text: str) -> list[Unit]:
    """Split a passage into units: each heading, navigation (contents/index) line and code line
    on its own, list items on their own, running text (PDF lines rejoined) into sentences."""
    lines = _lines(text)
    kinds = _line_kinds(text, lines)
    units: list[Unit] = []
    block = 0
    run: list[tuple[int, int]] = []  # the lines of the current paragraph

    def flush() -> None:
        nonlocal run
        if run:
            first, last = run[0][0], run[-1][1]
            kind = "item" if _ITEM_RE.match(text[first:last]) else "text"
            for start, end in sentence_spans(text[first:last]):
                units.append(Unit(first + start, first + end, kind, block))
        run = []

    # A block ends at a blank line, a heading or a navigation line: PDF text has few blank
    # lines, so a block is mostly "the same section", the scope a pronoun refers within.
    for (start, end), kind in zip(lines, kinds, strict=True):
        if kind == "blank":
            flush()
            block += 1
        elif kind in ("heading", "navigation", "code", "figure"):
            flush()
            units.append(Unit(start, end, kind, block, start if kind == "code" else None))
            if kind != "code":
                block += 1
        else:
            if kind == "item":
                flush()
            run.append((start, end))
    flush()
    return units


def _lines(text: str) -> list[tuple[int, int]]:
    spans = []
    offset = 0
    for line in text.splitlines(keepends=True):
        content = line.rstrip("\r\n")
        lead = len(content) - len(content.lstrip())
        stripped = content.strip()
        if stripped:
            spans.append((offset + lead, offset + lead + len(stripped)))
        else:
            spans.append((offset, offset))
        offset += len(line)
    return spans


def _line_kinds(text: str, lines: list[tuple[int, int]]) -> list[str]:
    kinds: list[str] = []
    in_fence = False
    for index, (start, end) in enumerate(lines):
        line = text[start:end]
        if not line:
            kinds.append("blank")
            continue
        if _FENCE_RE.match(line):
            in_fence = not in_fence
            kinds.append("blank")  # the fence itself is not quoted
            continue
        if in_fence:
            kinds.append("code")
            continue
        previous = next((k for k in reversed(kinds) if k != "blank"), None)
        prev_text = text[lines[index - 1][0] : lines[index - 1][1]] if index else ""
        at_start = (
            index == 0
            or not prev_text
            or previous in ("heading", "navigation", "code", "figure")
            or bool(_FINAL_RE.search(prev_text))
            or prev_text.endswith(":")
        )
        following = (
            text[lines[index + 1][0] : lines[index + 1][1]] if index + 1 < len(lines) else ""
        )
        kinds.append(_line_kind(line, at_start=at_start, following=following))
    return kinds


def _line_kind(line: str, *, at_start: bool, following: str) -> str:
    if _LEADERS_RE.search(line) or any(p.search(line) for p in _TOC_LINE_RES[:2]):
        return "navigation"
    if _TOC_LINE_RES[2].search(line) and len(line.split()) <= 12:
        return "navigation"  # an index entry: "encryption, 12, 45"
    if _MARKDOWN_HEADING_RE.match(line):
        return "heading"
    if _is_code(line):
        return "code"
    if not _PROSE_WORD_RE.search(line) and not _FINAL_RE.search(line):
        return "figure"  # axis labels and numbers of a chart: "0 0.1 0.2", "x", "19y"
    words = line.split()
    if (
        at_start
        and _SECTION_NUMBER_RE.match(line)
        and len(words) <= 14
        and words[-1].lower() not in _DANGLING  # "4. To quit the program the command is"
        and not (_LIST_NUMBER_RE.match(line) and len(words) > 5)  # "2. Start the program …"
    ):
        if not _FINAL_RE.search(line) or line.endswith("?"):
            return "heading"  # "5.3 How can R be used?", "2 Getting started", "1. Introduction"
    if _ITEM_RE.match(line):
        return "item"
    if (
        at_start
        and len(words) <= 8
        and len(line) <= 70
        and not re.search(r"[.!?:;,]$", line)
        and (line[0].isupper() or line[0].isdigit())
        and words[-1].lower() not in _DANGLING  # "… the command is" goes on below
        and bool(following)  # a title has something after it
        and (following[0].isupper() or following[0].isdigit() or _ITEM_RE.match(following))
    ):
        return "heading"  # "Travel policy" on the line above its first paragraph
    return "text"


def _is_code(line: str) -> bool:
    if _PROMPT_RE.match(line):
        return True
    tokens = line.split()
    if len(tokens) == 1 and _NAME_RE.match(line):
        return True  # a file name, a path, an identifier on a line of its own
    words = sum(1 for t in tokens if _WORD_RE.match(t))
    symbols = len(_CODE_CHARS_RE.findall(line))
    # "q()", "x <- read.csv('data.csv')", "make install": few plain words, some code signs
    return symbols >= 2 and (words == 0 or words <= len(tokens) // 3)


# ---------------------------------------------------------------------------------------------
# Which units can be an answer
# ---------------------------------------------------------------------------------------------

# A line ending with one of these stops mid-sentence ("To quit the program the command is").
_DANGLING = frozenset(
    """a an the is are was were be been of to and or for with by as in on at from that which
    than into onto via using use type command following follows enter run""".split()
)
# Even with a full stop after it, a sentence does not end on these: the text extraction cut it.
_NEVER_LAST = frozenset("a an the is are".split())
_CROSS_REFERENCE_START_RE = re.compile(
    r"^\W*(?:see(?: also)?|refer to|cf\b\.?|consult|for (?:more|further|additional|full|"
    r"complete) (?:details|information|examples)|(?:more|further) (?:details|information))\b",
    re.IGNORECASE,
)
_REFERENCE_WORD_RE = re.compile(
    r"\b(?:section|sections|chapter|chapters|appendix|page|pages|figure|table|part|manual|"
    r"documentation|below|above|later|earlier|reference|§)\b",
    re.IGNORECASE,
)
_ANAPHORIC_START_RE = re.compile(
    r"^\W*(?:it|its|this|these|that|those|they|them|their|such|he|she|thus|hence|therefore|"
    r"also|however|otherwise|alternatively|similarly|likewise|instead|then|in (?:this|that|"
    r"which) case|in addition|additionally|furthermore|moreover|for (?:example|instance)|"
    r"the (?:latter|former|same))\b",
    re.IGNORECASE,
)
_COMMAND_QUESTION_RE = re.compile(
    r"\b(?:commands?|syntax|type|typing|run|running|call|calling|invoke|function|functions|"
    r"option|options|flag|flags|code|script|shell|terminal|prompt|quit|exit|install|"
    r"statement|keyword|expression|enter)\b",
    re.IGNORECASE,
)


def asks_for_code(question: str) -> bool:
    """Whether a code line on its own may answer the question ("which command …")."""
    return bool(_COMMAND_QUESTION_RE.search(question))


def rejection(
    text: str,
    kind: UnitKind,
    *,
    code_wanted: bool = False,
    min_words: int = 4,
    continues: bool = False,
) -> str:
    """Why this unit cannot be quoted as an answer ("" when it can). ``continues``: the unit
    may be the rest of a sentence begun before it (the passage's first unit, or text after a
    code line), so a lower-case start means it is."""
    if kind in ("heading", "navigation", "figure"):
        return kind
    if kind == "code":
        return "" if code_wanted else "code"
    if kind == "lead-in":
        return ""  # "To quit, type:" + "q()": complete together
    flat = " ".join(text.split())
    words = flat.split()
    if _LEADERS_RE.search(flat):
        return "navigation"
    if (
        kind != "item"
        and _SECTION_NUMBER_RE.match(flat)
        and len(words) <= 14
        and (flat.endswith("?") or not _FINAL_RE.search(flat))
    ):
        return "heading"
    if flat.endswith("?"):
        return "question"  # a question answers nothing (an FAQ's heading, a rhetorical lead-in)
    if (
        _CROSS_REFERENCE_START_RE.match(flat)
        and _REFERENCE_WORD_RE.search(flat)
        and len(words) <= 20
    ):
        return "cross-reference"
    if not _FINAL_RE.search(flat):
        return "fragment"  # cut off, a title, or a lead-in without what it introduces
    last = re.sub(r"[^\w]+$", "", words[-1]).lower() if words else ""
    if last in _NEVER_LAST:
        return "fragment"
    if len(words) < min_words:
        return "fragment"
    first = flat.lstrip("\"'“‘(*_")
    if continues and kind != "item" and first[:1].islower():
        return "fragment"  # the end of a sentence that began before the passage or the code
    return ""


def _is_lead_in(text: str) -> bool:
    """A sentence that introduces what follows: "… the command is", "… as follows:"."""
    flat = " ".join(text.split())
    if flat.endswith(":"):
        return True
    if _FINAL_RE.search(flat):
        return False
    last = re.sub(r"[^\w]+$", "", flat.split()[-1]).lower() if flat else ""
    return last in _DANGLING


# ---------------------------------------------------------------------------------------------
# Picking
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PickerSettings:
    """The picker's numbers. How ``min_score`` was chosen is in config/settings/base.py
    (``EXTRACTIVE_MIN_SUPPORT``), which overrides it in the app.

    * ``min_score``: the least score of a quoted sentence; below it nothing is quoted.
    * ``max_sentences``: the most answering sentences shown (context sentences not counted).
    * ``relative``: a further sentence must score at least this share of the best one, so a
      clear answer is not diluted by weaker matches.
    * ``embedding_weight``: share of the score from the rescaled cosine (rest: word overlap).
    * ``span_weight``: share of the word overlap from the sentence alone (rest: the sentence
      with its passage's section path and document name).
    * ``cosine_floor`` / ``cosine_ceiling``: MiniLM question-to-sentence cosines are rescaled
      linearly from this range onto [0, 1].
    * ``min_words``: shorter sentences are fragments.
    * ``max_context_units``: most units a lead-in takes with it (code lines, list items).
    """

    min_score: float = 0.7
    max_sentences: int = 3
    relative: float = 0.85
    embedding_weight: float = 0.5
    span_weight: float = 0.7
    cosine_floor: float = 0.1
    cosine_ceiling: float = 0.7
    min_words: int = 4
    max_context_units: int = 6

    def __post_init__(self) -> None:
        for name in ("min_score", "relative", "embedding_weight", "span_weight"):
            if not 0 <= getattr(self, name) <= 1.5:
                raise ValueError(f"{name} must be within [0, 1.5]")
        if self.max_sentences < 1 or self.min_words < 1 or self.max_context_units < 0:
            raise ValueError("max_sentences and min_words must be positive")
        if not -1 <= self.cosine_floor < self.cosine_ceiling <= 1:
            raise ValueError("need -1 <= cosine_floor < cosine_ceiling <= 1")


DEFAULT_PICKER = PickerSettings()


@dataclass(frozen=True, slots=True)
class Candidate:
    """One unit of one passage as the picker saw it (for the trace and for tuning)."""

    source: int  # index into the passages given
    start: int
    end: int
    text: str
    rejected: str  # "" when it could be quoted, otherwise why not
    score: float | None = None
    cosine: float | None = None
    coverage: float | None = None


@dataclass(frozen=True, slots=True)
class Excerpt:
    """What is shown: ``chunk.text[start:end]``, the chosen sentence(s) with their context."""

    source: int  # index into the passages given: the citation marker is ``source + 1``
    chunk: ScoredChunk
    start: int
    end: int
    text: str  # the span as shown: whitespace tidied, code lines in backticks
    score: float  # the best score of a sentence in it

    @property
    def quote(self) -> str:
        return self.chunk.text[self.start : self.end]


@dataclass(frozen=True, slots=True)
class Extract:
    excerpts: tuple[Excerpt, ...]  # empty: nothing answers the question well enough
    best_score: float  # of the best sentence that could be quoted (0.0 when none could)
    candidates: tuple[Candidate, ...]


_CAMEL_RE = re.compile(r"(?<=[a-z])(?=[A-Z])")
# Function words only: the verifier also drops "source", "document", "text" (framing words of
# a claim), which in a question about a manual are its subject ("the source code").
_STOPWORDS = STOPWORDS | frozenset(
    """do does did done can could should would may might must shall also any all each such
    only other some via per""".split()
)
# The frame of a question ("how", "tell me", "is it possible") and the particles and adverbs
# of its verb ("write it back out", "do it again"): not what an answering sentence must contain.
_QUESTION_WORDS = frozenset(
    """how why whom whose way ways tell explain describe know want wish please possible
    anyone someone something thing things get out back again away now then there here really
    actually exactly just""".split()
)


def question_words(query: str) -> tuple[str, ...]:
    """The question's content words: its subject and what it asks about, without "how"."""
    return tuple(w for w in _words(query) if w not in _QUESTION_WORDS)


def _words(text: str) -> tuple[str, ...]:
    # "defaultPageSize" is the words "default page size" to someone asking about it
    return content_words(_CAMEL_RE.sub(" ", text), stopwords=_STOPWORDS)


def pick_sentences(
    *,
    query: str,
    passages: Sequence[ScoredChunk],
    embedder: Embedder | None,
    settings: PickerSettings = DEFAULT_PICKER,
) -> Extract:
    """The sentences of ``passages`` that best answer ``query`` (see the module docstring).

    Navigation passages (``kind == "navigation"``) are never quoted. Without an embedder the
    score is the word overlap alone (weaker on paraphrase). Inputs are not mutated.
    """
    code_wanted = asks_for_code(query)
    units_of: dict[int, list[Unit]] = {}
    candidates: list[Candidate] = []
    for index, passage in enumerate(passages):
        if passage.kind == "navigation":
            continue
        units = _merge_lead_ins(passage.text, passage_units(passage.text), settings)
        units_of[index] = units
        for position, unit in enumerate(units):
            text = passage.text[unit.start : unit.end]
            continues = position == 0 or units[position - 1].kind in ("code", "lead-in")
            why = rejection(
                text,
                unit.kind,
                code_wanted=code_wanted,
                min_words=settings.min_words,
                continues=continues,
            )
            candidates.append(Candidate(index, unit.start, unit.end, text, why))

    eligible = [c for c in candidates if not c.rejected]
    weights = _rarity(question_words(query), [c.text for c in candidates])
    scored = _score(query, passages, eligible, weights, embedder, settings)
    by_span = {(c.source, c.start, c.end): c for c in scored}
    candidates = [by_span.get((c.source, c.start, c.end), c) for c in candidates]
    if not scored:
        return Extract((), 0.0, tuple(candidates))

    ranked = sorted(scored, key=lambda c: (-(c.score or 0.0), c.source, c.start))
    best = ranked[0].score or 0.0
    if best < settings.min_score:
        return Extract((), best, tuple(candidates))
    bar = max(settings.min_score, best * settings.relative)
    picked: list[Candidate] = []
    seen: set[str] = set()
    for candidate in ranked:
        if len(picked) == settings.max_sentences or (candidate.score or 0.0) < bar:
            break
        key = " ".join(candidate.text.lower().split())
        if key in seen:
            continue  # the same sentence in two overlapping passages
        seen.add(key)
        picked.append(candidate)

    excerpts = _excerpts(picked, passages, units_of, by_span, settings)
    return Extract(tuple(excerpts), best, tuple(candidates))


def _merge_lead_ins(text: str, units: list[Unit], settings: PickerSettings) -> list[Unit]:
    """Join a lead-in sentence with the code lines or list items it introduces, in one unit:
    "To quit the program the command is" + "> q()" answers; either half alone does not."""
    merged: list[Unit] = []
    index = 0
    while index < len(units):
        unit = units[index]
        follow = index + 1
        if unit.kind in ("text", "item") and _is_lead_in(text[unit.start : unit.end]):
            wanted = "code" if follow < len(units) and units[follow].kind == "code" else "item"
            while (
                follow < len(units)
                and follow - index <= settings.max_context_units
                and units[follow].kind == wanted
            ):
                follow += 1
        if follow > index + 1:
            code_from = units[index + 1].start if units[index + 1].kind == "code" else None
            merged.append(Unit(unit.start, units[follow - 1].end, "lead-in", unit.block, code_from))
        else:
            merged.append(unit)
            follow = index + 1
        index = follow
    return merged


def _score(
    query: str,
    passages: Sequence[ScoredChunk],
    eligible: list[Candidate],
    weights: dict[str, float],
    embedder: Embedder | None,
    t: PickerSettings,
) -> list[Candidate]:
    if not eligible:
        return []
    cosines: list[float | None] = [None] * len(eligible)
    if embedder is not None:
        texts = [_flat(query)] + [_flat(c.text) for c in eligible]
        unique = list(dict.fromkeys(texts))
        matrix = np.asarray(embedder.embed(unique), dtype=np.float32)
        vectors = dict(zip(unique, matrix, strict=True))
        question = vectors[texts[0]]
        cosines = [float(np.dot(question, vectors[text])) for text in texts[1:]]
    scored = []
    for candidate, cosine in zip(eligible, cosines, strict=True):
        passage = passages[candidate.source]
        own = set(_words(candidate.text))
        context = own | set(_words(" ".join((passage.document_name, *passage.heading_path))))
        coverage = t.span_weight * _share(weights, own) + (1 - t.span_weight) * _share(
            weights, context
        )
        score = coverage
        if cosine is not None:
            rescaled = (cosine - t.cosine_floor) / (t.cosine_ceiling - t.cosine_floor)
            rescaled = min(max(rescaled, 0.0), 1.0)
            score = t.embedding_weight * rescaled + (1 - t.embedding_weight) * coverage
        scored.append(
            Candidate(
                candidate.source,
                candidate.start,
                candidate.end,
                candidate.text,
                "",
                round(score, 4),
                None if cosine is None else round(cosine, 4),
                round(coverage, 4),
            )
        )
    return scored


def _rarity(asked: Sequence[str], texts: Sequence[str]) -> dict[str, float]:
    """Each question word's weight: how rare it is among the units of the passages found. The
    product's name ("gri", "ubuntu") is in nearly every sentence and tells them apart least;
    the word only the answering sentence has ("memory") tells them apart most."""
    units = [set(_words(text)) for text in texts]
    weights: dict[str, float] = {}
    for word in asked:
        # A word no passage has tells no sentence apart and may just be paraphrased ("hand
        # in" for "submitted"): it weighs as much as one that a single sentence has.
        found_in = max(1, sum(1 for words in units if word in words))
        weights[word] = weights.get(word, 0.0) + math.log((len(units) + 1) / (found_in + 0.5))
    return weights


def _share(weights: dict[str, float], found: set[str]) -> float:
    total = sum(weights.values())
    if total <= 0:
        return 0.0
    return sum(weight for word, weight in weights.items() if word in found) / total


def _excerpts(
    picked: list[Candidate],
    passages: Sequence[ScoredChunk],
    units_of: dict[int, list[Unit]],
    by_span: dict[tuple[int, int, int], Candidate],
    t: PickerSettings,
) -> list[Excerpt]:
    """Each picked sentence with the neighbours it needs, merged per passage where they touch,
    passages in the order of their best sentence, sentences in document order within one."""
    spans: dict[int, list[tuple[int, int, float]]] = {}  # source -> (first, last unit, score)
    for candidate in picked:
        units = units_of[candidate.source]
        position = next(i for i, u in enumerate(units) if u.start == candidate.start)
        first = last = position
        text = candidate.text
        if _ANAPHORIC_START_RE.match(text) and position > 0:
            before = units[position - 1]
            if before.block == units[position].block and _complete(passages, candidate, before):
                first = position - 1  # "It …": the sentence naming "it" comes with it
        if position + 1 < len(units):
            after = units[position + 1]
            after_text = passages[candidate.source].text[after.start : after.end]
            neighbour = by_span.get((candidate.source, after.start, after.end))
            if (
                after.block == units[position].block
                and _ANAPHORIC_START_RE.match(after_text)
                and neighbour is not None
                and (neighbour.score or 0.0) >= t.min_score
            ):
                last = position + 1  # "… It also …": the next sentence goes on about it
        spans.setdefault(candidate.source, []).append((first, last, candidate.score or 0.0))

    grouped: list[tuple[float, int, list[tuple[int, int, float]]]] = []
    for source, found in spans.items():
        found.sort()
        merged: list[tuple[int, int, float]] = []
        for first, last, score in found:
            if merged and first <= merged[-1][1] + 1:
                a, b, s = merged[-1]
                merged[-1] = (a, max(b, last), max(s, score))
            else:
                merged.append((first, last, score))
        grouped.append((max(s for _, _, s in merged), source, merged))
    grouped.sort(key=lambda g: (-g[0], g[1]))

    excerpts = []
    for _, source, merged in grouped:
        passage = passages[source]
        units = units_of[source]
        for first, last, score in merged:
            shown = " ".join(_shown(passage.text, u) for u in units[first : last + 1])
            excerpts.append(
                Excerpt(source, passage, units[first].start, units[last].end, shown, score)
            )
    return excerpts


def _complete(passages: Sequence[ScoredChunk], candidate: Candidate, unit: Unit) -> bool:
    text = passages[candidate.source].text[unit.start : unit.end]
    return unit.kind in ("text", "item", "lead-in") and not rejection(text, unit.kind, min_words=1)


def _shown(text: str, unit: Unit) -> str:
    """A unit as displayed: whitespace tidied; code in backticks so Markdown leaves it alone."""
    if unit.code_from is None:
        return _flat(text[unit.start : unit.end])
    prose = _flat(text[unit.start : unit.code_from])
    code = [_code(line.strip()) for line in text[unit.code_from : unit.end].splitlines()]
    return " ".join(part for part in (prose, *code) if part.strip("`"))


def _code(line: str) -> str:
    line = line.replace("`", "'")
    return f"`{line}`"


def _flat(text: str) -> str:
    return " ".join(text.split())
