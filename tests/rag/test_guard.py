"""RedactingLLM: personal data never reaches the wrapped model; the user reads it restored."""

from rag.guard import RedactingLLM
from rag.llm import FakeLLM, complete
from rag.types import Completion, Delta, Message

QUESTION = "Email jane.doe@example.com or call +44 20 7946 0958 about card 4111 1111 1111 1111."


def test_the_model_sees_placeholders_and_the_user_the_originals():
    inner = FakeLLM(default="I will email [EMAIL_1] today and call [PHONE_1].")
    guarded = RedactingLLM(inner)

    completion = complete(guarded, [Message("user", QUESTION)])

    sent = inner.calls[0][0].content
    for secret in ("jane.doe@example.com", "7946 0958", "4111 1111 1111 1111"):
        assert secret not in sent
    assert "[EMAIL_1]" in sent and "[CARD_1]" in sent
    assert completion.answer == "I will email jane.doe@example.com today and call +44 20 7946 0958."
    kinds = sorted(f["kind"] for f in guarded.redaction.audit())
    assert kinds == ["card", "email", "phone"]
    assert "jane.doe" not in str(guarded.redaction.audit())  # digests, never values


def test_placeholders_split_across_stream_pieces_are_restored():
    answer = "Write to [EMAIL_1] now."
    inner = FakeLLM([Completion(answer=answer, reasoning="", model="m", provider="fake")])
    # FakeLLM streams word by word; force a split inside the placeholder
    pieces = ["Write to [EM", "AIL_1] now."]
    inner.stream = lambda messages, **kw: iter(
        [*(Delta(answer=p) for p in pieces), Completion(answer, "", "m", "fake")]
    )
    guarded = RedactingLLM(inner)

    streamed = [
        p.answer for p in guarded.stream([Message("user", QUESTION)]) if isinstance(p, Delta)
    ]

    assert "".join(streamed) == "Write to jane.doe@example.com now."
    assert all("[EM" not in piece for piece in streamed)


def test_text_without_personal_data_passes_through_unchanged():
    inner = FakeLLM(default="Thirty days [1].")
    completion = complete(RedactingLLM(inner), [Message("user", "When are receipts due [1]?")])
    assert inner.calls[0][0].content == "When are receipts due [1]?"
    assert completion.answer == "Thirty days [1]."
