"""answer_question end to end: real retrieval over real ingested documents, real verification,
the model faked only where it is a network service (FakeLLM, the fake DeepSeek server)."""

import dataclasses
import io
import json

import pytest
from django.core.management import CommandError, call_command

from assistant import services
from assistant.models import Conversation, Message
from ingest.services import collection_get_or_create
from rag.llm import LLMError
from rag.prompting import ABSTAIN_TEXT
from rag.types import Completion, Usage
from tests.conftest import HANDBOOK
from tests.docs import make_pdf
from tests.fakes.deepseek import Disconnect, ErrorResponse, Reply
from tests.ingest.helpers import ingest

pytestmark = pytest.mark.django_db

RECEIPTS = "How long do I have to hand in my travel receipts?"


def ask(user, question=RECEIPTS, **kwargs) -> Message:
    return services.answer_question(user=user, question=question, **kwargs)


def source_number(message: Message, needle: str) -> int:
    return next(s["n"] for s in message.sources if needle in s["text"])


class TestGroundedAnswer:
    def test_supported_citation_at_its_physical_page(self, staff_user, handbook, fake_llm):
        fake_llm.default = "Receipts must be submitted within thirty days of travel [1]."

        message = ask(staff_user)

        assert message.status == Message.Status.ANSWERED
        assert message.sources[0]["page"] == 2 and "thirty days" in message.sources[0]["text"]
        (citation,) = message.citations
        assert citation["verdict"] == "supported"
        assert (citation["marker"], citation["page"], citation["document"]) == (
            1,
            2,
            "handbook.pdf",
        )
        source_text = message.sources[0]["text"]
        assert source_text[citation["quote_start"] : citation["quote_end"]] == citation["quote"]
        assert "thirty days" in citation["quote"]

    def test_the_record_explains_the_answer(self, staff_user, handbook, fake_llm):
        fake_llm.default = "Within thirty days of travel [1]."

        message = ask(staff_user)

        (sent,) = fake_llm.calls
        assert [m["content"] for m in message.prompt] == [m.content for m in sent]
        assert "thirty days" in message.prompt[-1]["content"]  # the sources were in the prompt
        assert message.template_version == "rag-answer/1"
        assert (message.llm_id, message.provider, message.route) == ("fake", "fake", "fake")
        assert message.standalone_query == RECEIPTS
        first = message.sources[0]
        assert first["dense_score"] > 0.25 and first["dense_rank"] >= 1
        assert {"retrieve", "llm", "verify", "total", "first_token"} <= set(message.timings)
        # no reasoning from the model: the panel shows the pipeline's own trace
        assert message.reasoning_source == "pipeline"
        assert "Standalone query" in message.reasoning and "handbook.pdf p.2" in message.reasoning

    def test_model_reasoning_is_kept_and_usage_recorded(self, staff_user, handbook, fake_llm):
        fake_llm.queue(
            Completion(
                answer="Thirty days [1].",
                reasoning="The travel policy source mentions receipts.",
                model="fake-model-2025-01",
                provider="fake",
                usage=Usage(prompt_tokens=300, completion_tokens=12, reasoning_tokens=8),
                finish_reason="stop",
            )
        )

        message = ask(staff_user)

        assert message.reasoning == "The travel policy source mentions receipts."
        assert message.reasoning_source == "model"
        assert message.model == "fake-model-2025-01"
        assert message.usage["reasoning_tokens"] == 8 and message.usage["total_tokens"] == 312


class TestUngroundedAnswers:
    def test_a_wrong_citation_is_unsupported_and_flagged(self, staff_user, handbook, fake_llm):
        fake_llm.default = "Receipts must be submitted within sixty days [1]."

        message = ask(staff_user)

        assert message.status == Message.Status.ANSWERED  # an API model's answer, flagged
        assert [c["verdict"] for c in message.citations] == ["unsupported"]
        assert message.has_unsupported

    def test_out_of_range_markers_are_dropped_and_flagged(self, staff_user, handbook, fake_llm):
        fake_llm.default = "Receipts are due within thirty days [1][9]."

        message = ask(staff_user)

        assert message.invalid_markers == [9]
        assert [c["marker"] for c in message.citations] == [1]
        assert message.has_unsupported

    def test_local_model_unverified_answer_becomes_an_extractive_answer(
        self, staff_user, handbook, fake_llm
    ):
        fake_llm.provider = "local"  # treated as the offline model: the stricter policy applies
        fake_llm.default = "You have two weeks to send receipts to the office."

        message = ask(staff_user)

        assert message.status == Message.Status.EXTRACTIVE
        assert message.content.startswith("**Quoted from your documents — not verified")
        assert "supported" not in message.content.lower()
        assert message.model_answer == "You have two weeks to send receipts to the office."
        assert "two weeks" not in message.content
        # the answering sentence, not the page: no heading, no neighbour about flights
        (citation,) = message.citations
        assert citation["verdict"] == "quoted" and not message.has_unsupported
        assert citation["quote"] == "Receipts must be submitted within thirty days of travel."
        source = next(s for s in message.sources if s["n"] == citation["marker"])
        assert source["text"][citation["quote_start"] : citation["quote_end"]] == citation["quote"]
        assert f"> {citation['quote']} [{citation['marker']}]" in message.content
        assert "handbook.pdf, page 2" in message.content
        assert "Travel policy" not in message.content and "Economy" not in message.content
        assert "The model wrote" in message.reasoning

    def test_nothing_is_quoted_when_no_passage_matches_the_question(
        self, staff_user, handbook, fake_llm
    ):
        # The handbook's pages pass the relevance floor for this question, but none answers
        # it: quoting them as an "extractive answer" would mislead, so nothing is shown.
        fake_llm.provider = "local"
        fake_llm.default = "Parental leave is sixteen weeks [1]."
        question = "How many weeks of parental leave does the company policy give?"

        message = ask(staff_user, question)

        assert message.sources, "the passages found are still listed"
        assert message.status == Message.Status.WITHHELD
        assert message.content == services.WITHHELD_TEXT
        assert message.content.startswith("Your documents don't seem to answer this")
        assert "model" not in message.content  # the documents lack it, the model is not blamed
        assert message.model_answer == "Parental leave is sixteen weeks [1]."
        assert message.citations == []
        for source in message.sources:  # what the UI lists as clickable sources
            assert source["document"] == "handbook.pdf" and source["page"] in (1, 2, 3)
            assert "heading_path" in source and source["below_floor"] is False

    def test_the_support_bar_decides_what_is_quoted(self, staff_user, handbook, fake_llm, settings):
        fake_llm.provider = "local"
        fake_llm.default = "You have two weeks to send receipts to the office."
        settings.EXTRACTIVE_MIN_SUPPORT = 1.01  # above any score: nothing may be quoted

        assert ask(staff_user).status == Message.Status.WITHHELD

    def test_abstention_is_recorded(self, staff_user, handbook, fake_llm):
        fake_llm.default = ABSTAIN_TEXT

        message = ask(staff_user, "Which laptops need full disk encryption?")

        assert message.status == Message.Status.ABSTAINED


class TestNoEvidenceAndFailures:
    def test_nothing_relevant_means_no_model_call(self, staff_user, handbook, fake_llm):
        message = ask(staff_user, "Quelle est la recette de la tarte tatin aux pommes?")

        assert message.status == Message.Status.NO_SOURCES
        assert fake_llm.calls == []
        assert message.content.startswith("Your documents don't seem to cover this")
        assert "I searched for" in message.content and "tarte tatin" in message.content
        # the closest passages are listed all the same, marked as below the relevance floor
        assert 1 <= len(message.sources) <= services.NO_SOURCES_LISTED
        assert all(s["below_floor"] for s in message.sources)
        assert all(s["dense_score"] < 0.25 for s in message.sources)
        assert {s["document"] for s in message.sources} == {"handbook.pdf"}
        assert message.citations == [] and message.prompt == []

    def test_an_empty_collection_says_so(self, staff_user, collection, fake_llm):
        message = ask(staff_user)
        assert message.status == Message.Status.NO_SOURCES
        assert "No document is indexed" in message.content

    def test_collection_filter_is_applied(self, staff_user, handbook, fake_llm):
        collection_get_or_create(slug="other")  # readable by staff, holds nothing
        message = ask(staff_user, collections=["other"])
        assert message.status == Message.Status.NO_SOURCES
        assert message.collections == ["other"]

    def test_a_collection_one_may_not_read_is_refused_like_an_unknown_one(
        self, staff_user, handbook, fake_llm
    ):
        collection_get_or_create(slug="hr").groups.clear()  # restricted to nobody but admins
        for slug in ("hr", "no-such-collection"):
            with pytest.raises(services.QuestionError, match=f"unknown collection: {slug}"):
                ask(staff_user, collections=[slug])

    def test_model_error_is_retried_then_recorded_with_the_reason(
        self, staff_user, handbook, fake_llm, settings
    ):
        limited = LLMError("rate_limit", "DeepSeek is rate limiting us (429)", status=429)
        fake_llm.queue(*[limited] * settings.LLM_RETRY_ATTEMPTS)

        message = ask(staff_user)

        assert message.status == Message.Status.ERROR
        assert "rate" in message.error.lower()
        (generation,) = message.route_trace["generations"]
        assert [a["outcome"] for a in generation["attempts"]] == ["rate_limit"] * 3
        assert len(fake_llm.calls) == 3
        question = message.conversation.messages.get(role="user")
        assert question.content == RECEIPTS  # what the user asked is never lost

    def test_a_rate_limit_then_success_is_answered(self, staff_user, handbook, fake_llm):
        fake_llm.queue(
            LLMError("rate_limit", "slow down", status=429, retry_after=0.01),
            "Receipts must be submitted within thirty days of travel [1].",
        )

        message = ask(staff_user)

        assert message.status == Message.Status.ANSWERED
        (generation,) = message.route_trace["generations"]
        assert [a["outcome"] for a in generation["attempts"]] == ["rate_limit", "ok"]
        assert generation["answered_by"] == "fake"

    @pytest.mark.parametrize(
        ("question", "reason"),
        [("   ", "empty"), ("x" * 4001, "limit is 4000")],
    )
    def test_invalid_questions_are_refused_before_anything_is_stored(
        self, staff_user, fake_llm, question, reason
    ):
        with pytest.raises(services.QuestionError, match=reason):
            ask(staff_user, question)
        assert not Conversation.objects.exists()

    def test_unknown_model_is_refused(self, staff_user, fake_llm):
        with pytest.raises(services.QuestionError, match="unknown model 'gpt-9'"):
            ask(staff_user, model_id="gpt-9")

    def test_someone_elses_conversation_is_refused(self, staff_user, admin_user, fake_llm):
        theirs = Conversation.objects.create(user=admin_user, title="theirs")
        with pytest.raises(services.QuestionError, match="no such conversation"):
            ask(staff_user, conversation=theirs)


def test_follow_up_uses_the_history(staff_user, handbook, fake_llm):
    fake_llm.queue("Economy class is required for flights shorter than six hours [1].")
    first = ask(staff_user, "Which class must I fly on short flights?")
    fake_llm.queue("Within thirty days of travel [1].")

    second = ask(staff_user, "And what about the receipts?", conversation=first.conversation)

    assert second.conversation_id == first.conversation_id
    assert "Which class must I fly" in second.standalone_query
    sent = fake_llm.calls[1]
    assert [m.role for m in sent][1:3] == ["user", "assistant"]  # the earlier turn, no reasoning
    assert "Economy class" in sent[2].content


class TestDeepSeekProtocol:
    def test_reasoning_streams_before_the_answer(self, staff_user, handbook, deepseek):
        deepseek.enqueue(
            Reply(
                reasoning="Source 1 is the travel policy.",
                answer="Receipts must be submitted within thirty days of travel [1].",
            )
        )

        events = list(services.answer_stream(user=staff_user, question=RECEIPTS))

        kinds = [e["event"] for e in events]
        assert kinds[:2] == ["start", "sources"] and kinds[-1] == "done"
        assert kinds.index("reasoning") < kinds.index("answer")
        message = Message.objects.get(pk=events[-1]["message_id"])
        assert message.reasoning == "Source 1 is the travel policy."
        assert message.reasoning_source == "model" and message.provider == "deepseek"
        assert message.usage["reasoning_tokens"] > 0
        (request,) = deepseek.requests
        assert request["model"] == "deepseek-reasoner" and request["stream"] is True
        assert all(set(m) == {"role", "content"} for m in request["messages"])

    def test_a_broken_stream_is_incomplete_never_complete(self, staff_user, handbook, deepseek):
        deepseek.enqueue(Disconnect(answer="Receipts must be submitted within"))

        message = ask(staff_user)

        assert message.status == Message.Status.INCOMPLETE
        assert message.content.startswith("Receipts must be submitted")
        assert message.error

    def test_an_auth_error_says_what_to_fix(self, staff_user, handbook, deepseek):
        deepseek.enqueue(ErrorResponse(401))

        message = ask(staff_user)

        assert message.status == Message.Status.ERROR
        assert "DEEPSEEK_API_KEY" in message.error


class TestAskCommand:
    def test_json_contract(self, handbook, fake_llm):
        fake_llm.default = "Receipts must be submitted within thirty days of travel [1]."
        out = io.StringIO()

        call_command("ask", RECEIPTS, "--json", stdout=out, stderr=io.StringIO())

        result = json.loads(out.getvalue())
        assert set(result) >= {
            "answer",
            "citations",
            "reasoning",
            "model",
            "route",
            "audit_id",
            "timings_ms",
        }
        assert set(result["timings_ms"]) == {"retrieve", "llm", "total"}
        (citation,) = result["citations"]
        assert set(citation) == {
            "marker",
            "chunk_id",
            "document_id",
            "document",
            "page",
            "quote",
            "verdict",
        }
        assert (citation["page"], citation["verdict"]) == (2, "supported")
        answer = Message.objects.get(audit_seq=result["audit_id"])
        assert answer.conversation.user.username == "cli"

    def test_unknown_user_is_a_usage_error(self, fake_llm):
        with pytest.raises(CommandError) as error:
            call_command("ask", "q", "--user", "nobody", stdout=io.StringIO())
        assert error.value.returncode == 2

    def test_model_error_exits_1_with_the_json_still_printed(self, handbook, fake_llm):
        fake_llm.queue(*[LLMError("server", "DeepSeek is down (503)", status=503)] * 3)
        out = io.StringIO()
        with pytest.raises(CommandError) as error:
            call_command("ask", RECEIPTS, "--json", stdout=out, stderr=io.StringIO())
        assert error.value.returncode == 1
        assert "DeepSeek is down (503)" in json.loads(out.getvalue())["error"]


def test_a_model_version_other_than_the_pinned_one_is_audited_once(staff_user, handbook, settings):
    from assistant import llms
    from audit.models import AuditRecord

    settings.LLMS = [
        {
            "BACKEND": "rag.llm.FakeLLM",
            "OPTIONS": {
                "id": "pinned",
                "model": "fake-model-2026-02",
                "default": "Thirty days [1].",
            },
            "PINNED_VERSION": "fake-model-2025-12",
            "COST_IN_PER_1K": 1.0,
            "COST_OUT_PER_1K": 2.0,
        }
    ]
    try:
        first = ask(staff_user)
        ask(staff_user)
    finally:
        llms.reset_models()

    (change,) = AuditRecord.objects.filter(kind="model.version_change")
    assert change.payload == {
        "model": "pinned",
        "pinned": "fake-model-2025-12",
        "reported": "fake-model-2026-02",
    }
    usage = first.usage
    expected = usage["prompt_tokens"] / 1000 * 1.0 + usage["completion_tokens"] / 1000 * 2.0
    assert usage["cost"] == pytest.approx(expected) and usage["cost"] > 0


# ---------------------------------------------------------------------------------------------
# Answers from the documents without a model worth showing: quotes, navigation, follow-ups
# ---------------------------------------------------------------------------------------------

CONTENTS_PAGE = (
    "Contents\nTravel policy: receipts, flights and travel costs . . . . . 2\n"
    "Security policy . . . . . . 3"
)


@pytest.fixture
def marked_navigation(monkeypatch):
    """The real retriever over the real store, with the passages whose text passes ``test``
    returned as navigation (contents, index): what the store returns for a contents page."""
    from core import components

    def mark(test):
        real = components.get_retriever

        class Marking:
            def search(self, query, **kwargs):
                found = real().search(query, **kwargs)
                return [dataclasses.replace(s, kind="navigation") if test(s) else s for s in found]

        monkeypatch.setattr(services, "get_retriever", Marking)

    return mark


class TestNavigationPassages:
    def test_never_given_to_the_model_nor_quoted_but_listed(
        self, staff_user, collection, fake_llm, marked_navigation
    ):
        ingest(make_pdf([CONTENTS_PAGE, *HANDBOOK]), "handbook.pdf", collection)
        marked_navigation(lambda s: s.text.startswith("Contents"))
        fake_llm.provider = "local"
        fake_llm.default = "You have two weeks to send receipts to the office."

        message = ask(staff_user, "Where is the travel policy on receipts?")

        (sent,) = fake_llm.calls
        prompt = "\n".join(m.content for m in sent)
        assert ". . . . ." not in prompt and "Contents" not in prompt
        listed = [s for s in message.sources if s["kind"] == "navigation"]
        assert listed and listed[0]["n"] == len(message.sources)  # listed, after the content
        assert message.parameters["sources"] == len(message.sources) - len(listed)
        assert all(c["chunk_id"] != listed[0]["chunk_id"] for c in message.citations)

    def test_only_navigation_found_is_withheld_without_a_model(
        self, staff_user, handbook, fake_llm, marked_navigation
    ):
        marked_navigation(lambda s: True)

        message = ask(staff_user)

        assert message.status == Message.Status.WITHHELD
        assert message.content == services.NAVIGATION_ONLY_TEXT
        assert fake_llm.calls == []
        assert message.sources and all(s["kind"] == "navigation" for s in message.sources)


READING = (
    "Reading CSV files\nTo read a CSV file into a data frame, use the read.csv function.\n"
    "It takes the name of the file as its first argument."
)
WRITING = (
    "Writing CSV files\nA data frame is written back out to a CSV file with write.csv.\n"
    "Give it the data frame and the name of the new file."
)
OTHER = "Plotting\nThe plot function draws a scatter plot of two numeric vectors."


def test_a_follow_up_finds_and_quotes_its_subject_without_a_capable_model(
    staff_user, collection, fake_llm
):
    ingest(make_pdf([READING, WRITING, OTHER]), "data-guide.pdf", collection)
    fake_llm.provider = "local"  # an answer it cannot verify: sentences are quoted instead
    fake_llm.default = "It is easy."

    first = ask(staff_user, "How do I read a CSV file?")
    second = ask(staff_user, "how do I write it back out?", conversation=first.conversation)

    assert first.status == Message.Status.EXTRACTIVE
    assert "read.csv" in first.citations[0]["quote"]
    assert "CSV" in second.standalone_query and "read" not in second.standalone_query.lower()
    assert "write.csv" in second.sources[0]["text"]  # the writing page ranks first
    assert second.status == Message.Status.EXTRACTIVE, second.content
    assert "write.csv" in second.citations[0]["quote"]
    assert all(c["verdict"] == "quoted" for c in second.citations)


def test_a_self_contained_question_after_another_is_left_alone(staff_user, handbook, fake_llm):
    first = ask(staff_user, "Which class must I fly on short flights?")
    second = ask(
        staff_user, "Which laptops need full disk encryption?", conversation=first.conversation
    )
    assert second.standalone_query == "Which laptops need full disk encryption?"


def test_no_sources_event_lists_the_closest_passages_below_the_floor(
    staff_user, handbook, fake_llm
):
    events = list(
        services.answer_stream(user=staff_user, question="Quelle est la recette de la tarte?")
    )

    (listed,) = [e for e in events if e["event"] == "sources"]
    assert listed["sources"] and all(s["below_floor"] for s in listed["sources"])
    assert all(s["document"] == "handbook.pdf" and s["page"] for s in listed["sources"])
    done = events[-1]["message"]
    assert done["status"] == "no_sources" and done["sources"] == listed["sources"]


def test_ask_json_marks_quoted_sentences(handbook, fake_llm):
    fake_llm.provider = "local"
    fake_llm.default = "You have two weeks to send receipts to the office."
    out = io.StringIO()

    call_command("ask", RECEIPTS, "--json", stdout=out, stderr=io.StringIO())

    result = json.loads(out.getvalue())
    assert result["status"] == "extractive"
    (citation,) = result["citations"]
    assert citation["verdict"] == "quoted" and citation["page"] == 2
    assert citation["quote"] == "Receipts must be submitted within thirty days of travel."
