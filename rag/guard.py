"""What an external model is allowed to see: personal data is replaced by placeholders before
the request leaves, and put back into the answer the user reads.

``RedactingLLM`` wraps any LLM. Internal models are not wrapped: they receive the original.
A wrapper is built per request, so ``redaction`` (what was removed, as digests) belongs to that
request and can go into its audit record.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace

from .pii import MessagesRedaction, PiiRedactor
from .types import Completion, Delta, Message

_LONGEST_PLACEHOLDER = 16  # "[PHONE_123]" and the like; a "[" this close to the end may be one


class RedactingLLM:
    def __init__(self, inner, *, redactor: PiiRedactor | None = None) -> None:
        self.inner = inner
        self.redactor = redactor or PiiRedactor()
        self.id, self.model, self.provider = inner.id, inner.model, inner.provider
        self.redaction: MessagesRedaction | None = None

    def stream(
        self, messages: Sequence[Message], *, max_tokens: int = 1024, temperature=None
    ) -> Iterator[Delta | Completion]:
        redacted, self.redaction = self.redactor.redact_messages(messages)
        restore = self.redaction.restore
        held = {"reasoning": "", "answer": ""}
        for piece in self.inner.stream(redacted, max_tokens=max_tokens, temperature=temperature):
            if isinstance(piece, Completion):
                yield from _flush(held, restore)
                yield replace(
                    piece, answer=restore(piece.answer), reasoning=restore(piece.reasoning)
                )
                continue
            out = {}
            for kind in ("reasoning", "answer"):
                text = held[kind] + getattr(piece, kind)
                cut = _safe_cut(text)
                out[kind], held[kind] = restore(text[:cut]), text[cut:]
            if out["reasoning"] or out["answer"]:
                yield Delta(**out)
        yield from _flush(held, restore)

    def close(self) -> None:
        close = getattr(self.inner, "close", None)
        if close is not None:
            close()


def _safe_cut(text: str) -> int:
    """Where ``text`` may be cut without splitting a placeholder that is still arriving."""
    start = text.rfind("[", max(0, len(text) - _LONGEST_PLACEHOLDER))
    return len(text) if start < 0 or "]" in text[start:] else start


def _flush(held: dict, restore) -> Iterator[Delta]:
    if held["reasoning"] or held["answer"]:
        yield Delta(reasoning=restore(held["reasoning"]), answer=restore(held["answer"]))
        held["reasoning"] = held["answer"] = ""
