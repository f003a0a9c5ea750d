"""A fake DeepSeek chat-completions server on 127.0.0.1, for tests and benchmarks.

It speaks the wire protocol, not a mock of the SDK, so the real ``openai`` client is exercised:
SSE framing with ``: keep-alive`` comments, ``reasoning_content`` streamed before ``content``
(with ``content: null`` meanwhile), a usage chunk with ``choices: []`` and ``[DONE]``.

Each request takes the next behaviour from a queue (``server.enqueue(...)``), or ``default``::

    with FakeDeepSeek() as server:
        server.enqueue(Reply(reasoning="Think.", answer="Paris."), ErrorResponse(429, retry_after=2))
        client = OpenAI(base_url=server.base_url, api_key="sk-test")
        ...
        assert server.requests[0]["messages"][0]["role"] == "system"
"""

from __future__ import annotations

import json
import re
import select
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

ReasoningField = Literal["reasoning_content", "reasoning", "think_tags"]


@dataclass(frozen=True)
class Reply:
    """A normal answer. A ``str`` is streamed word by word; a sequence of str chunk by chunk.

    ``reasoning_field`` picks the dialect: DeepSeek's ``reasoning_content``, vLLM/Ollama's
    ``reasoning``, or ``think_tags`` (llama.cpp style ``<think>…</think>`` inside ``content``).
    """

    answer: str | Sequence[str] = "This is the fake DeepSeek answer."
    reasoning: str | Sequence[str] = ""
    reasoning_field: ReasoningField = "reasoning_content"
    finish_reason: str = "stop"
    send_usage: bool = True  # False: behave like servers that ignore stream_options
    keep_alives: int = 2
    delay: float = 0.0  # seconds before each streamed chunk (1/30: 30 tokens/s)
    first_token_delay: float = 0.0  # seconds before the first chunk, like a model's prefill


@dataclass(frozen=True)
class ErrorResponse:
    """An HTTP error in DeepSeek's JSON error shape, optionally with a Retry-After header."""

    status: int
    message: str | None = None
    retry_after: str | None = None


@dataclass(frozen=True)
class Hang:
    """Accept the request and stop responding until the client gives up or the server stops.

    With no text, not even headers are sent; with text, the stream starts and then stalls.
    """

    answer: str | Sequence[str] = ""
    reasoning: str | Sequence[str] = ""


@dataclass(frozen=True)
class Disconnect:
    """Stream some text, then close the socket with neither finish_reason nor ``[DONE]``.

    ``graceful=True`` ends the HTTP body properly instead of cutting it mid-chunk, like a proxy
    that closes the stream cleanly but too early.
    """

    answer: str | Sequence[str] = "The answer starts but"
    reasoning: str | Sequence[str] = ""
    graceful: bool = False


@dataclass(frozen=True)
class Scripted:
    """Answer with ``fn(request_json) -> (reasoning, answer)``: a "naive model" for tests."""

    fn: Callable[[dict[str, Any]], tuple[str, str]]
    reasoning_field: ReasoningField = "reasoning_content"
    delay: float = 0.0  # as Reply's
    first_token_delay: float = 0.0  # as Reply's


Behaviour = Reply | ErrorResponse | Hang | Disconnect | Scripted


def echo_last_user(request: dict[str, Any]) -> tuple[str, str]:
    """A ``Scripted`` function that repeats the last user message."""
    users = [m.get("content", "") for m in request.get("messages", []) if m.get("role") == "user"]
    last = users[-1] if users else ""
    return ("The user said something; I repeat it.", f"You said: {last}")


_ERROR_DEFAULTS = {
    400: ("invalid_request_error", "Invalid request body format."),
    401: ("authentication_error", "Authentication Fails, Your api key: ****test is invalid"),
    402: ("unknown_error", "Insufficient Balance"),
    404: ("invalid_request_error", "Model Not Exist"),
    422: ("invalid_request_error", "Invalid max_tokens value, the valid range is [1, 8192]"),
    429: ("rate_limit_error", "Rate Limit Reached"),
    500: ("api_error", "Server Error"),
    502: ("api_error", "Bad Gateway"),
    503: ("api_error", "Server Overloaded"),
}


class FakeDeepSeek:
    """The server. Use as a context manager; ``base_url`` is ready to hand to a client."""

    def __init__(
        self,
        *,
        default: Behaviour | None = None,
        api_key: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.default: Behaviour = (
            default
            if default is not None
            else Reply(
                reasoning="The user wants a short answer.",
            )
        )
        self.api_key = api_key  # when set, other keys get DeepSeek's 401
        self.requests: list[dict[str, Any]] = []
        self.request_headers: list[dict[str, str]] = []
        self._host = host
        self._port = port
        self._queue: deque[Behaviour] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("FakeDeepSeek is not running: use it as a context manager")
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def enqueue(self, *behaviours: Behaviour) -> None:
        with self._lock:
            self._queue.extend(behaviours)

    @property
    def pending(self) -> int:
        """Queued behaviours not used yet: a test can assert all of them were consumed."""
        with self._lock:
            return len(self._queue)

    def start(self) -> FakeDeepSeek:
        if self._httpd is not None:
            return self
        self._stopping.clear()
        self._httpd = _Server((self._host, self._port), _Handler, fake=self)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fake-deepseek",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is None:
            return
        self._stopping.set()  # wakes hung handlers
        self._httpd.shutdown()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            # Idle keep-alive handlers block reading the next request; this unblocks them.
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = None
        self._thread = None

    def __enter__(self) -> FakeDeepSeek:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- used by the handler ------------------------------------------------------------------

    def _record(self, body: dict[str, Any], headers: dict[str, str]) -> None:
        with self._lock:
            self.requests.append(body)
            self.request_headers.append(headers)

    def _next(self) -> Behaviour:
        with self._lock:
            return self._queue.popleft() if self._queue else self.default


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # a hung request must not hold up shutdown
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], handler: type, *, fake: FakeDeepSeek) -> None:
        self.fake = fake
        super().__init__(address, handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients hanging up (timeouts, closed streams) are part of the tests, not failures.
        pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; Nagle would delay each reply by ~40 ms.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        fake = self.server.fake
        with fake._lock:
            fake._connections.add(self.connection)

    def finish(self) -> None:
        fake = self.server.fake
        with fake._lock:
            fake._connections.discard(self.connection)
        try:
            super().finish()
        except OSError:
            pass

    # -- routing ------------------------------------------------------------------------------

    def do_GET(self) -> None:
        if self.path.split("?")[0] in ("/models", "/v1/models"):
            models = [
                {"id": name, "object": "model", "owned_by": "deepseek"}
                for name in ("deepseek-chat", "deepseek-reasoner")
            ]
            self._send_json(200, {"object": "list", "data": models})
        else:
            self._send_error(404, "Not Found")

    def do_POST(self) -> None:
        try:
            self._chat()
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            self.close_connection = True

    def _chat(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        if self.path.split("?")[0] not in ("/chat/completions", "/v1/chat/completions"):
            self._send_error(404, "Not Found")
            return
        try:
            body = json.loads(raw or b"null")
        except ValueError:
            body = None
        if not isinstance(body, dict):
            self._send_error(400, "Invalid request body format.")
            return
        fake = self.server.fake
        fake._record(body, {k.lower(): v for k, v in self.headers.items()})

        if fake.api_key is not None and self.headers.get("Authorization") != (
            f"Bearer {fake.api_key}"
        ):
            self._send_error(401)
            return
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            self._send_error(400, "messages must be a non-empty list")
            return
        if any(isinstance(m, dict) and "reasoning_content" in m for m in messages):
            # DeepSeek refuses reasoning_content in the input history.
            self._send_error(400, "reasoning_content is not allowed in input messages")
            return

        behaviour = fake._next()
        if isinstance(behaviour, Scripted):
            reasoning, answer = behaviour.fn(body)
            behaviour = Reply(
                reasoning=reasoning,
                answer=answer,
                reasoning_field=behaviour.reasoning_field,
                delay=behaviour.delay,
                first_token_delay=behaviour.first_token_delay,
            )
        if isinstance(behaviour, ErrorResponse):
            self._send_error(behaviour.status, behaviour.message, behaviour.retry_after)
        elif isinstance(behaviour, Hang):
            self._hang(body, behaviour)
        elif isinstance(behaviour, Disconnect):
            self._disconnect(body, behaviour)
        elif body.get("stream"):
            self._stream(body, behaviour)
        else:
            self._send_json(200, _completion_json(body, behaviour))

    # -- responses ----------------------------------------------------------------------------

    def _send_json(
        self, status: int, payload: object, headers: dict[str, str] | None = None
    ) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def _send_error(
        self, status: int, message: str | None = None, retry_after: str | None = None
    ) -> None:
        kind, default_message = _ERROR_DEFAULTS.get(status, ("api_error", "Error"))
        error = {"message": message or default_message, "type": kind, "param": None, "code": None}
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        self._send_json(status, {"error": error}, headers)

    def _start_stream(self, *, closing: bool = False) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        if closing:
            # Said up front, so the client never puts this connection back in its pool: reusing
            # it after the close would turn the next request into a random connection error.
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.flush()

    def _write(self, text: str) -> None:
        data = text.encode()
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _end_stream(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _stream(self, body: dict[str, Any], reply: Reply) -> None:
        chunks = _Chunks(body)
        self._start_stream()
        for _ in range(reply.keep_alives):
            self._write(": keep-alive\n\n")
        if reply.first_token_delay:
            time.sleep(reply.first_token_delay)
        for event in chunks.text_events(reply.reasoning, reply.answer, reply.reasoning_field):
            if reply.delay:
                time.sleep(reply.delay)
            self._write(event)
        self._write(chunks.event({"content": "", "reasoning_content": None}, reply.finish_reason))
        if chunks.include_usage and reply.send_usage:
            usage = _usage(body, reply.reasoning, reply.answer)
            self._write(chunks.event(None, None, usage=usage))
        self._write("data: [DONE]\n\n")
        self._end_stream()

    def _hang(self, body: dict[str, Any], hang: Hang) -> None:
        self.close_connection = True
        if hang.answer or hang.reasoning:
            chunks = _Chunks(body)
            self._start_stream()
            for event in chunks.text_events(hang.reasoning, hang.answer, "reasoning_content"):
                self._write(event)
        stopping = self.server.fake._stopping
        while not stopping.wait(0.05):
            if _peer_closed(self.connection):
                return

    def _disconnect(self, body: dict[str, Any], cut: Disconnect) -> None:
        self.close_connection = True
        chunks = _Chunks(body)
        self._start_stream(closing=True)
        self._write(": keep-alive\n\n")
        for event in chunks.text_events(cut.reasoning, cut.answer, "reasoning_content"):
            self._write(event)
        if cut.graceful:
            self._end_stream()
        else:
            # Half an HTTP chunk, then the socket closes: the client sees a truncated body.
            self.wfile.write(b'40\r\ndata: {"id"')
            self.wfile.flush()
        self.connection.shutdown(socket.SHUT_RDWR)


class _Chunks:
    """Builds ``data: {...}`` events shaped like DeepSeek's for one response."""

    def __init__(self, body: dict[str, Any]) -> None:
        self.id = str(uuid.uuid4())
        self.created = int(time.time())
        self.model = body.get("model") or "deepseek-reasoner"
        options = body.get("stream_options") or {}
        self.include_usage = bool(options.get("include_usage"))

    def event(
        self,
        delta: dict[str, Any] | None,
        finish_reason: str | None,
        *,
        usage: dict[str, Any] | None = None,
    ) -> str:
        payload: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": "fp_fake_deepseek",
            "choices": []
            if delta is None
            else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
        }
        if self.include_usage:
            payload["usage"] = usage
        return f"data: {json.dumps(payload)}\n\n"

    def text_events(
        self,
        reasoning: str | Sequence[str],
        answer: str | Sequence[str],
        reasoning_field: ReasoningField,
    ) -> list[str]:
        reasoning_pieces = _pieces(reasoning)
        answer_pieces = _pieces(answer)
        if reasoning_field == "think_tags":
            if reasoning_pieces:
                answer_pieces = ["<think>\n", *reasoning_pieces, "\n</think>\n\n", *answer_pieces]
            reasoning_pieces = []
            reasoning_field = "reasoning_content"
        events = [self.event({"role": "assistant", "content": None, reasoning_field: ""}, None)]
        for piece in reasoning_pieces:
            events.append(self.event({"content": None, reasoning_field: piece}, None))
        for piece in answer_pieces:
            events.append(self.event({"content": piece, reasoning_field: None}, None))
        return events


def _completion_json(body: dict[str, Any], reply: Reply) -> dict[str, Any]:
    reasoning = "".join(_pieces(reply.reasoning))
    answer = "".join(_pieces(reply.answer))
    message: dict[str, Any] = {"role": "assistant", "content": answer}
    if reply.reasoning_field == "think_tags":
        if reasoning:
            message["content"] = f"<think>\n{reasoning}\n</think>\n\n{answer}"
    else:
        message[reply.reasoning_field] = reasoning or None
    return {
        "id": str(uuid.uuid4()),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model") or "deepseek-reasoner",
        "system_fingerprint": "fp_fake_deepseek",
        "choices": [
            {"index": 0, "message": message, "logprobs": None, "finish_reason": reply.finish_reason}
        ],
        "usage": _usage(body, reply.reasoning, reply.answer),
    }


def _usage(
    body: dict[str, Any], reasoning: str | Sequence[str], answer: str | Sequence[str]
) -> dict[str, Any]:
    # Words stand in for tokens: deterministic, and close enough for tests and benchmarks.
    prompt = sum(len(str(m.get("content") or "").split()) for m in body.get("messages", []))
    thought = len("".join(_pieces(reasoning)).split())
    said = len("".join(_pieces(answer)).split())
    return {
        "prompt_tokens": prompt,
        "completion_tokens": thought + said,
        "total_tokens": prompt + thought + said,
        "prompt_tokens_details": {"cached_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": thought},
        "prompt_cache_hit_tokens": 0,
        "prompt_cache_miss_tokens": prompt,
    }


def _pieces(text: str | Sequence[str]) -> list[str]:
    if isinstance(text, str):
        return re.findall(r"\s*\S+\s*", text) or ([text] if text else [])
    return [piece for piece in text if piece]


def _peer_closed(conn: socket.socket) -> bool:
    try:
        readable, _, _ = select.select([conn], [], [], 0)
        return bool(readable) and conn.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True
