"""Stop, Regenerate, edit-and-resend and one answer at a time, in the answering service: real
retrieval over an ingested document, the models faked at the network edge, the in-flight
claim and the Stop flag in the real Redis cache."""

import pytest

from assistant import inflight, services
from assistant.models import Message
from audit.models import AuditRecord
from tests.fakes.deepseek import Reply

pytestmark = pytest.mark.django_db

RECEIPTS = "How long do I have to hand in my travel receipts?"
LONG_ANSWER = " ".join(["Receipts are due within thirty days of travel [1]."] * 40)


def events_until(stream, kind: str) -> list[dict]:
    seen = []
    for event in stream:
        seen.append(event)
        if event["event"] == kind:
            return seen
    raise AssertionError(f"no {kind} event in {[e['event'] for e in seen]}")


def finish(stream) -> Message:
    done = [e for e in stream if e["event"] == "done"]
    return Message.objects.get(pk=done[-1]["message_id"])


def answer_record(message: Message) -> AuditRecord:
    return AuditRecord.objects.get(kind="answer", subject=f"message:{message.pk}")


class TestStop:
    def test_stop_ends_the_model_stream_and_keeps_what_was_written(
        self, staff_user, handbook, deepseek
    ):
        deepseek.default = Reply(answer=LONG_ANSWER, delay=0.05)  # about 20 s if not stopped
        stream = services.answer_stream(user=staff_user, question=RECEIPTS)
        start = next(stream)
        events_until(stream, "verdict")  # a first cited sentence is written

        conversation = Message.objects.get(pk=start["question_id"]).conversation
        assert services.answer_stop(user=staff_user, conversation=conversation) is True
        message = finish(stream)

        assert message.status == Message.Status.STOPPED
        assert message.content and LONG_ANSWER.startswith(message.content)
        assert len(message.content) < len(LONG_ANSWER) / 2
        # what was written is verified as far as it got
        assert message.citations and message.citations[0]["verdict"] == "supported"
        (generation,) = message.route_trace["generations"]
        assert generation["stopped"] is True
        record = answer_record(message)
        assert record.payload["status"] == "stopped"
        # the claim is gone: the conversation takes the next question
        assert not inflight.answering(conversation.pk)

    def test_stop_before_the_model_is_asked(self, staff_user, handbook, fake_llm):
        fake_llm.default = "Within thirty days [1]."
        stream = services.answer_stream(user=staff_user, question=RECEIPTS)
        start = next(stream)
        events_until(stream, "sources")
        conversation = Message.objects.get(pk=start["question_id"]).conversation
        services.answer_stop(user=staff_user, conversation=conversation)

        message = finish(stream)

        assert message.status == Message.Status.STOPPED
        assert message.content == services.STOPPED_BEFORE_TEXT
        assert fake_llm.calls == []  # the model was never asked
        assert answer_record(message).payload["status"] == "stopped"

    def test_nothing_to_stop(self, staff_user, handbook, fake_llm):
        fake_llm.default = "Within thirty days [1]."
        message = services.answer_question(user=staff_user, question=RECEIPTS)

        assert services.answer_stop(user=staff_user, conversation=message.conversation) is False
        # a late Stop does not stop the next answer
        again = services.answer_question(
            user=staff_user, question="And flights?", conversation=message.conversation
        )
        assert again.status != Message.Status.STOPPED

    def test_only_the_owner_may_stop(self, staff_user, admin_user, handbook, fake_llm):
        fake_llm.default = "Within thirty days [1]."
        message = services.answer_question(user=staff_user, question=RECEIPTS)

        with pytest.raises(services.QuestionError, match="no such conversation"):
            services.answer_stop(user=admin_user, conversation=message.conversation)


class TestOneAtATime:
    def test_a_second_question_waits_for_the_first(self, staff_user, handbook, fake_llm):
        fake_llm.default = "Within thirty days [1]."
        first = services.answer_question(user=staff_user, question=RECEIPTS)
        conversation = first.conversation
        writing = services.answer_stream(
            user=staff_user, question="And flights?", conversation=conversation
        )
        next(writing)  # the answer has started: it holds the conversation
        before = conversation.messages.count()

        with pytest.raises(services.ConversationBusy):
            next(
                services.answer_stream(
                    user=staff_user, question="And laptops?", conversation=conversation
                )
            )
        assert conversation.messages.count() == before  # the refused question left no turn

        finish(writing)
        after = services.answer_question(
            user=staff_user, question="And laptops?", conversation=conversation
        )
        assert after.status == Message.Status.ANSWERED

    def test_an_abandoned_stream_releases_the_conversation(self, staff_user, handbook, fake_llm):
        fake_llm.default = "Within thirty days [1]."
        stream = services.answer_stream(user=staff_user, question=RECEIPTS)
        start = next(stream)
        stream.close()  # the reader went away before the answer was written

        assert not inflight.answering(start["conversation_id"])

    def test_the_claim_expires_when_its_process_dies(self, staff_user, settings, fake_llm):
        settings.ANSWER_LOCK_SECONDS = 1
        inflight.InFlight.claim(424242)  # never released, as by a killed process
        with pytest.raises(inflight.Busy):
            inflight.InFlight.claim(424242)
        import time

        time.sleep(1.2)
        inflight.InFlight.claim(424242).release()


class TestRegenerate:
    def test_a_new_answer_replaces_the_last_one(self, staff_user, handbook, fake_llm):
        fake_llm.queue("Thirty days [1].", "Receipts are due within thirty days of travel [1].")
        first = services.answer_question(user=staff_user, question=RECEIPTS)
        conversation = first.conversation

        second = services.answer_question(
            user=staff_user, conversation=conversation, regenerate=True
        )

        first.refresh_from_db()
        assert first.superseded and not second.superseded
        assert second.replaces_id == first.pk
        assert second.question == RECEIPTS and second.content.startswith("Receipts are due")
        # the question is asked again, not repeated in the conversation
        assert conversation.messages.filter(role="user").count() == 1
        # the model is not told of the answer it is replacing
        assert [m.content for m in fake_llm.calls[1] if m.role == "assistant"] == []
        # both answers stay in the audit log
        assert answer_record(first).payload["status"] == "answered"
        assert answer_record(second).payload["replaces"] == first.pk

    def test_regenerate_is_never_served_from_the_cache(self, staff_user, handbook, fake_llm):
        fake_llm.default = "Receipts are due within thirty days of travel [1]."
        first = services.answer_question(user=staff_user, question=RECEIPTS)
        cached = services.answer_question(user=staff_user, question=RECEIPTS)
        assert cached.route == "cache"  # the same question, asked afresh, is

        again = services.answer_question(
            user=staff_user, conversation=first.conversation, regenerate=True
        )

        assert again.route != "cache" and len(fake_llm.calls) == 2

    def test_regenerate_needs_a_question_to_answer(self, staff_user, fake_llm):
        with pytest.raises(services.QuestionError, match="need the conversation"):
            services.answer_question(user=staff_user, regenerate=True)


class TestEdit:
    def test_the_edited_question_replaces_the_last_one(self, staff_user, handbook, fake_llm):
        fake_llm.queue("Thirty days [1].", "Full disk encryption [1].", "A screen lock [1].")
        first = services.answer_question(user=staff_user, question=RECEIPTS)
        conversation = first.conversation
        asked = services.answer_question(
            user=staff_user, question="What class for short flights?", conversation=conversation
        )

        edited = services.answer_question(
            user=staff_user,
            question="How must laptops be protected?",
            conversation=conversation,
            edit=True,
        )

        visible = list(conversation.messages.filter(superseded=False).order_by("pk"))
        assert [m.content for m in visible if m.role == "user"] == [
            RECEIPTS,
            "How must laptops be protected?",
        ]
        assert visible[-1] == edited
        old_question = conversation.messages.get(content="What class for short flights?")
        asked.refresh_from_db()
        assert old_question.superseded and asked.superseded
        assert visible[-2].replaces_id == old_question.pk
        # the model hears the first exchange, not the question that was edited away
        told = [m.content for m in fake_llm.calls[2]]
        assert not any("short flights" in text for text in told)
        assert any("Thirty days" in text for text in told)

    def test_edit_needs_a_question(self, staff_user, handbook, fake_llm):
        fake_llm.default = "Thirty days [1]."
        first = services.answer_question(user=staff_user, question=RECEIPTS)

        with pytest.raises(services.QuestionError, match="empty"):
            services.answer_question(
                user=staff_user, question=" ", conversation=first.conversation, edit=True
            )
