"""LLM layer: a streaming protocol, an OpenAI-compatible client and a fake for tests.

Every provider's way of returning reasoning is normalised here, so nothing above this module
needs to know whether it came as ``delta.reasoning_content`` (DeepSeek), ``delta.reasoning``
(vLLM, Ollama) or ``<think>…</think>`` inside the answer text (llama.cpp and others).

Streaming contract: ``stream()`` yields ``Delta`` pieces for display as they arrive and exactly
one ``Completion`` last. The ``Completion`` is authoritative: in the rare case where reasoning
can only be recognised after it was streamed (a ``</think>`` without an opening tag), the
deltas were shown as answer text but the ``Completion`` files them under reasoning.
"""

from __future__ import annotations

import email.utils
import math
import re
import time
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Literal, Protocol, runtime_checkable

from rag.types import Completion, Delta, Message, Usage

ErrorKind = Literal[
    "auth",
    "payment",
    "invalid_request",
    "rate_limit",
    "server",
    "timeout",
    "connection",
    "incomplete",
    "model",
]

_RETRYABLE_KINDS = frozenset({"rate_limit", "server", "timeout", "connection", "incomplete"})


class LLMError(Exception):
    """A failed generation, classified so a routing layer can decide to retry or fall back."""

    def __init__(
        self,
        kind: ErrorKind,
        user_message: str,
        *,
        status: int | None = None,
        retryable: bool | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(user_message)
        self.kind: ErrorKind = kind
        self.user_message = user_message
        self.status = status
        self.retryable = kind in _RETRYABLE_KINDS if retryable is None else retryable
        self.retry_after = retry_after

    def __repr__(self) -> str:
        return f"LLMError(kind={self.kind!r}, status={self.status!r}, {self.user_message!r})"


@runtime_checkable
class LLM(Protocol):
    id: str  # registry id, e.g. "deepseek-reasoner"
    model: str  # the model name sent to the provider
    provider: str

    def stream(
        self,
        messages: Sequence[Message],
        *,
        max_tokens: int = 1024,
        temperature: float | None = None,
    ) -> Iterator[Delta | Completion]:
        """Yield ``Delta`` pieces as they arrive, then exactly one ``Completion``.

        Raises ``LLMError``; a stream that breaks before the provider finished raises
        ``LLMError(kind="incomplete")`` and never yields a ``Completion``.
        """
        ...


def complete(
    llm: LLM,
    messages: Sequence[Message],
    *,
    max_tokens: int = 1024,
    temperature: float | None = None,
) -> Completion:
    """Run a generation to the end and return only the ``Completion``."""
    completion: Completion | None = None
    for item in llm.stream(messages, max_tokens=max_tokens, temperature=temperature):
        if isinstance(item, Completion):
            completion = item
    if completion is None:
        raise LLMError("incomplete", f"The model {llm.id!r} ended its stream without an answer.")
    return completion


# ---------------------------------------------------------------------------------------------
# <think>…</think> inside the answer text
# ---------------------------------------------------------------------------------------------

_OPEN_TAG = "<think>"
_CLOSE_TAG = "</think>"


def _partial_tag_length(text: str, tag: str) -> int:
    """Length of the longest end of ``text`` that could be the start of ``tag``."""
    for size in range(min(len(text), len(tag) - 1), 0, -1):
        if text.endswith(tag[:size]):
            return size
    return 0


class ThinkTagSplitter:
    """Splits streamed answer text into reasoning and answer at ``<think>…</think>``.

    Feed it text pieces as they arrive; each ``feed`` returns what can already be shown. A piece
    that might be the start of a tag ("<thi") is held back until the next piece decides it.
    Only a think block at the very start counts: a later ``<think>`` is answer text (an answer
    may well be about HTML tags).

    Some chat templates open the think block in the prompt, so the model's output starts with
    reasoning and only has ``</think>``. With ``starts_in_reasoning=True`` text streams as
    reasoning until ``</think>`` (and becomes the answer if no ``</think>`` ever comes). With
    the default, such text streams as answer and is refiled as reasoning once ``</think>``
    shows up; ``reclassified`` tells the caller the earlier deltas were mislabelled.
    """

    def __init__(self, *, starts_in_reasoning: bool = False) -> None:
        self._starts_in_reasoning = starts_in_reasoning
        # start -> (reasoning | untagged) -> answer; "untagged" watches for a stray </think>
        self._state: Literal["start", "reasoning", "untagged", "answer"] = "start"
        self._buffer = ""
        self._opened = False
        self._closed = False
        self._finished = False
        self._reasoning: list[str] = []
        self._answer: list[str] = []
        self.reclassified = False

    @property
    def reasoning(self) -> str:
        return "".join(self._reasoning)

    @property
    def answer(self) -> str:
        return "".join(self._answer)

    def feed(self, text: str) -> Delta:
        if self._finished:
            raise RuntimeError("ThinkTagSplitter.feed() after flush()")
        self._buffer += text
        reasoning: list[str] = []
        answer: list[str] = []
        self._drain(reasoning, answer, final=False)
        return Delta(reasoning="".join(reasoning), answer="".join(answer))

    def flush(self) -> Delta:
        """End of stream: release anything held back and settle ambiguous text."""
        if self._finished:
            return Delta()
        reasoning: list[str] = []
        answer: list[str] = []
        self._drain(reasoning, answer, final=True)
        self._finished = True
        if self._state == "reasoning" and not self._opened and not self._closed:
            # Assumed an implicit think block, but the model never closed one: it was all answer.
            self._answer = self._reasoning + self._answer
            self._reasoning = []
            answer = reasoning + answer
            reasoning = []
            self.reclassified = True
        return Delta(reasoning="".join(reasoning), answer="".join(answer))

    def _emit(self, section: Literal["reasoning", "answer"], text: str, out: list[str]) -> None:
        total = self._reasoning if section == "reasoning" else self._answer
        if not total:
            # the newline after <think> or </think> is layout, not content
            text = text.lstrip()
        if text:
            total.append(text)
            out.append(text)

    def _drain(self, reasoning: list[str], answer: list[str], *, final: bool) -> None:
        while True:
            if self._state == "start":
                head = self._buffer.lstrip()
                if head.startswith(_OPEN_TAG):
                    self._buffer = head[len(_OPEN_TAG) :]
                    self._opened = True
                    self._state = "reasoning"
                    continue
                if _OPEN_TAG.startswith(head) and not final:
                    return  # only whitespace or a partial "<thi" so far: undecided
                self._state = "reasoning" if self._starts_in_reasoning else "untagged"
                continue

            if self._state == "answer":
                self._emit("answer", self._buffer, answer)
                self._buffer = ""
                return

            at = self._buffer.find(_CLOSE_TAG)
            if at >= 0:
                before, self._buffer = self._buffer[:at], self._buffer[at + len(_CLOSE_TAG) :]
                if self._state == "untagged":
                    # The template opened the think block for the model: all so far was reasoning.
                    self._reasoning, self._answer = self._answer, []
                    reasoning.extend(answer)
                    answer.clear()
                    self.reclassified = self.reclassified or bool(self._reasoning)
                self._emit("reasoning", before, reasoning)
                self._closed = True
                self._state = "answer"
                continue

            cut = len(self._buffer) - (
                0 if final else _partial_tag_length(self._buffer, _CLOSE_TAG)
            )
            ready, self._buffer = self._buffer[:cut], self._buffer[cut:]
            if self._state == "reasoning":
                self._emit("reasoning", ready, reasoning)
            else:
                self._emit("answer", ready, answer)
            return


# ---------------------------------------------------------------------------------------------
# OpenAI-compatible servers: DeepSeek, vLLM, Ollama, llama.cpp server
# ---------------------------------------------------------------------------------------------

# Display names and key settings only; behaviour never branches on the provider.
_PROVIDER_LABELS = {
    "deepseek": "DeepSeek",
    "openai": "OpenAI",
    "vllm": "vLLM",
    "ollama": "Ollama",
    "llama.cpp": "llama.cpp",
    "openai-compatible": "The model server",
}
_PROVIDER_KEY_SETTINGS = {"deepseek": "DEEPSEEK_API_KEY", "openai": "OPENAI_API_KEY"}
_DETAIL_LIMIT = 300


class OpenAICompatibleLLM:
    """Chat completions over the OpenAI protocol, streamed, with reasoning normalised.

    ``timeout`` bounds connecting and every single read, so a server that stops sending
    mid-answer fails after ``timeout`` seconds instead of hanging the request. Retries are the
    routing layer's job, hence ``max_retries=0`` by default.
    """

    def __init__(
        self,
        *,
        id: str,
        base_url: str,
        api_key: str,
        model: str,
        provider: str = "openai-compatible",
        timeout: float = 60.0,
        max_retries: int = 0,
        starts_in_reasoning: bool = False,
    ) -> None:
        if not id:
            raise ValueError("id must not be empty")
        if not base_url:
            raise ValueError("base_url must not be empty")
        if not model:
            raise ValueError("model must not be empty")
        if not timeout > 0:
            raise ValueError(f"timeout must be positive, got {timeout!r}")
        if max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {max_retries!r}")
        # Imported here so processes that only use the local or fake model skip its import cost.
        import openai

        self.id = id
        self.base_url = base_url
        self.model = model
        self.provider = provider
        self.timeout = float(timeout)
        self.max_retries = max_retries
        self.starts_in_reasoning = starts_in_reasoning
        self._label = _PROVIDER_LABELS.get(provider, provider)
        self._key_setting = _PROVIDER_KEY_SETTINGS.get(provider, "the API key for this model")
        self._client = openai.OpenAI(
            base_url=base_url,
            # local servers often need no key, but the SDK refuses to start without one
            api_key=api_key or "unused",
            timeout=self.timeout,
            max_retries=max_retries,
        )

    def __repr__(self) -> str:
        return (
            f"OpenAICompatibleLLM(id={self.id!r}, model={self.model!r}, base_url={self.base_url!r})"
        )

    def close(self) -> None:
        self._client.close()

    def stream(
        self,
        messages: Sequence[Message],
        *,
        max_tokens: int = 1024,
        temperature: float | None = None,
    ) -> Iterator[Delta | Completion]:
        # Only role and content: DeepSeek rejects reasoning_content in the history with a 400.
        payload = [{"role": m.role, "content": m.content} for m in messages]
        options: dict[str, Any] = {}
        if temperature is not None:
            options["temperature"] = temperature
        try:
            response = self._client.chat.completions.create(
                model=self.model,
                messages=payload,  # type: ignore[arg-type]
                max_tokens=max_tokens,
                stream=True,
                stream_options={"include_usage": True},
                **options,
            )
        except Exception as exc:
            error = self._error(exc, mid_stream=False)
            if error is None:
                raise
            raise error from exc

        splitter = ThinkTagSplitter(starts_in_reasoning=self.starts_in_reasoning)
        field_reasoning: list[str] = []
        reported_model = self.model
        usage: Usage | None = None
        finish_reason: str | None = None
        try:
            for chunk in response:
                if chunk.model:
                    reported_model = chunk.model
                if chunk.usage is not None:
                    # Some servers repeat usage on every chunk: the last one is the total.
                    usage = _usage(chunk.usage)
                for choice in chunk.choices or ():
                    if choice.index != 0:
                        continue
                    delta = choice.delta
                    reasoning = ""
                    content = None
                    if delta is not None:
                        reasoning = _text_field(delta, "reasoning_content") or _text_field(
                            delta, "reasoning"
                        )
                        content = delta.content
                    piece = splitter.feed(content) if content else Delta()
                    if reasoning:
                        field_reasoning.append(reasoning)
                    if reasoning or piece.reasoning or piece.answer:
                        yield Delta(reasoning=reasoning + piece.reasoning, answer=piece.answer)
                    if choice.finish_reason:
                        finish_reason = choice.finish_reason
        except Exception as exc:
            error = self._error(exc, mid_stream=True)
            if error is None:
                raise
            raise error from exc
        finally:
            response.close()

        if finish_reason is None:
            raise LLMError(
                "incomplete",
                f"{self._label} ended the stream before finishing the answer "
                "(no finish_reason): the answer is incomplete; try again.",
            )
        tail = splitter.flush()
        if tail.reasoning or tail.answer:
            yield tail
        yield Completion(
            answer=splitter.answer.strip(),
            reasoning=("".join(field_reasoning) + splitter.reasoning).strip(),
            model=reported_model,
            provider=self.provider,
            usage=usage or Usage(),
            finish_reason=finish_reason,
        )

    def _error(self, exc: Exception, *, mid_stream: bool) -> LLMError | None:
        """Translate an SDK or transport exception into an ``LLMError``; None if it is neither."""
        import openai

        label = self._label
        if isinstance(exc, openai.APIStatusError):
            return _status_error(exc, label=label, key_setting=self._key_setting, model=self.model)
        transport = _transport_kind(exc)
        if transport is not None and mid_stream:
            cause = (
                f"no data for {self.timeout:g} s" if transport == "timeout" else "connection lost"
            )
            return LLMError(
                "incomplete",
                f"{label} stopped sending mid-answer ({cause}): the answer is incomplete; "
                "try again.",
            )
        if transport == "timeout":
            return LLMError(
                "timeout",
                f"{label} did not respond within {self.timeout:g} s: it may be overloaded; "
                "try again later or raise the timeout.",
            )
        if transport == "connection":
            return LLMError(
                "connection",
                f"{label} at {self.base_url} could not be reached: check the base URL, the "
                "network and that the server is running.",
            )
        if isinstance(exc, openai.APIError):
            # An error event inside an otherwise successful stream (vLLM does this).
            return LLMError(
                "model",
                f"{label} reported an error while generating: {_detail(exc.body, exc.message)}",
                retryable=False,
            )
        return None


def _status_error(exc: Any, *, label: str, key_setting: str, model: str) -> LLMError:
    status: int = exc.status_code
    detail = _detail(exc.body, exc.message)
    retry_after = _retry_after(exc.response.headers)
    wait = f"; retry after {retry_after:g} s" if retry_after is not None else ""
    if status in (401, 403):
        return LLMError(
            "auth",
            f"{label} rejected the API key ({status}): check {key_setting}.",
            status=status,
        )
    if status == 402:
        return LLMError(
            "payment",
            f"{label} refused the request for lack of credit ({status}: {detail}): top up the "
            "account balance or choose another model.",
            status=status,
        )
    if status == 404:
        return LLMError(
            "model",
            f"{label} does not know the model {model!r} ({status}): check the model name and "
            "the base URL.",
            status=status,
        )
    if status == 429:
        return LLMError(
            "rate_limit",
            f"{label} is rate limiting requests ({status}{wait}): slow down or try again shortly.",
            status=status,
            retry_after=retry_after,
        )
    if status == 408:
        return LLMError(
            "timeout",
            f"{label} timed out handling the request ({status}{wait}): try again.",
            status=status,
            retry_after=retry_after,
        )
    if status >= 500 or status == 409:
        state = "is overloaded" if status == 503 else "had a server error"
        return LLMError(
            "server",
            f"{label} {state} ({status}{wait}): try again shortly or choose another model.",
            status=status,
            retry_after=retry_after,
        )
    return LLMError(
        "invalid_request",
        f"{label} rejected the request as invalid ({status}: {detail}): check the model "
        "settings and parameters.",
        status=status,
    )


def _transport_kind(exc: BaseException) -> Literal["timeout", "connection"] | None:
    """Classify network failures, whether the SDK wrapped them or (older SDKs, mid-stream) not."""
    import openai

    if isinstance(exc, openai.APITimeoutError):
        return "timeout"
    if isinstance(exc, openai.APIConnectionError):
        return "connection"
    names = set()
    for cls in type(exc).__mro__:
        if cls.__module__.split(".")[0] in {"httpx", "httpx2", "httpcore"}:
            names.add(cls.__name__)
    if "TimeoutException" in names:
        return "timeout"
    if names & {"TransportError", "RequestError", "NetworkError", "ProtocolError"}:
        return "connection"
    return None


def _detail(body: object, fallback: str) -> str:
    message = body.get("message") if isinstance(body, dict) else body
    text = message if isinstance(message, str) and message else fallback
    text = " ".join(text.split())
    return text if len(text) <= _DETAIL_LIMIT else text[: _DETAIL_LIMIT - 1] + "…"


def _retry_after(headers: Any) -> float | None:
    """Seconds to wait, from ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date)."""
    raw_ms = headers.get("retry-after-ms")
    if raw_ms:
        try:
            value = float(raw_ms) / 1000
        except ValueError:
            value = math.nan
        if math.isfinite(value) and value >= 0:
            return value
    raw = headers.get("retry-after")
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(raw)
        except (TypeError, ValueError):
            return None
        return max(0.0, when.timestamp() - time.time())
    return value if math.isfinite(value) and value >= 0 else None


def _text_field(delta: Any, name: str) -> str:
    # Provider-specific fields are pydantic extras on the SDK's ChoiceDelta.
    value = getattr(delta, name, None)
    return value if isinstance(value, str) else ""


def _usage(raw: Any) -> Usage:
    details = getattr(raw, "completion_tokens_details", None)
    return Usage(
        prompt_tokens=getattr(raw, "prompt_tokens", None) or 0,
        completion_tokens=getattr(raw, "completion_tokens", None) or 0,
        reasoning_tokens=getattr(details, "reasoning_tokens", None) or 0,
    )


# ---------------------------------------------------------------------------------------------
# FakeLLM: a real implementation for tests
# ---------------------------------------------------------------------------------------------

Reply = str | Completion | BaseException


class FakeLLM:
    """Records every conversation it is sent and replays queued replies, streamed in pieces.

    A ``str`` reply is an answer without reasoning, a ``Completion`` is replayed as is (its
    reasoning streamed first), an exception is raised when the stream is read. With no reply
    left, ``default`` is answered, or a ``LookupError`` says the test forgot to queue one.
    """

    def __init__(
        self,
        replies: Iterable[Reply] = (),
        *,
        id: str = "fake",
        model: str = "fake-model",
        default: str | None = None,
    ) -> None:
        self.id = id
        self.model = model
        self.provider = "fake"
        self.default = default
        self.calls: list[tuple[Message, ...]] = []
        self.options: list[dict[str, Any]] = []
        self._replies: deque[Reply] = deque(replies)

    def queue(self, *replies: Reply) -> None:
        self._replies.extend(replies)

    def stream(
        self,
        messages: Sequence[Message],
        *,
        max_tokens: int = 1024,
        temperature: float | None = None,
    ) -> Iterator[Delta | Completion]:
        # Recorded at call time, not on first read, so a test sees the call even if unread.
        self.calls.append(tuple(messages))
        self.options.append({"max_tokens": max_tokens, "temperature": temperature})
        if self._replies:
            reply: Reply = self._replies.popleft()
        elif self.default is not None:
            reply = self.default
        else:
            raise LookupError("FakeLLM has no reply queued: pass replies=[...] or default=...")
        return self._replay(reply, messages)

    def _replay(self, reply: Reply, messages: Sequence[Message]) -> Iterator[Delta | Completion]:
        if isinstance(reply, BaseException):
            raise reply
        if isinstance(reply, str):
            completion = Completion(
                answer=reply,
                reasoning="",
                model=self.model,
                provider=self.provider,
                usage=Usage(
                    prompt_tokens=sum(_count_words(m.content) for m in messages),
                    completion_tokens=_count_words(reply),
                ),
                finish_reason="stop",
            )
        else:
            completion = reply
        for piece in _pieces(completion.reasoning):
            yield Delta(reasoning=piece)
        for piece in _pieces(completion.answer):
            yield Delta(answer=piece)
        yield completion


def _count_words(text: str) -> int:
    return len(text.split())


def _pieces(text: str, count: int = 3) -> list[str]:
    """Split at word boundaries into at most ``count`` pieces that join back to ``text``."""
    words = re.findall(r"\s*\S+\s*", text) or ([text] if text else [])
    size = max(1, math.ceil(len(words) / count))
    return ["".join(words[i : i + size]) for i in range(0, len(words), size)]
