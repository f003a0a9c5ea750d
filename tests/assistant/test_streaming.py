"""Verdicts while an answer streams (the `verdict` events) and how quotes are marked."""

import json
import re

import numpy as np
import pytest

from assistant.rendering import render_answer
from assistant.streaming import LiveVerdicts
from rag.types import ScoredChunk
from tests.fakes.deepseek import Reply

RECEIPTS = "How long do I have to hand in my travel receipts?"
TRAVEL = ScoredChunk(
    chunk_id="c1",
    document_id="1",
    collection="general",
    page=2,
    start=0,
    end=120,
    text="Economy class is required for flights shorter than six hours. "
    "Receipts must be submitted within thirty days of travel.",
    score=1.0,
    document_name="handbook.pdf",
)


def stream(answer: str, live: LiveVerdicts) -> list[tuple[str, dict]]:
    """Feed ``answer`` word by word; return (text streamed so far, event) for every verdict."""
    seen = []
    for word in re.findall(r"\S+\s*", answer):
        for event in live.feed(word):
            seen.append((live.text, event))
    return seen


class TestLiveVerdicts:
    def test_a_sentence_is_judged_once_the_next_one_starts(self):
        answer = (
            "Receipts must be submitted within thirty days of travel [1]. "
            "Hotels cost five hundred euros per night [1]. Ask your manager."
        )
        seen = stream(answer, LiveVerdicts(sources=[TRAVEL], embedder=None))

        assert [event["index"] for _, event in seen] == [0, 1]
        first_text, first = seen[0]
        assert first_text.endswith("Hotels ")  # not before the second sentence began
        assert first["sentence"] == "Receipts must be submitted within thirty days of travel."
        assert first["citations"] == [{"marker": 1, "verdict": "supported", "score": 1.0}]
        assert seen[1][1]["citations"][0]["verdict"] == "unsupported"
        # the last sentence is left to the verification of the whole answer (`done`)
        assert len(seen) == 2

    def test_offsets_point_into_the_streamed_text(self):
        answer = "Receipts: thirty days of travel [1]. Next, economy for short flights [1]. End"
        seen = stream(answer, LiveVerdicts(sources=[TRAVEL], embedder=None))

        for text, event in seen:
            assert text[event["start"] : event["end"]].endswith("[1].")
        assert seen[1][0][seen[1][1]["start"] :].startswith("Next, economy")

    def test_markers_after_the_full_stop_belong_to_the_sentence_before(self):
        live = LiveVerdicts(sources=[TRAVEL], embedder=None)
        events = []
        for piece in ["Receipts within thirty days of travel.", " [", "1", "]", " Then", " more"]:
            events += list(live.feed(piece))
        assert len(events) == 1
        assert events[0]["citations"][0]["marker"] == 1
        assert live.text[events[0]["start"] : events[0]["end"]].endswith("travel. [1]")

    def test_sentences_without_markers_get_no_event(self):
        seen = stream(
            "Hello there, this is uncited. So is this one. And [1] this.",
            LiveVerdicts(sources=[TRAVEL], embedder=None),
        )
        assert seen == []

    def test_each_text_is_embedded_once_per_answer(self):
        class Counting:
            dimension = 8
            name = "counting"

            def __init__(self):
                self.texts = []

            def embed(self, texts):
                self.texts += texts
                rows = [np.random.default_rng(abs(hash(t)) % 2**32).normal(size=8) for t in texts]
                return np.asarray([r / np.linalg.norm(r) for r in rows], dtype=np.float32)

        embedder = Counting()
        answer = (
            "Travel receipts go in within the month [1]. Short trips fly economy [1]. "
            "Receipts are due after travel [1]. End"
        )
        seen = stream(answer, LiveVerdicts(sources=[TRAVEL], embedder=embedder))

        assert len(seen) == 3
        assert embedder.texts and len(embedder.texts) == len(set(embedder.texts))

    def test_a_failing_verifier_stops_the_verdicts_not_the_answer(self):
        class Broken:
            dimension = 3

            def embed(self, texts):
                raise RuntimeError("embedding server gone")

        live = LiveVerdicts(sources=[TRAVEL], embedder=Broken())
        seen = stream("Economy is a thing they say [1]. Then more follows [1]. End", live)
        assert seen == []
        assert live.text.endswith("End")


@pytest.mark.django_db
def test_the_stream_carries_verdicts_before_the_answer_is_done(
    client, staff_user, handbook, deepseek
):
    deepseek.enqueue(
        Reply(
            answer="Receipts must be submitted within thirty days of travel [1]. "
            "Economy class is required for flights shorter than six hours [1]."
        )
    )
    client.force_login(staff_user)

    response = client.post(
        "/api/v1/ask",
        data=json.dumps({"question": RECEIPTS, "stream": True}),
        content_type="application/json",
    )
    events = [
        json.loads(block.split("\ndata: ", 1)[1])
        for block in b"".join(response.streaming_content).decode().strip().split("\n\n")
    ]

    kinds = [e["event"] for e in events]
    verdict = kinds.index("verdict")
    assert "answer" in kinds[verdict + 1 :]  # sent while the answer is still streaming
    assert kinds.count("verdict") == 1 and kinds[-1] == "done"
    event = events[verdict]
    streamed = "".join(e["text"] for e in events[:verdict] if e["event"] == "answer")
    assert streamed[event["start"] : event["end"]] == (
        "Receipts must be submitted within thirty days of travel [1]."
    )
    assert event["index"] == 0
    assert event["citations"][0]["marker"] == 1
    assert event["citations"][0]["verdict"] == "supported"


class TestQuotedChips:
    def test_a_quote_is_marked_quoted_not_supported(self):
        html = render_answer("> Receipts within thirty days [1]", verdicts={1: "quoted"})
        assert 'class="cite cite-quoted"' in html
        assert "supported" not in html
        assert 'title="Source 1: quoted word for word from this passage"' in html

    def test_unchecked_markers_are_not_called_missing(self):
        html = render_answer("Cut off mid-answer [1]")
        assert 'class="cite cite-none"' in html and "not checked" in html
