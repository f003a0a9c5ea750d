"""The auditor's review UI: list and filter the audit log, read one record, export a filtered set.

Read-only by construction: every view answers GET and HEAD only (require_safe), none writes.
Auditors reconstruct an answer from what the log itself holds (payload and content), never from
the chat tables, which may have been edited or deleted since.

Text from users, models and documents is escaped by the templates; the only HTML built here is
`render_answer`'s sanitised output and `_highlight`, which escapes before it marks.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from datetime import date, datetime, time, timedelta
from itertools import islice

from asgiref.sync import sync_to_async
from django import forms
from django.core.handlers.asgi import ASGIRequest
from django.core.paginator import Paginator
from django.db.models import Func, Prefetch, Q, QuerySet, TextField
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe
from django.views.decorators.http import require_safe

from accounts import roles
from assistant.rendering import render_answer

from . import chain, selectors
from .models import REDACTION_KIND, AuditContent, AuditRecord

PAGE_SIZE = 50
ANSWER_KIND = "answer"
FEEDBACK_KIND = "feedback"
ALL_KINDS = "all"
# The free-text filter searches these content fields (what was asked, answered, commented).
FREE_TEXT_FIELDS = ("question", "standalone_query", "answer", "model_answer", "comment")
FILTERS = (
    "user", "date_from", "date_to", "kind", "model", "route", "collection", "unsupported",
    "abstained", "q",
)  # fmt: skip
VERDICTS = ("supported", "partial", "unsupported")  # best to worst
SUGGESTION_WINDOW = 1000  # datalist suggestions come from this many recent records
EXPORT_BATCH = 200  # lines per hop to the database thread when streaming under ASGI
CONTENT_TYPES = {"jsonl": "application/x-ndjson; charset=utf-8", "csv": "text/csv; charset=utf-8"}

audit_page = roles.page_requires(roles.can_audit, "reviewing the audit log")


# --- list ---------------------------------------------------------------------------------------


class AuditFilterForm(forms.Form):
    user = forms.CharField(required=False, max_length=150)
    date_from = forms.DateField(required=False)
    date_to = forms.DateField(required=False)
    kind = forms.CharField(required=False, max_length=100)
    model = forms.CharField(required=False, max_length=200)
    route = forms.CharField(required=False, max_length=200)
    collection = forms.CharField(required=False, max_length=100)
    unsupported = forms.BooleanField(required=False)
    abstained = forms.BooleanField(required=False)
    q = forms.CharField(required=False, max_length=500)

    def clean(self):
        data = super().clean()
        start, end = data.get("date_from"), data.get("date_to")
        if start and end and start > end:
            raise forms.ValidationError("The start date is after the end date.")
        return data


class _JSONText(Func):
    """A JSON value as text, with a string unquoted and unescaped, so that `icontains` matches
    what was written: quotes and non-ASCII letters (which SQLite stores as \\uXXXX) included."""

    output_field = TextField()
    template = "CAST(%(expressions)s AS TEXT)"

    def as_postgresql(self, compiler, connection, **extra):
        return self.as_sql(compiler, connection, template="(%(expressions)s #>> '{}')", **extra)

    def as_sqlite(self, compiler, connection, **extra):
        return self.as_sql(
            compiler, connection, template="json_extract(%(expressions)s, '$')", **extra
        )


def _records_matching(filters: dict) -> QuerySet[AuditRecord]:
    """Records matching the cleaned filters of AuditFilterForm, in no particular order.

    Payload lookups are JSON key lookups, which PostgreSQL and SQLite both translate; a record
    without the key (another kind) simply does not match.
    """
    records = AuditRecord.objects.all()
    kind = filters.get("kind") or ANSWER_KIND
    if kind != ALL_KINDS:
        records = records.filter(kind=kind)
    if filters.get("user"):
        records = records.filter(actor_name=filters["user"])
    if filters.get("date_from"):
        records = records.filter(created_at__gte=_start_of(filters["date_from"]))
    if filters.get("date_to"):  # inclusive: up to the end of that day
        records = records.filter(created_at__lt=_start_of(filters["date_to"] + timedelta(days=1)))
    if filters.get("model"):  # as the provider reported it, or the configured model id
        records = records.filter(
            Q(payload__model=filters["model"]) | Q(payload__llm_id=filters["model"])
        )
    if filters.get("route"):
        records = records.filter(payload__route=filters["route"])
    if filters.get("collection"):
        # A JSON list of slugs: look for the quoted slug in its text (a slug needs no escaping,
        # and the quotes stop "hr" from matching "hr-archive"). Works on both databases, unlike
        # jsonb containment.
        quoted = json.dumps(filters["collection"].strip())
        records = records.filter(payload__retrieved_collections__icontains=quoted)
    if filters.get("unsupported"):
        records = records.filter(payload__has_unsupported=True)
    if filters.get("abstained"):
        records = records.filter(payload__abstained=True)
    if filters.get("q"):
        matching = (
            AuditContent.objects.filter(field__in=FREE_TEXT_FIELDS, redacted_at__isnull=True)
            .annotate(text=_JSONText("value"))
            .filter(text__icontains=filters["q"].strip())
            .values("record_id")
        )
        records = records.filter(pk__in=matching)
    return records


@audit_page
@require_safe
def record_list(request: HttpRequest) -> HttpResponse:
    form = AuditFilterForm(request.GET)
    valid = form.is_valid()
    # Invalid filters show the error and no records: never "everything" by accident.
    records = (
        _records_matching(form.cleaned_data) if valid else AuditRecord.objects.none()
    ).order_by("-seq")
    records = records.prefetch_related(
        Prefetch(
            "contents",
            queryset=AuditContent.objects.filter(field="question"),
            to_attr="question_rows",
        )
    )
    page = Paginator(records, PAGE_SIZE).get_page(request.GET.get("page"))
    kind, kinds = request.GET.get("kind") or ANSWER_KIND, _kinds()
    if kind not in (ANSWER_KIND, ALL_KINDS, *kinds):
        kinds.append(kind)  # asked for by URL: show it selected, if only to show it is empty
    return render(
        request,
        "audit/list.html",
        {
            "form": form,
            "page": page,
            "rows": [_list_row(record) for record in page.object_list],
            "filter_query": _filter_query(request),
            "kind": kind,
            "kinds": kinds,
            "suggestions": _suggestions(),
        },
    )


def _list_row(record: AuditRecord) -> dict:
    payload = _dict(record.payload)
    question, redacted = "", False
    for row in record.question_rows:
        if row.redacted_at is not None:
            redacted = True
        elif isinstance(row.value, str):
            question = row.value
    flags = []
    if payload.get("has_unsupported"):
        flags.append(("unsupported", "⚠", "an unsupported citation"))
    if payload.get("abstained"):
        flags.append(("abstained", "∅", "the model abstained"))
    if payload.get("status") == "error" or payload.get("error"):
        flags.append(("error", "✕", f"error: {payload.get('error') or 'unknown'}"))
    return {
        "record": record,
        "question": question,
        "question_redacted": redacted,
        "model": payload.get("model") or payload.get("llm_id") or "",
        "route": payload.get("route") or "",
        "status": payload.get("status") or "",
        "flags": flags,
    }


def _filter_query(request: HttpRequest) -> str:
    """The current filters as a query string (no page), for pagination and export links."""
    query = request.GET.copy()
    for key in list(query):
        if key not in FILTERS or not query.get(key):
            del query[key]
    return query.urlencode()


def _kinds() -> list[str]:
    kinds = set(AuditRecord.objects.order_by().values_list("kind", flat=True).distinct())
    return sorted(kinds - {ANSWER_KIND})


def _suggestions() -> dict[str, list[str]]:
    """Values seen in recent answers, offered as datalist suggestions (any value may be typed).
    Only those keys are read, not whole payloads."""
    recent = AuditRecord.objects.filter(kind=ANSWER_KIND).order_by("-seq")[:SUGGESTION_WINDOW]
    seen: dict[str, set] = {"user": set(), "model": set(), "route": set(), "collection": set()}
    for user, model, route, slugs in recent.values_list(
        "actor_name", "payload__model", "payload__route", "payload__retrieved_collections"
    ):
        seen["user"].add(user)
        seen["model"].add(model)
        seen["route"].add(route)
        seen["collection"].update(slugs if isinstance(slugs, list) else ())
    return {
        key: sorted(value for value in values if isinstance(value, str) and value)
        for key, values in seen.items()
    }


# --- detail -------------------------------------------------------------------------------------


@audit_page
@require_safe
def record_detail(request: HttpRequest, seq: int) -> HttpResponse:
    try:
        record = selectors.audit_record_get(seq=seq)
    except AuditRecord.DoesNotExist:
        raise Http404("no such audit record") from None
    payload = _dict(record.payload)
    contents = {row.field: row for row in record.contents.all()}
    context = {
        "record": record,
        "payload": payload,
        "integrity": _integrity(record),
        "related": _related(record, payload),
    }
    if record.kind == ANSWER_KIND:
        context.update(_answer_context(record, payload, contents))
        return render(request, "audit/answer.html", context)
    context["fields"] = [
        {
            "name": field,
            "redaction": _redaction_note(row),
            "json": json.dumps(row.value, indent=2, ensure_ascii=False, sort_keys=True),
        }
        for field, row in sorted(contents.items())
    ]
    context["payload_json"] = json.dumps(payload, indent=2, ensure_ascii=False, sort_keys=True)
    return render(request, "audit/record.html", context)


def _integrity(record: AuditRecord) -> dict:
    """Check this one record against its predecessor: the link, its hash and its content's
    commitments (and that any redaction is accounted for). Cheap enough for every page view;
    the whole chain is for `manage.py audit verify`."""
    if record.seq == 1:
        prev_seq, prev_hash = 0, chain.GENESIS_HASH
    else:
        prev = AuditRecord.objects.filter(seq=record.seq - 1).values("seq", "hash").first()
        if prev is None:
            return {"ok": False, "problem": f"record {record.seq - 1} is missing"}
        prev_seq, prev_hash = prev["seq"], prev["hash"]
    # The same check `audit verify` runs on every record, applied to this one only.
    problem = selectors._check(record, prev_seq=prev_seq, prev_hash=prev_hash)
    return {"ok": not problem, "problem": problem}


def _related(record: AuditRecord, payload: dict) -> list[dict]:
    """Records about the same thing: an answer's feedback, a feedback's answer, a redaction's
    target and the redactions of this record."""
    related = AuditRecord.objects.none()
    if record.subject.startswith("message:"):
        related = AuditRecord.objects.filter(subject=record.subject).exclude(pk=record.pk)
    seqs = {row.redaction.seq for row in record.contents.all() if row.redaction is not None}
    if record.kind == REDACTION_KIND and isinstance(payload.get("target_seq"), int):
        seqs.add(payload["target_seq"])
    if seqs:
        related = related | AuditRecord.objects.filter(seq__in=seqs)
    return [
        {"seq": seq, "kind": kind, "actor": actor, "at": at}
        for seq, kind, actor, at in related.order_by("seq").values_list(
            "seq", "kind", "actor_name", "created_at"
        )
    ]


def _redaction_note(row: AuditContent | None) -> str:
    if row is None or row.redacted_at is None:
        return ""
    by = row.redacted_by.get_username() if row.redacted_by else "system"
    when = timezone.localtime(row.redacted_at).strftime("%Y-%m-%d %H:%M")
    return f"[redacted {when} by {by}: {row.redaction_reason}]"


def _answer_context(record: AuditRecord, payload: dict, contents: dict) -> dict:
    def text(field: str) -> tuple[object, str]:
        """(value, redaction note) of a content field; a missing field reads as empty."""
        row = contents.get(field)
        if row is None:
            return None, ""
        note = _redaction_note(row)
        return (None if note else row.value), note

    citations = [c for c in payload.get("citations") or () if isinstance(c, dict)]
    sentences, sentences_note = text("citation_sentences")
    source_texts, source_texts_note = text("source_texts")
    source_texts = source_texts if isinstance(source_texts, dict) else {}
    answer, answer_note = text("answer")
    question, question_note = text("question")
    query, query_note = text("standalone_query")
    reasoning, reasoning_note = text("reasoning")
    model_answer, model_answer_note = text("model_answer")
    prompt, prompt_note = text("prompt")
    uncited, uncited_note = text("uncited_sentences")

    worst: dict[int, str] = {}
    for citation in citations:
        marker, verdict = citation.get("marker"), _verdict(citation.get("verdict"))
        if isinstance(marker, int) and _worse(worst.get(marker), verdict) == verdict:
            worst[marker] = verdict

    sources = []
    for source in payload.get("retrieved") or ():
        if not isinstance(source, dict):
            continue
        n = source.get("n")
        cited = [c for c in citations if c.get("marker") == n]
        body = source_texts.get(str(n))
        spans = [
            (c.get("quote_start"), c.get("quote_end"), _verdict(c.get("verdict"))) for c in cited
        ]
        sources.append(
            {
                **source,
                "used": bool(cited),
                "verdicts": [
                    (verdict, count)
                    for verdict in (*VERDICTS, "none")
                    if (count := sum(_verdict(c.get("verdict")) == verdict for c in cited))
                ],
                "markers": sorted({c.get("marker") for c in cited}),
                "html": _highlight(body, spans) if isinstance(body, str) else None,
            }
        )

    rows = []
    for i, citation in enumerate(citations):
        body = source_texts.get(str(citation.get("marker")))
        start, end = citation.get("quote_start"), citation.get("quote_end")
        quote = ""
        if isinstance(body, str) and _valid_span(start, end, body):
            quote = body[start:end]
        rows.append(
            {
                **citation,
                "verdict": _verdict(citation.get("verdict")),
                "sentence": sentences[i]
                if isinstance(sentences, list) and i < len(sentences)
                else "",
                "quote": quote,
            }
        )

    answer_html = (
        render_answer(answer, verdicts=worst) if isinstance(answer, str) and answer else ""
    )
    return {
        "question": question,
        "question_note": question_note,
        "standalone_query": query,
        "standalone_query_note": query_note,
        "answer_html": answer_html,
        "answer_note": answer_note,
        "model_answer": model_answer if model_answer != answer else "",
        "model_answer_note": model_answer_note,
        "reasoning": reasoning,
        "reasoning_note": reasoning_note,
        "prompt": [m for m in prompt or () if isinstance(m, dict)],
        "prompt_note": prompt_note,
        "uncited": uncited or [],
        "uncited_note": uncited_note,
        "sources": sources,
        "source_texts_note": source_texts_note,
        "citations": rows,
        "citation_sentences_note": sentences_note,
        "feedback": _feedback(record),
        "usage": _dict(payload.get("usage")),
        "timings": _dict(payload.get("timings_ms")),
        "parameters_json": json.dumps(payload.get("parameters"), ensure_ascii=False),
    }


def _feedback(record: AuditRecord) -> list[dict]:
    entries = []
    for item in selectors.audit_record_list(kind=FEEDBACK_KIND, subject=record.subject):
        payload = _dict(item.payload)
        row = next((r for r in item.contents.all() if r.field == "comment"), None)
        note = _redaction_note(row)
        entries.append(
            {
                "record": item,
                "rating": payload.get("rating"),
                "comment": "" if row is None or note else row.value,
                "comment_note": note,
            }
        )
    return entries


def _dict(value: object) -> dict:
    return value if isinstance(value, dict) else {}


def _verdict(value: object) -> str:
    return value if value in VERDICTS else "none"


def _worse(a: str | None, b: str) -> str:
    rank = {"none": -1, **{v: i for i, v in enumerate(VERDICTS)}}
    return b if a is None or rank[b] >= rank.get(a, -1) else a


def _valid_span(start: object, end: object, text: str) -> bool:
    return (
        isinstance(start, int)
        and isinstance(end, int)
        and not isinstance(start, bool)
        and 0 <= start < end <= len(text)
    )


def _highlight(text: str, spans: list[tuple[object, object, str]]) -> SafeString:
    """`text`, escaped, with each (start, end, verdict) span in a <mark>.

    Offsets index the source text as Python does (code points), as the verifier computed them.
    Overlapping spans merge (keeping the worse verdict); empty or out-of-range ones, such as an
    unsupported citation's (0, 0), are left out.
    """
    valid = sorted((s, e, v) for s, e, v in spans if _valid_span(s, e, text))
    merged: list[list] = []
    for start, end, verdict in valid:
        if merged and start < merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
            merged[-1][2] = _worse(merged[-1][2], verdict)
        else:
            merged.append([start, end, verdict])
    out, position = [], 0
    for start, end, verdict in merged:
        out.append(escape(text[position:start]))
        out.append(f'<mark class="span-{_verdict(verdict)}">{escape(text[start:end])}</mark>')
        position = end
    out.append(escape(text[position:]))
    return mark_safe("".join(out))  # every piece of text above is escaped


# --- export -------------------------------------------------------------------------------------


@audit_page
@require_safe
def record_export(request: HttpRequest) -> HttpResponse:
    fmt = request.GET.get("format", "jsonl")
    if fmt not in selectors.EXPORT_FORMATS:
        return HttpResponse(
            f"format must be one of {', '.join(selectors.EXPORT_FORMATS)}",
            status=400,
            content_type="text/plain; charset=utf-8",
        )
    form = AuditFilterForm(request.GET)
    if not form.is_valid():
        return HttpResponse(
            "invalid filters: " + form.errors.as_text(),
            status=400,
            content_type="text/plain; charset=utf-8",
        )
    lines = selectors.audit_export(fmt=fmt, records=_records_matching(form.cleaned_data))
    # Under ASGI Django would buffer a synchronous iterator whole before sending it.
    body = _batched(lines) if isinstance(request, ASGIRequest) else lines
    response = StreamingHttpResponse(body, content_type=CONTENT_TYPES[fmt])
    stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
    response["Content-Disposition"] = f'attachment; filename="audit-{stamp}.{fmt}"'
    response["Cache-Control"] = "no-store"
    return response


async def _batched(lines: Iterator[str]) -> AsyncIterator[str]:
    """Pull the export a batch at a time on Django's sync thread (where its database connection
    lives), so a large export streams with bounded memory instead of being buffered."""
    take = sync_to_async(lambda: "".join(islice(lines, EXPORT_BATCH)), thread_sensitive=True)
    while chunk := await take():
        yield chunk


def _start_of(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))
