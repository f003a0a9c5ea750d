"""rag.extractive: which sentences of the passages found answer the question, with the real
MiniLM. The passages are written like the real manuals the first version failed on: section
headings that repeat the question, contents lines, cross-references, lead-ins whose end is a code
line, and answers whose subject is in the sentence before."""

from __future__ import annotations

import dataclasses

import pytest

from rag.embedding import SentenceTransformerEmbedder
from rag.extractive import (
    PickerSettings,
    asks_for_code,
    passage_units,
    pick_sentences,
    rejection,
)
from rag.types import ScoredChunk


def passage(key: str, text: str, *, kind="content", heading=(), page=3) -> ScoredChunk:
    return ScoredChunk(
        chunk_id=f"chunk-{key}",
        document_id="7",
        collection="general",
        page=page,
        start=0,
        end=len(text),
        text=text,
        score=0.5,
        heading_path=heading,
        document_name="manual.pdf",
        dense_score=0.5,
        kind=kind,
    )


CONTENTS = passage(
    "contents",
    "Contents\n"
    "1 Starting and quitting . . . . . . . . . . . . . . . . 3\n"
    "5.3 How can add-on tools be used? . . . . . . . . . . 23\n"
    "ii 5.1.2 Reading CSV files . . . . . . . . . . . . . . 21\n",
    kind="navigation",
    page=2,
)
QUITTING = passage(
    "quitting",
    "1 Starting and quitting\n"
    "The program is started from a terminal by typing its name.\n"
    "To quit the program the command is\n"
    "> q()\n"
    "You are then asked whether the workspace should be saved. See Section 7.31 for more "
    "details.",
    heading=("1 Starting and quitting",),
)
ADD_ONS = passage(
    "add-ons",
    "5.3 How can add-on tools be used?\n"
    "Add-on tools must be installed with the install command and then loaded with the load\n"
    "command in every session that uses them.\n"
    "See Section 5.4 for more details.",
    heading=("5 Add-on tools", "5.3 How can add-on tools be used?"),
)
CSV = passage(
    "csv",
    "Reading CSV files\n"
    "Spreadsheets are often exported as comma-separated values.\n"
    "The read.csv function reads such a file into a data frame.\n"
    "It assumes that the first line of the file holds the column names.\n"
    "Writing is covered in the next section.",
    heading=("5 Data", "Reading CSV files"),
)
CUT = passage(
    "cut",
    "Leaving a session\nSessions can be left at any time.\nTo quit the program the command is",
)


@pytest.fixture(scope="module")
def embedder() -> SentenceTransformerEmbedder:
    embedder = SentenceTransformerEmbedder()
    embedder.embed(["load the model once"])
    return embedder


class RecordingEmbedder:
    def __init__(self, inner) -> None:
        self.inner, self.dimension, self.name = inner, inner.dimension, inner.name
        self.calls: list[int] = []

    def embed(self, texts):
        self.calls.append(len(texts))
        return self.inner.embed(texts)


def kinds(chunk: ScoredChunk) -> list[tuple[str, str]]:
    return [(u.kind, chunk.text[u.start : u.end]) for u in passage_units(chunk.text)]


# ---------------------------------------------------------------------------------------------
# Units and what cannot be quoted
# ---------------------------------------------------------------------------------------------


def test_a_passage_is_read_as_headings_sentences_and_code_lines():
    assert kinds(QUITTING) == [
        ("heading", "1 Starting and quitting"),
        ("text", "The program is started from a terminal by typing its name."),
        ("text", "To quit the program the command is"),
        ("code", "> q()"),
        ("text", "You are then asked whether the workspace should be saved."),
        ("text", "See Section 7.31 for more details."),
    ]
    assert kinds(CSV)[0] == ("heading", "Reading CSV files")
    assert {kind for kind, _ in kinds(CONTENTS)[1:]} == {"navigation"}


def test_pdf_lines_of_one_sentence_are_joined_and_offsets_slice_back():
    (heading, sentence, cross_reference) = passage_units(ADD_ONS.text)
    text = ADD_ONS.text[sentence.start : sentence.end]
    assert text.startswith("Add-on tools must") and text.endswith("uses them.")
    assert "\n" in text  # one sentence over two PDF lines, quoted with its own offsets
    assert heading.kind == "heading" and cross_reference.kind == "text"


@pytest.mark.parametrize(
    ("text", "kind", "reason"),
    [
        ("5.3 How can add-on tools be used?", "text", "heading"),
        ("2 Getting started", "text", "heading"),
        ("ii 5.1.2 Reading CSV files . . . . . . . 21", "text", "navigation"),
        ("See Section 7.31 for more details.", "text", "cross-reference"),
        ("For more information, see Chapter 3.", "text", "cross-reference"),
        ("To quit the program the command is", "text", "fragment"),
        ("The options are the following", "text", "fragment"),
        ("Press Enter.", "text", "fragment"),  # too few words to answer anything
        ("Why does the program stop?", "text", "question"),
        ("> q()", "code", "code"),
        ("The read.csv function reads such a file into a data frame.", "text", ""),
        ("It assumes that the first line holds the column names.", "text", ""),
    ],
)
def test_rejection(text, kind, reason):
    assert rejection(text, kind) == reason


def test_a_code_line_answers_only_a_question_about_commands():
    assert asks_for_code("Which command quits the program?")
    assert not asks_for_code("How long do I have to hand in my travel receipts?")
    assert rejection("> q()", "code", code_wanted=True) == ""


def test_lower_case_start_is_a_fragment_only_where_a_sentence_may_have_begun_before():
    assert rejection("the rest of a sentence cut by the chunker.", "text", continues=True)
    assert rejection("apt-file provides an easy way to find a package.", "text") == ""


# ---------------------------------------------------------------------------------------------
# Picking
# ---------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_the_answer_not_the_heading_that_repeats_the_question(embedder):
    result = pick_sentences(
        query="How can add-on tools be used?", passages=[CONTENTS, ADD_ONS], embedder=embedder
    )

    (excerpt,) = result.excerpts
    assert excerpt.source == 1 and excerpt.chunk is ADD_ONS
    assert excerpt.text == (
        "Add-on tools must be installed with the install command and then loaded with the load "
        "command in every session that uses them."
    )
    assert ADD_ONS.text[excerpt.start : excerpt.end] == excerpt.quote
    rejected = {c.text: c.rejected for c in result.candidates if c.rejected}
    assert rejected["5.3 How can add-on tools be used?"] == "heading"
    assert rejected["See Section 5.4 for more details."] == "cross-reference"


@pytest.mark.slow
def test_a_lead_in_is_quoted_with_its_code_line_and_never_alone(embedder):
    result = pick_sentences(
        query="How do I quit the program?", passages=[CUT, QUITTING], embedder=embedder
    )

    first = result.excerpts[0]
    assert first.chunk is QUITTING
    assert first.text == "To quit the program the command is `> q()`"
    assert QUITTING.text[first.start : first.end] == "To quit the program the command is\n> q()"
    shown = " ".join(e.text for e in result.excerpts)
    assert "See Section 7.31" not in shown
    # the same words without the code line (the passage ends there) are a fragment
    cut = [c for c in result.candidates if c.source == 0 and "command is" in c.text]
    assert [c.rejected for c in cut] == ["fragment"]


@pytest.mark.slow
def test_a_sentence_starting_with_it_comes_with_the_sentence_naming_it(embedder):
    result = pick_sentences(
        query="Does read.csv expect the column names in the first line of the file?",
        passages=[CSV],
        embedder=embedder,
    )

    (excerpt,) = result.excerpts
    assert excerpt.quote.startswith("The read.csv function reads")
    assert excerpt.quote.endswith("holds the column names.")
    assert excerpt.text == (
        "The read.csv function reads such a file into a data frame. It assumes that the first "
        "line of the file holds the column names."
    )


@pytest.mark.slow
def test_navigation_passages_are_never_quoted_even_when_they_match_best(embedder):
    result = pick_sentences(
        query="Reading CSV files",
        passages=[CONTENTS],
        embedder=embedder,
        settings=PickerSettings(min_score=0.0),
    )
    assert result.excerpts == () and result.candidates == ()


@pytest.mark.slow
def test_nothing_is_quoted_when_no_sentence_answers(embedder):
    result = pick_sentences(
        query="How many weeks of parental leave does the company give?",
        passages=[QUITTING, ADD_ONS, CSV],
        embedder=embedder,
    )
    assert result.excerpts == ()
    assert 0 < result.best_score < PickerSettings().min_score


@pytest.mark.slow
def test_several_sentences_of_one_passage_in_document_order(embedder):
    text = (
        "Backups\n"
        "Backups run every night at two o'clock.\n"
        "The weather report is printed on the first page.\n"
        "Each backup of the database is kept for thirty days before it is deleted."
    )
    result = pick_sentences(
        query="How often do database backups run and how long is each backup kept?",
        passages=[passage("backups", text)],
        embedder=embedder,
        settings=PickerSettings(min_score=0.3, relative=0.5),
    )

    (excerpt, later) = result.excerpts
    assert excerpt.start < later.start  # document order, not score order
    assert "every night" in excerpt.text and "thirty days" in later.text
    assert all("weather" not in e.text for e in result.excerpts)


@pytest.mark.slow
def test_one_embed_call_and_inputs_untouched(embedder):
    recording = RecordingEmbedder(embedder)
    passages = [CONTENTS, QUITTING, ADD_ONS, CSV]
    before = [dataclasses.replace(p) for p in passages]

    pick_sentences(query="How do I quit the program?", passages=passages, embedder=recording)

    assert len(recording.calls) == 1
    assert passages == before


def test_without_an_embedder_word_overlap_decides():
    result = pick_sentences(
        query="How do I quit the program?",
        passages=[QUITTING],
        embedder=None,
        settings=PickerSettings(min_score=0.5),
    )
    assert result.excerpts and "q()" in result.excerpts[0].text


def test_settings_are_validated():
    with pytest.raises(ValueError):
        PickerSettings(max_sentences=0)
    with pytest.raises(ValueError):
        PickerSettings(cosine_floor=0.8, cosine_ceiling=0.2)
