"""The auditor's review UI: who may see it, what each filter keeps, the export of the filtered
set, and the record page that puts the answer beside its evidence.

Runs on PostgreSQL by default; the filters use only lookups SQLite has too, and this file passes
unchanged with DATABASE_URL=sqlite:///… (the browser test runs on SQLite as well)."""

import csv
import io
import itertools
import json
from contextlib import contextmanager
from datetime import timedelta
from unittest import mock

import pytest
from bs4 import BeautifulSoup
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.utils import timezone

from accounts import roles
from audit.models import AuditRecord
from audit.services import audit_append, audit_redact
from audit.views import PAGE_SIZE, _highlight

from ..conftest import make_user

pytestmark = pytest.mark.django_db

TRAVEL = (
    "Travel policy\nEconomy class is required for flights shorter than six hours.\n"
    "Receipts must be submitted within thirty days of travel."
)
SECURITY = (
    "Security policy\nLaptops must use full disk encryption and a screen lock after five minutes."
)
QUOTE = "Receipts must be submitted within thirty days of travel."
_ids = itertools.count(1000)


@contextmanager
def at(moment):
    """Records appended inside are stamped `moment` (the log takes the time itself)."""
    with mock.patch.object(timezone, "now", return_value=moment):
        yield


def record_answer(
    actor,
    *,
    question="How long do I have to hand in my travel receipts?",
    answer="Receipts must be submitted within thirty days of travel [1].",
    model="deepseek-reasoner",
    llm_id="deepseek",
    route="deepseek",
    collections=("general",),
    status="answered",
    unsupported=False,
    sources=(TRAVEL, SECURITY),
    reasoning="Source 1 is the travel policy; it names the deadline.",
) -> AuditRecord:
    """An answer record in exactly the shape assistant.services writes."""
    message_id = next(_ids)
    start = sources[0].find(QUOTE)
    citations = [
        {
            "marker": 1, "chunk_id": "c1", "document_id": 7, "document": "handbook.pdf",
            "page": 2, "verdict": "supported", "score": 0.91,
            "quote_start": start, "quote_end": start + len(QUOTE) if start >= 0 else 0,
        }
    ]  # fmt: skip
    sentences = ["Receipts must be submitted within thirty days of travel [1]."]
    if unsupported:
        answer += " Laptops may be shared with family members [1]."
        citations.append({**citations[0], "verdict": "unsupported", "score": 0.12,
                          "quote_start": 0, "quote_end": 0})  # fmt: skip
        sentences.append("Laptops may be shared with family members [1].")
    slugs = sorted(collections)
    retrieved = [
        {
            "n": n, "chunk_id": f"c{n}", "document_id": 7, "document": "handbook.pdf",
            "collection": slugs[(n - 1) % len(slugs)], "page": n + 1, "score": 0.032 / n,
            "dense_score": 0.71 / n, "lexical_score": 4.2 / n, "dense_rank": n, "lexical_rank": n,
        }
        for n in range(1, len(sources) + 1)
    ]  # fmt: skip
    prompt = [
        {"role": "system", "content": "Answer only from the sources."},
        {"role": "user", "content": f"Sources: …\n\nQuestion: {question}"},
    ]
    return audit_append(
        kind="answer",
        actor=actor,
        subject=f"message:{message_id}",
        payload={
            "user": actor.get_username(),
            "conversation_id": message_id - 1,
            "message_id": message_id,
            "collections": None,
            "retrieved_collections": slugs,
            "status": status,
            "error": "the model timed out" if status == "error" else None,
            "route": route,
            "route_reason": f"default model: {route}",
            "llm_id": llm_id,
            "provider": "deepseek",
            "model": model,
            "parameters": {"max_tokens": 1024, "temperature": None, "top_k": 8},
            "template_version": "rag-answer/1",
            "usage": {
                "prompt_tokens": 310,
                "completion_tokens": 24,
                "reasoning_tokens": 11,
                "total_tokens": 334,
                "finish_reason": "stop",
                "cost": 0.00042,
            },
            "timings_ms": {
                "retrieve": 41.0,
                "first_token": 380.5,
                "llm": 912.0,
                "verify": 55.1,
                "total": 1012.9,
            },
            "retrieved": retrieved,
            "citations": citations,
            "invalid_markers": [],
            "has_unsupported": unsupported,
            "abstained": status == "abstained",
            "reasoning_source": "model",
        },
        content={
            "question": question,
            "standalone_query": question,
            "prompt": prompt,
            "reasoning": reasoning,
            "answer": answer,
            "model_answer": answer,
            "source_texts": {str(n): text for n, text in enumerate(sources, 1)},
            "citation_sentences": sentences,
            "uncited_sentences": [],
        },
    )


def auditor_client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def soup(response) -> BeautifulSoup:
    assert response.status_code == 200, response.content[:500]
    return BeautifulSoup(response.content.decode(), "html.parser")


def listed(client, **params) -> list[int]:
    """The seqs the list shows (first page), newest first."""
    page = soup(client.get("/audit/", params))
    return [int(td.get_text(strip=True)) for td in page.select("tr.audit-row td.num")]


# --- who may look ------------------------------------------------------------------------------


@pytest.fixture
def one_record(staff_user):
    return record_answer(staff_user)


def urls(seq):
    return ["/audit/", f"/audit/{seq}", "/audit/export?format=jsonl", "/audit/export?format=csv"]


def test_anonymous_is_sent_to_login(one_record):
    for url in urls(one_record.seq):
        response = Client().get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith("/login/?next=/audit/"), url


@pytest.mark.parametrize("who", ["staff", "admin", "superuser", "no role"])
def test_only_auditors_get_in(who, one_record, staff_user, admin_user):
    users = {
        "staff": lambda: staff_user,
        "admin": lambda: admin_user,
        # superusers count as admins, never as auditors
        "superuser": lambda: get_user_model().objects.create_superuser("root", password="pw"),
        "no role": lambda: get_user_model().objects.create_user("nobody", password="pw"),
    }
    client = auditor_client(users[who]())
    for url in urls(one_record.seq):
        response = client.get(url)
        assert response.status_code == 403, (who, url)
        assert b"reviewing the audit log" in response.content


def test_auditors_get_in(one_record, auditor_user):
    client = auditor_client(auditor_user)
    for url in urls(one_record.seq):
        assert client.get(url).status_code == 200, url


def test_an_auditor_who_is_also_staff_gets_in(one_record):
    client = auditor_client(make_user("both", roles.STAFF, roles.AUDITOR))
    assert client.get("/audit/").status_code == 200


def test_nothing_here_accepts_a_write(one_record, auditor_user):
    client = auditor_client(auditor_user)
    count = AuditRecord.objects.count()
    for url in urls(one_record.seq):
        for method in (client.post, client.put, client.delete):
            assert method(url).status_code == 405, (method, url)
    assert AuditRecord.objects.count() == count


def test_unknown_records_are_404(one_record, auditor_user):
    client = auditor_client(auditor_user)
    assert client.get(f"/audit/{one_record.seq + 1000}").status_code == 404
    assert client.get("/audit/0").status_code == 404
    assert client.get("/audit/nine").status_code == 404


# --- filters -----------------------------------------------------------------------------------


@pytest.fixture
def log(staff_user, admin_user):
    """A small log: answers from two users through three models, plus other kinds."""
    tom = make_user("tom", roles.STAFF)
    old = timezone.now() - timedelta(days=10)
    with at(old):
        r_old = record_answer(tom, question="An old question about expenses", route="fake")
    records = {
        "old": r_old,
        "sam": record_answer(staff_user, collections=("general",)),
        "tom": record_answer(
            tom,
            question="Parental leave in Zürich: how long?",
            answer='HR said "yes, twelve weeks" [1].',
            model="fake-model-2025",
            llm_id="fake",
            route="fake",
            collections=("hr",),
            unsupported=True,
        ),
        "local": record_answer(
            staff_user,
            question="Which laptops need encryption?",
            answer="The documents do not say.",
            model="smollm2",
            llm_id="local",
            route="local",
            collections=("general", "hr-archive"),
            status="abstained",
        ),
        "upload": audit_append(
            kind="document.upload",
            actor=admin_user,
            subject="document:7",
            payload={"document_id": 7, "name": "handbook.pdf", "collection": "general"},
        ),
    }
    records["feedback"] = audit_append(
        kind="feedback",
        actor=staff_user,
        subject=records["sam"].subject,
        payload={"message_id": records["sam"].payload["message_id"], "rating": "down"},
        content={"comment": "Zürich office says otherwise"},
    )
    return records


def seqs(log, *names):
    return sorted((log[name].seq for name in names), reverse=True)


ANSWERS = ("old", "sam", "tom", "local")


@pytest.mark.parametrize(
    "params, expected",
    [
        ({}, ANSWERS),  # the default: answers only
        ({"kind": "answer"}, ANSWERS),
        ({"kind": "document.upload"}, ("upload",)),
        ({"kind": "feedback"}, ("feedback",)),
        ({"user": "tom"}, ("old", "tom")),
        ({"user": "to"}, ()),  # a user is named exactly
        ({"model": "fake-model-2025"}, ("tom",)),
        ({"model": "local"}, ("local",)),  # the configured id works too
        ({"model": "deepseek-reasoner"}, ("old", "sam")),
        ({"route": "fake"}, ("old", "tom")),
        ({"collection": "hr"}, ("tom",)),  # not "hr-archive"
        ({"collection": "hr-archive"}, ("local",)),
        ({"collection": "general"}, ("old", "sam", "local")),
        ({"unsupported": "1"}, ("tom",)),
        ({"abstained": "1"}, ("local",)),
        ({"q": "zürich"}, ("tom",)),  # non-ASCII, any case; the comment is not an answer
        ({"q": '"yes, twelve'}, ("tom",)),  # quotes as written, not as JSON escapes them
        ({"q": "ENCRYPTION"}, ("local",)),
        ({"q": "thirty days"}, ("old", "sam")),  # in the answers
        ({"q": "nothing like this"}, ()),
        ({"kind": "all", "q": "zürich"}, ("tom", "feedback")),  # feedback comments too
        ({"kind": "all", "user": "ada"}, ("upload",)),
        ({"user": "sam", "route": "local"}, ("local",)),
        ({"user": "tom", "unsupported": "1", "collection": "hr"}, ("tom",)),
        ({"user": "sam", "unsupported": "1"}, ()),
        ({"model": "smollm2", "abstained": "1", "q": "laptops"}, ("local",)),
    ],
)
def test_each_filter_keeps_exactly_its_records(log, auditor_user, params, expected):
    assert listed(auditor_client(auditor_user), **params) == seqs(log, *expected)


def test_all_kinds_lists_everything_newest_first(log, auditor_user):
    shown = listed(auditor_client(auditor_user), kind="all")
    assert shown == sorted(shown, reverse=True)
    assert set(shown) >= {record.seq for record in log.values()}  # and the auditor's login


def test_dates_are_inclusive_days(log, auditor_user):
    client = auditor_client(auditor_user)
    today = timezone.localdate()
    old_day = timezone.localtime(log["old"].created_at).date()
    assert listed(client, date_from=today.isoformat()) == seqs(log, "sam", "tom", "local")
    assert listed(client, date_to=old_day.isoformat()) == seqs(log, "old")
    assert listed(client, date_from=old_day.isoformat(), date_to=old_day.isoformat()) == seqs(
        log, "old"
    )
    assert listed(
        client, date_from=(old_day - timedelta(days=1)).isoformat(), date_to=today.isoformat()
    ) == seqs(log, *ANSWERS)
    assert listed(client, date_to=(old_day - timedelta(days=1)).isoformat()) == []


def test_bad_filters_show_the_error_and_no_records(log, auditor_user):
    client = auditor_client(auditor_user)
    page = soup(client.get("/audit/", {"date_from": "2025-13-40"}))
    assert page.select("tr.audit-row") == []
    assert "Enter a valid date" in page.select_one("[role=alert]").get_text()
    page = soup(client.get("/audit/", {"date_from": "2025-02-02", "date_to": "2025-02-01"}))
    assert "start date is after the end date" in page.select_one("[role=alert]").get_text()


def test_the_redacted_are_not_found_by_their_words(log, auditor_user, admin_user):
    client = auditor_client(auditor_user)
    assert listed(client, q="Parental leave") == seqs(log, "tom")
    audit_redact(
        record=log["tom"],
        fields=["question", "standalone_query", "prompt"],
        by=admin_user,
        reason="erasure request",
    )
    assert listed(client, q="Parental leave") == []
    assert listed(client, q="redacted") == []  # the marker is not content


def test_the_list_shows_each_column(log, auditor_user):
    page = soup(auditor_client(auditor_user).get("/audit/", {"user": "tom"}))
    row = page.select("tr.audit-row")[0]
    cells = [td.get_text(" ", strip=True) for td in row.select("td")]
    assert cells[0] == str(log["tom"].seq)
    assert cells[1] == timezone.localtime(log["tom"].created_at).strftime("%Y-%m-%d %H:%M:%S")
    assert cells[2:4] == ["tom", "answer"]
    assert cells[4] == "Parental leave in Zürich: how long?"
    assert cells[5:8] == ["fake-model-2025", "fake", "answered"]
    assert "unsupported" in cells[8] and "⚠" in cells[8]
    assert row.select_one("a")["href"] == f"/audit/{log['tom'].seq}"


def test_long_questions_are_cut_at_100_characters(staff_user, auditor_user):
    record_answer(staff_user, question="Why " + "really " * 40 + "?")
    (cell,) = soup(auditor_client(auditor_user).get("/audit/")).select("td.question")
    assert len(cell.get_text(strip=True)) == 100 and cell.get_text(strip=True).endswith("…")


def test_flags_for_abstained_and_error(staff_user, auditor_user):
    record_answer(staff_user, status="abstained")
    record_answer(staff_user, status="error")
    rows = soup(auditor_client(auditor_user).get("/audit/")).select("tr.audit-row")
    assert "row-error" in rows[0]["class"] and "abstained" not in rows[0].get_text()
    assert "row-abstained" in rows[1]["class"]


def test_pages_of_50_keep_the_filters(staff_user, auditor_user):
    bulk = make_user("bulk", roles.STAFF)
    made = [record_answer(bulk, route="fake") for _ in range(PAGE_SIZE + 5)]
    record_answer(staff_user, route="fake")  # same route, another user: filtered out
    client = auditor_client(auditor_user)

    first = soup(client.get("/audit/", {"user": "bulk", "route": "fake"}))
    assert len(first.select("tr.audit-row")) == PAGE_SIZE
    assert first.select_one("#record-count").get_text() == f"{PAGE_SIZE + 5} records"
    older = first.select_one("a[rel=next]")["href"]
    assert "user=bulk" in older and "route=fake" in older and "page=2" in older
    for link in ("#export-jsonl", "#export-csv"):
        assert "user=bulk" in first.select_one(link)["href"]

    second = soup(client.get("/audit/" + older))
    shown = [int(td.get_text()) for td in second.select("tr.audit-row td.num")]
    assert shown == [record.seq for record in reversed(made[:5])]
    newer = second.select_one("a[rel=prev]")["href"]
    assert "user=bulk" in newer and "page=1" in newer
    assert "page=" not in second.select_one("#export-csv")["href"]  # the whole set, every page


# --- export ------------------------------------------------------------------------------------


def test_export_jsonl_is_the_filtered_set(log, auditor_user):
    client = auditor_client(auditor_user)
    response = client.get("/audit/export", {"format": "jsonl", "route": "fake"})
    assert response.status_code == 200 and response.streaming
    assert response["Content-Type"].startswith("application/x-ndjson")
    disposition = response["Content-Disposition"]
    assert disposition.startswith('attachment; filename="audit-') and disposition.endswith(
        '.jsonl"'
    )
    lines = b"".join(response.streaming_content).decode().splitlines()
    exported = [json.loads(line) for line in lines]
    assert [r["seq"] for r in exported] == sorted(seqs(log, "old", "tom"))  # chain order
    tom = exported[1]
    assert tom["content"]["question"] == "Parental leave in Zürich: how long?"
    assert tom["hash"] == log["tom"].hash and tom["payload"]["has_unsupported"] is True


def test_export_csv_is_the_filtered_set(log, auditor_user):
    response = auditor_client(auditor_user).get(
        "/audit/export", {"format": "csv", "kind": "all", "user": "sam"}
    )
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"].endswith('.csv"')
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [int(r["seq"]) for r in rows] == sorted(seqs(log, "sam", "local", "feedback"))
    assert {r["actor"] for r in rows} == {"sam"}
    assert json.loads(rows[-1]["content"]) == {"comment": "Zürich office says otherwise"}


def test_export_without_filters_defaults_to_answers_like_the_list(log, auditor_user):
    response = auditor_client(auditor_user).get("/audit/export")
    lines = b"".join(response.streaming_content).decode().splitlines()
    assert sorted(json.loads(line)["seq"] for line in lines) == sorted(seqs(log, *ANSWERS))


def test_export_refuses_bad_requests(log, auditor_user):
    client = auditor_client(auditor_user)
    assert client.get("/audit/export", {"format": "xml"}).status_code == 400
    response = client.get("/audit/export", {"format": "csv", "date_to": "soon"})
    assert response.status_code == 400 and b"date_to" in response.content


# --- one record ---------------------------------------------------------------------------------


def test_answer_beside_its_evidence(staff_user, auditor_user):
    record = record_answer(staff_user, unsupported=True)
    page = soup(auditor_client(auditor_user).get(f"/audit/{record.seq}"))

    left, right = page.select(".audit-split > section")
    assert "audit-left" in left["class"] and "audit-right" in right["class"]
    answer = left.select_one("#answer")
    assert "thirty days" in answer.get_text()
    chip = answer.select_one("button.cite")
    assert chip["data-marker"] == "1" and "cite-unsupported" in chip["class"]  # the worst
    assert "Source 1 is the travel policy" in left.select_one("pre#reasoning").get_text()
    prompt = left.select_one("details#prompt")
    assert prompt.get("open") is None and "Answer only from the sources." in prompt.get_text()

    cited, unused = right.select("article.evidence")
    assert cited["id"] == "source-1" and "unused" not in cited["class"]
    head = cited.select_one(".evidence-head").get_text(" ", strip=True)
    assert "1 supported" in head and "1 unsupported" in head
    assert [m.get_text() for m in cited.select("mark")] == [QUOTE]
    assert cited.select_one("mark")["class"] == ["span-supported"]
    assert cited.select_one("a")["href"] == "/documents/7/file#page=2"
    scores = cited.select_one("table.scores").get_text(" ", strip=True)
    assert "0.0320" in scores and "0.7100" in scores and "4.200" in scores
    assert unused["id"] == "source-2" and "unused" in unused["class"]
    assert unused.select("mark") == [] and "not cited" in unused.get_text()
    assert "Laptops must use full disk encryption" in unused.get_text()

    rows = page.select("table.citations tbody tr")
    assert [r.select_one(".verdict").get_text() for r in rows] == ["supported", "unsupported"]
    assert QUOTE in rows[0].get_text() and "none" in rows[1].select("td")[-1].get_text()
    assert "Laptops may be shared" in rows[1].get_text()


def test_the_header_explains_who_what_and_how(staff_user, auditor_user):
    record = record_answer(staff_user)
    page = soup(auditor_client(auditor_user).get(f"/audit/{record.seq}"))
    meta = page.select_one(".meta-grid").get_text(" ", strip=True)
    for expected in (
        "sam", "deepseek-reasoner", "default model: deepseek", "answered", "rag-answer/1",
        "310 prompt", "334 tokens", "cost 0.00042", "total 1012.9 ms", "first token 380.5 ms",
        "retrieved from: general",
    ):  # fmt: skip
        assert expected in meta, expected
    assert record.hash in page.select_one(".hashes").get_text()
    assert record.prev_hash in page.select_one(".hashes").get_text()
    assert "checks out" in page.select_one("#integrity").get_text()
    assert "manage.py audit verify" in page.select_one(".integrity").get_text()


def test_feedback_shows_on_its_answer(log, auditor_user):
    client = auditor_client(auditor_user)
    page = soup(client.get(f"/audit/{log['sam'].seq}"))
    (entry,) = page.select(".feedback-entry")
    assert "down" in entry.get_text() and "Zürich office says otherwise" in entry.get_text()
    assert entry.select_one("a")["href"] == f"/audit/{log['feedback'].seq}"
    # and the feedback's own page leads back to the answer
    page = soup(client.get(f"/audit/{log['feedback'].seq}"))
    assert f"/audit/{log['sam'].seq}" in [a["href"] for a in page.select("ul.related a")]
    assert (
        "Zürich office says otherwise" in page.select_one("pre.json:-soup-contains('Zürich')").text
    )


def test_other_kinds_show_payload_and_content(log, auditor_user):
    page = soup(auditor_client(auditor_user).get(f"/audit/{log['upload'].seq}"))
    assert json.loads(page.select_one("pre.json").get_text()) == log["upload"].payload
    assert "No content fields." in page.get_text()
    assert "checks out" in page.select_one("#integrity").get_text()


def test_redacted_content_shows_who_when_and_why(staff_user, auditor_user, admin_user):
    record = record_answer(staff_user, question="Is my colleague Jane on sick leave?")
    words = ["question", "standalone_query", "prompt", "source_texts"]
    event = audit_redact(record=record, fields=words, by=admin_user, reason="GDPR erasure")
    client = auditor_client(auditor_user)
    page = soup(client.get(f"/audit/{record.seq}"))
    when = timezone.localtime(event.created_at).strftime("%Y-%m-%d %H:%M")
    marker = f"[redacted {when} by ada: GDPR erasure]"
    assert page.select_one(".question-card .redacted").get_text() == marker
    assert marker in page.select_one(".audit-right .redacted").get_text()
    assert "Jane" not in page.get_text()
    assert page.select("article.evidence .source-text") == []  # no text left to show
    assert "thirty days" in page.select_one("#answer").get_text()  # the rest is still there
    assert "checks out" in page.select_one("#integrity").get_text()  # redaction accounted for
    assert f"/audit/{event.seq}" in [a["href"] for a in page.select("ul.related a")]
    (cell,) = soup(client.get("/audit/")).select("td.question")
    assert cell.get_text(strip=True) == "[redacted]"


def test_retention_redaction_is_by_the_system(staff_user, auditor_user, settings):
    from audit.services import audit_apply_retention

    record = record_answer(staff_user)
    settings.AUDIT_RETENTION_DAYS = 30
    audit_apply_retention(now=timezone.now() + timedelta(days=31))
    page = soup(auditor_client(auditor_user).get(f"/audit/{record.seq}"))
    assert "by system: retention]" in page.select_one(".audit-left .redacted").text


def test_tampered_content_raises_a_red_warning(staff_user, auditor_user, request):
    if connection.vendor != "postgresql":
        pytest.skip("tampering needs the PostgreSQL triggers switched off")
    record = record_answer(staff_user)
    tamper = request.getfixturevalue("tamper")
    tamper(
        "UPDATE audit_auditcontent SET value = %s WHERE record_id = %s AND field = 'answer'",
        [json.dumps("Receipts are due within ninety days [1]."), record.pk],
    )
    page = soup(auditor_client(auditor_user).get(f"/audit/{record.seq}"))
    warning = page.select_one("#integrity.check-bad").get_text()
    assert "content field 'answer' differs from its commitment" in warning


HOSTILE = '<script>alert("x")</script><img src=x onerror="alert(1)">'


def test_hostile_text_is_inert(staff_user, auditor_user):
    record = record_answer(
        staff_user,
        question=f"What now? {HOSTILE}",
        answer=f"Thirty days [1]. {HOSTILE} [text](javascript:alert(2))",
        reasoning=HOSTILE,
        sources=(f"{HOSTILE} {TRAVEL}", f"<svg onload=alert(3)> {SECURITY}"),
        model=HOSTILE,
        route=HOSTILE,
    )
    audit_append(
        kind="feedback",
        actor=staff_user,
        subject=record.subject,
        payload={"message_id": 1, "rating": HOSTILE},
        content={"comment": HOSTILE},
    )
    client = auditor_client(auditor_user)
    for url in (f"/audit/{record.seq}", "/audit/", "/audit/?kind=all", f"/audit/{record.seq + 1}"):
        page = soup(client.get(url))
        scripts = page.select("script")
        assert all(s.get("src", "").startswith("/static/") for s in scripts), url
        # the recorded words are shown in <main>; the header's own menu icon is the app's
        assert not page.select("main img, main svg"), url
        assert all(svg.get("aria-hidden") == "true" for svg in page.select("svg")), url
        assert not [
            tag for tag in page.find_all(True) if any(a.startswith("on") for a in tag.attrs)
        ]
        assert not [a for a in page.select("a[href]") if a["href"].startswith("javascript")], url
    # the text is still there for the auditor to read, as text
    page = soup(client.get(f"/audit/{record.seq}"))
    assert HOSTILE in page.select_one(".question-text").get_text()
    mark = page.select_one("#source-1 mark")
    assert mark.get_text() == QUOTE and HOSTILE in page.select_one("#source-1 .source-text").text


def test_highlight_escapes_and_marks_by_offsets():
    text = "a<b>&c\"' tail"
    html = _highlight(text, [(1, 4, "supported"), (2, 6, "partial"), (0, 0, "unsupported")])
    assert html == 'a<mark class="span-partial">&lt;b&gt;&amp;c</mark>&quot;&#x27; tail'
    assert _highlight(text, [(5, 99, "supported"), ("1", 3, "supported"), (True, 3, "x")]) == (
        "a&lt;b&gt;&amp;c&quot;&#x27; tail"
    )
    assert _highlight("ab", [(0, 1, 'evil" onclick="x'), (1, 2, "supported")]) == (
        '<mark class="span-none">a</mark><mark class="span-supported">b</mark>'
    )


# --- through the assistant ----------------------------------------------------------------------


def test_an_answer_from_the_assistant_can_be_reviewed(staff_user, auditor_user, handbook, fake_llm):
    from assistant import services

    fake_llm.default = (
        "Receipts must be submitted within thirty days of travel [1]. "
        "The cafeteria serves free pizza every Friday [1]."
    )
    message = services.answer_question(
        user=staff_user, question="How long do I have to hand in my travel receipts?"
    )
    fake_llm.default = "Laptops must use full disk encryption [1]."
    services.answer_question(user=staff_user, question="Do laptops need disk encryption?")
    client = auditor_client(auditor_user)

    (seq,) = listed(client, unsupported="1", user="sam", collection="general")
    record = AuditRecord.objects.get(seq=seq)
    assert record.subject == f"message:{message.pk}"
    assert len(listed(client, user="sam")) == 2

    page = soup(client.get(f"/audit/{seq}"))
    verdicts = [v.get_text() for v in page.select("table.citations .verdict")]
    assert verdicts == ["supported", "unsupported"]
    marks = page.select(".audit-right #source-1 mark")
    assert len(marks) == 1 and "thirty days" in marks[0].get_text()
    assert len(page.select(".audit-right article.evidence")) == len(record.payload["retrieved"])
    assert "checks out" in page.select_one("#integrity").get_text()


def test_filters_suggest_values_seen_in_recent_answers(log, auditor_user):
    page = soup(auditor_client(auditor_user).get("/audit/", {"kind": "no.such.kind"}))
    options = {
        name: [o["value"] for o in page.select(f"datalist#dl-{name} option")]
        for name in ("user", "model", "route", "collection")
    }
    assert options == {
        "user": ["sam", "tom"],
        "model": ["deepseek-reasoner", "fake-model-2025", "smollm2"],
        "route": ["deepseek", "fake", "local"],
        "collection": ["general", "hr", "hr-archive"],
    }
    kinds = page.select("select[name=kind] option")
    assert [o["value"] for o in kinds if o.has_attr("selected")] == ["no.such.kind"]
    assert {"document.upload", "feedback"} <= {o["value"] for o in kinds}
    assert page.select("tr.audit-row") == []
