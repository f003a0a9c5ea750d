"""The answer cache: hits for the same question by the same readers over unchanged documents,
misses otherwise, dropped when a cited document changes; every hit audited and marked."""

import pytest
from django.contrib.auth.models import Group

from assistant import services
from assistant.models import CachedAnswer, Message
from audit.models import AuditRecord
from ingest.services import collection_get_or_create, document_reindex

from ..conftest import make_user

pytestmark = pytest.mark.django_db

RECEIPTS = "How long do I have to hand in my travel receipts?"
GOOD = "Receipts must be submitted within thirty days of travel [1]."


def ask(user, question=RECEIPTS, **kw) -> Message:
    return services.answer_question(user=user, question=question, **kw)


def test_the_same_question_is_served_from_the_cache_and_audited(staff_user, handbook, fake_llm):
    fake_llm.default = GOOD
    first = ask(staff_user)

    again = ask(staff_user, "How long do I have to hand in my travel receipts ?")

    assert len(fake_llm.calls) == 1  # the model was asked once
    assert again.route == "cache" and again.content == first.content
    assert again.citations == first.citations and again.status == Message.Status.ANSWERED
    assert again.route_trace["cache_hit"]["answer_seq"] == first.audit_seq
    record = AuditRecord.objects.get(seq=again.audit_seq)
    assert record.payload["route"] == "cache" and "cache_hit" in record.payload["route_trace"]
    assert CachedAnswer.objects.get().hits == 1


def test_a_different_question_or_reader_misses(staff_user, handbook, fake_llm):
    fake_llm.default = GOOD
    ask(staff_user)
    ask(staff_user, "Which laptops need full disk encryption?")
    hr = collection_get_or_create(slug="hr")
    hr.groups.set([Group.objects.get_or_create(name="hr")[0]])
    other = make_user("hera", "staff", groups=("hr",))  # reads more collections: another key
    ask(other)
    assert len(fake_llm.calls) == 3
    same = make_user("sven", "staff")  # reads exactly what sam reads: the cached answer
    assert ask(same).route == "cache"


def test_ungrounded_answers_and_follow_ups_are_not_cached(staff_user, handbook, fake_llm):
    fake_llm.default = "Receipts are due within sixty days [1]."  # unsupported
    first = ask(staff_user)
    assert not CachedAnswer.objects.exists()
    fake_llm.default = GOOD
    ask(staff_user, "And the receipts?", conversation=first.conversation)  # has history
    assert not CachedAnswer.objects.exists()


def test_reindexing_a_cited_document_drops_the_entry(staff_user, handbook, fake_llm):
    fake_llm.default = GOOD
    ask(staff_user)
    assert CachedAnswer.objects.count() == 1

    document_reindex(document=handbook)

    assert not CachedAnswer.objects.exists()
    ask(staff_user)
    assert len(fake_llm.calls) == 2


def test_the_cache_can_be_switched_off(staff_user, handbook, fake_llm, settings):
    settings.ANSWER_CACHE = False
    fake_llm.default = GOOD
    ask(staff_user)
    ask(staff_user)
    assert len(fake_llm.calls) == 2 and not CachedAnswer.objects.exists()
