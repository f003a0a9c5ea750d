"""When an answer's content is redacted in the audit log, erase the chat's copy of it too."""

from __future__ import annotations

from audit.services import on_redaction

from .models import Message

MARKER = "[redacted]"


@on_redaction("answer")
def erase_answer_copies(seqs: list[int], fields: list[str] | None) -> None:
    every = fields is None
    wanted = set(fields or ())
    for answer in Message.objects.filter(audit_seq__in=seqs).select_related("conversation"):
        changed: dict = {}
        if every or "question" in wanted:
            changed["question"] = MARKER
            question = (
                Message.objects.filter(
                    conversation=answer.conversation,
                    role=Message.Role.USER,
                    created_at__lte=answer.created_at,
                )
                .order_by("-created_at", "-id")
                .first()
            )
            if question is not None:
                Message.objects.filter(pk=question.pk).update(content=MARKER)
        if every or "standalone_query" in wanted:
            changed["standalone_query"] = MARKER
        if every or "prompt" in wanted:
            changed["prompt"] = []
        if every or "reasoning" in wanted:
            changed["reasoning"] = MARKER
        if every or "answer" in wanted:
            changed["content"] = MARKER
        if every or "model_answer" in wanted:
            changed["model_answer"] = MARKER
        if every or "source_texts" in wanted:
            changed["sources"] = [{**s, "text": MARKER} for s in answer.sources]
        if every or "citation_sentences" in wanted:
            changed["citations"] = [
                {**c, "sentence": MARKER, "quote": MARKER} for c in answer.citations
            ]
        if every or "uncited_sentences" in wanted:
            changed["uncited_sentences"] = []
        if changed:
            Message.objects.filter(pk=answer.pk).update(**changed)
