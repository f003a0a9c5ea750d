"""The LLM layer against a real HTTP server speaking DeepSeek's protocol, via the real SDK."""

from __future__ import annotations

import email.utils
import http.client
import json
import socket
import threading
import time
from collections.abc import Iterator

import openai
import pytest

from rag.llm import (
    LLM,
    FakeLLM,
    LLMError,
    OpenAICompatibleLLM,
    ThinkTagSplitter,
    complete,
)
from rag.types import Completion, Delta, Message, Usage
from tests.fakes import (
    Disconnect,
    ErrorResponse,
    FakeDeepSeek,
    Hang,
    Reply,
    Scripted,
    echo_last_user,
)

QUESTION = [
    Message(role="system", content="Answer from the sources."),
    Message(role="user", content="What is the capital of France?"),
]


@pytest.fixture
def server() -> Iterator[FakeDeepSeek]:
    with FakeDeepSeek() as fake:
        yield fake


def deepseek(server: FakeDeepSeek, **kwargs) -> OpenAICompatibleLLM:
    options = {
        "id": "deepseek-reasoner",
        "base_url": server.base_url,
        "api_key": "sk-test",
        "model": "deepseek-reasoner",
        "provider": "deepseek",
        "timeout": 5.0,
    } | kwargs
    return OpenAICompatibleLLM(**options)


def collect(llm: LLM, messages=QUESTION, **kwargs) -> tuple[list[Delta], list[Completion]]:
    deltas: list[Delta] = []
    completions: list[Completion] = []
    for item in llm.stream(messages, **kwargs):
        (completions if isinstance(item, Completion) else deltas).append(item)
    return deltas, completions


def failure(llm: LLM) -> tuple[LLMError, list[object]]:
    """Read a stream that must fail; return the error and everything yielded before it."""
    seen: list[object] = []
    with pytest.raises(LLMError) as info:
        for item in llm.stream(QUESTION):
            seen.append(item)
    return info.value, seen


# ---------------------------------------------------------------------------------------------
# ThinkTagSplitter
# ---------------------------------------------------------------------------------------------


def split(pieces: list[str], **kwargs) -> tuple[ThinkTagSplitter, list[Delta]]:
    splitter = ThinkTagSplitter(**kwargs)
    deltas = [splitter.feed(piece) for piece in pieces] + [splitter.flush()]
    return splitter, deltas


TAGGED = "<think>\nThe user asks about France.\n</think>\n\nParis is the capital."


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 100])
def test_splitter_finds_tags_split_anywhere(size):
    pieces = [TAGGED[i : i + size] for i in range(0, len(TAGGED), size)]
    splitter, deltas = split(pieces)
    assert splitter.reasoning.strip() == "The user asks about France."
    assert splitter.answer == "Paris is the capital."
    # what was streamed is what was settled: no tag text leaks into either channel
    assert "".join(d.reasoning for d in deltas) == splitter.reasoning
    assert "".join(d.answer for d in deltas) == splitter.answer
    assert not splitter.reclassified


def test_splitter_holds_back_only_a_possible_tag():
    splitter = ThinkTagSplitter()
    assert splitter.feed("<thi") == Delta()
    assert splitter.feed("nk>Hmm</th") == Delta(reasoning="Hmm")
    assert splitter.feed("ink>Yes") == Delta(answer="Yes")
    assert splitter.flush() == Delta()


def test_splitter_passes_plain_answers_through():
    splitter, deltas = split(["The ratio is a < b", " and x <thinking> y"])
    assert splitter.answer == "The ratio is a < b and x <thinking> y"
    assert splitter.reasoning == ""
    assert "".join(d.answer for d in deltas) == splitter.answer


def test_splitter_ignores_a_think_tag_after_the_answer_started():
    splitter, _ = split(["Use the ", "<think> tag ", "sparingly."])
    assert splitter.answer == "Use the <think> tag sparingly."
    assert splitter.reasoning == ""


def test_splitter_refiles_text_before_a_lone_closing_tag_as_reasoning():
    splitter, deltas = split(["The user", " asks.\n</th", "ink>\n\nParis."])
    assert splitter.reasoning.strip() == "The user asks."
    assert splitter.answer == "Paris."
    assert splitter.reclassified  # the first deltas went out as answer text
    assert deltas[0] == Delta(answer="The user")


def test_splitter_starting_in_reasoning_streams_reasoning_before_the_closing_tag():
    splitter, deltas = split(["The user", " asks.</think>", "Paris."], starts_in_reasoning=True)
    assert [d for d in deltas if d.answer or d.reasoning] == [
        Delta(reasoning="The user"),
        Delta(reasoning=" asks."),
        Delta(answer="Paris."),
    ]
    assert not splitter.reclassified


def test_splitter_starting_in_reasoning_without_a_closing_tag_was_all_answer():
    splitter, deltas = split(["Paris ", "is the capital."], starts_in_reasoning=True)
    assert splitter.answer == "Paris is the capital."
    assert splitter.reasoning == ""
    assert splitter.reclassified


def test_splitter_keeps_an_unfinished_think_block_as_reasoning():
    splitter, _ = split(["<think>Still thinking when max_tokens hit"])
    assert splitter.reasoning == "Still thinking when max_tokens hit"
    assert splitter.answer == ""


def test_splitter_releases_a_partial_tag_at_the_end():
    splitter, deltas = split(["<thi"])
    assert splitter.answer == "<thi"
    assert deltas[-1] == Delta(answer="<thi")


def test_splitter_refuses_text_after_flush():
    splitter, _ = split(["done"])
    with pytest.raises(RuntimeError):
        splitter.feed("more")


# ---------------------------------------------------------------------------------------------
# The fake server itself: its wire format is what the client tests rely on
# ---------------------------------------------------------------------------------------------


def raw_post(server: FakeDeepSeek, body: dict) -> tuple[int, dict[str, str], str]:
    host, port = server.base_url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        conn.request(
            "POST", "/chat/completions", json.dumps(body), {"Content-Type": "application/json"}
        )
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read().decode()
    finally:
        conn.close()


def test_fake_streams_the_deepseek_wire_format(server):
    server.enqueue(Reply(reasoning="Think first.", answer="Paris."))
    body = {
        "model": "deepseek-reasoner",
        "messages": [{"role": "user", "content": "Capital?"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    status, headers, text = raw_post(server, body)

    assert status == 200
    assert headers["Content-Type"].startswith("text/event-stream")
    lines = [line for line in text.split("\n") if line]
    assert lines[0] == ": keep-alive"
    assert lines[-1] == "data: [DONE]"
    events = [json.loads(line[len("data: ") :]) for line in lines if line.startswith("data: {")]
    deltas = [e["choices"][0]["delta"] for e in events if e["choices"]]
    reasoning_deltas = [d for d in deltas if d.get("reasoning_content")]
    assert reasoning_deltas and all(d["content"] is None for d in reasoning_deltas)
    assert "".join(d["reasoning_content"] or "" for d in deltas) == "Think first."
    assert "".join(d["content"] or "" for d in deltas) == "Paris."
    finishes = [e["choices"][0]["finish_reason"] for e in events if e["choices"]]
    assert finishes[-1] == "stop" and set(finishes[:-1]) == {None}
    usage_event = events[-1]
    assert usage_event["choices"] == []
    assert usage_event["usage"]["completion_tokens_details"] == {"reasoning_tokens": 2}


def test_fake_answers_without_streaming(server):
    server.enqueue(Reply(reasoning="Think first.", answer="Paris."))
    client = openai.OpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0)
    result = client.chat.completions.create(
        model="deepseek-reasoner", messages=[{"role": "user", "content": "Capital?"}]
    )
    assert result.choices[0].message.content == "Paris."
    assert result.choices[0].message.reasoning_content == "Think first."
    assert result.usage.completion_tokens_details.reasoning_tokens == 2


def test_fake_refuses_reasoning_content_in_history_like_deepseek(server):
    body = {
        "model": "deepseek-reasoner",
        "messages": [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello", "reasoning_content": "Greet back."},
        ],
    }
    status, _, text = raw_post(server, body)
    assert status == 400
    assert "reasoning_content" in json.loads(text)["error"]["message"]


def test_fake_stops_promptly_with_a_request_hanging():
    fake = FakeDeepSeek().start()
    fake.enqueue(Hang())
    llm = deepseek(fake, timeout=30.0)
    errors: list[BaseException] = []

    def ask() -> None:
        try:
            complete(llm, QUESTION)
        except BaseException as exc:
            errors.append(exc)

    client = threading.Thread(target=ask, daemon=True)
    client.start()
    deadline = time.monotonic() + 5
    while not fake.requests and time.monotonic() < deadline:
        time.sleep(0.01)
    assert fake.requests, "the request never reached the server"

    started = time.monotonic()
    fake.stop()
    assert time.monotonic() - started < 2
    client.join(timeout=5)
    assert not client.is_alive()
    # the server hung up without answering: a connection failure, never a Completion
    assert len(errors) == 1 and isinstance(errors[0], LLMError)
    assert (errors[0].kind, errors[0].retryable) == ("connection", True)


# ---------------------------------------------------------------------------------------------
# OpenAICompatibleLLM: the DeepSeek dialect
# ---------------------------------------------------------------------------------------------


def test_reasoning_streams_before_the_answer_and_is_normalised(server):
    server.enqueue(
        Reply(reasoning="The sources say Paris.", answer="Paris is the capital of France [1].")
    )
    deltas, completions = collect(deepseek(server))

    assert len(completions) == 1
    done = completions[0]
    assert done.answer == "Paris is the capital of France [1]."
    assert done.reasoning == "The sources say Paris."
    assert done.model == "deepseek-reasoner"
    assert done.provider == "deepseek"
    assert done.finish_reason == "stop"
    # several pieces, reasoning strictly before answer, and they add up to the completion
    kinds = ["r" if d.reasoning else "a" for d in deltas]
    assert len(deltas) > 4 and kinds == sorted(kinds, reverse=True)
    assert "".join(d.reasoning for d in deltas) == done.reasoning
    assert "".join(d.answer for d in deltas) == done.answer


def test_completion_is_the_last_item(server):
    items = list(deepseek(server).stream(QUESTION))
    assert isinstance(items[-1], Completion)
    assert not any(isinstance(item, Completion) for item in items[:-1])


def test_usage_includes_reasoning_tokens(server):
    server.enqueue(Reply(reasoning="one two three", answer="four five"))
    done = complete(deepseek(server), QUESTION)
    prompt_words = sum(len(m.content.split()) for m in QUESTION)
    assert done.usage == Usage(prompt_tokens=prompt_words, completion_tokens=5, reasoning_tokens=3)
    assert server.requests[0]["stream_options"] == {"include_usage": True}


def test_servers_that_send_no_usage_still_complete(server):
    server.enqueue(Reply(answer="Paris.", send_usage=False))
    done = complete(deepseek(server), QUESTION)
    assert done.answer == "Paris."
    assert done.usage == Usage()


def test_a_reasoning_free_answer_has_empty_reasoning(server):
    server.enqueue(Reply(reasoning="", answer="Paris."))
    done = complete(deepseek(server), QUESTION)
    assert (done.reasoning, done.answer) == ("", "Paris.")


def test_finish_reason_length_is_reported(server):
    server.enqueue(Reply(reasoning="Long thought", answer="Paris", finish_reason="length"))
    assert complete(deepseek(server), QUESTION).finish_reason == "length"


def test_history_carries_role_and_content_only(server):
    history = [
        *QUESTION,
        Message(role="assistant", content="Paris [1]."),
        Message(role="user", content="And of Italy?"),
    ]
    server.enqueue(Reply(reasoning="Earlier I reasoned a lot.", answer="Rome."))
    complete(deepseek(server), history, max_tokens=77, temperature=0.2)

    sent = server.requests[0]
    assert sent["messages"] == [{"role": m.role, "content": m.content} for m in history]
    assert sent["model"] == "deepseek-reasoner"
    assert sent["stream"] is True
    assert sent["max_tokens"] == 77
    assert sent["temperature"] == 0.2


def test_temperature_is_left_to_the_server_by_default(server):
    complete(deepseek(server), QUESTION)
    assert "temperature" not in server.requests[0]


def test_scripted_server_answers_from_what_it_was_sent(server):
    server.enqueue(Scripted(echo_last_user))
    done = complete(deepseek(server), QUESTION)
    assert done.answer == "You said: What is the capital of France?"
    assert done.reasoning


def test_the_api_key_is_sent_as_a_bearer_token():
    with FakeDeepSeek(api_key="sk-right") as fake:
        assert complete(deepseek(fake, api_key="sk-right"), QUESTION).answer
        error, _ = failure(deepseek(fake, api_key="sk-wrong"))
    assert fake.request_headers[0]["authorization"] == "Bearer sk-right"
    assert error.kind == "auth"


# ---------------------------------------------------------------------------------------------
# Other dialects: vLLM / Ollama `reasoning`, llama.cpp `<think>` in content
# ---------------------------------------------------------------------------------------------


def test_vllm_reasoning_field_is_normalised(server):
    server.enqueue(
        Reply(reasoning="Check the sources.", answer="Paris.", reasoning_field="reasoning")
    )
    deltas, [done] = collect(deepseek(server, provider="vllm"))
    assert (done.reasoning, done.answer) == ("Check the sources.", "Paris.")
    assert "".join(d.reasoning for d in deltas) == "Check the sources."


def test_think_tags_in_content_are_normalised(server):
    server.enqueue(
        Reply(reasoning="Check the sources.", answer="Paris.", reasoning_field="think_tags")
    )
    deltas, [done] = collect(deepseek(server, provider="llama.cpp"))
    assert (done.reasoning, done.answer) == ("Check the sources.", "Paris.")
    assert not any("think>" in d.answer + d.reasoning for d in deltas)


def test_think_tags_split_across_stream_chunks(server):
    pieces = ["<thi", "nk>\nCheck the", " sources.\n</th", "ink>", "\n\nPar", "is."]
    server.enqueue(Reply(answer=pieces, reasoning_field="think_tags"))
    deltas, [done] = collect(deepseek(server, provider="llama.cpp"))
    assert (done.reasoning, done.answer) == ("Check the sources.", "Paris.")
    assert "".join(d.answer for d in deltas) == "Paris."


def test_reasoning_with_only_a_closing_tag(server):
    server.enqueue(
        Reply(answer=["Check the", " sources.</think>", "Paris."], reasoning_field="think_tags")
    )
    server.enqueue(
        Reply(answer=["Check the", " sources.</think>", "Paris."], reasoning_field="think_tags")
    )

    done = complete(deepseek(server), QUESTION)
    assert (done.reasoning, done.answer) == ("Check the sources.", "Paris.")

    deltas, [done] = collect(deepseek(server, starts_in_reasoning=True))
    assert (done.reasoning, done.answer) == ("Check the sources.", "Paris.")
    assert "".join(d.answer for d in deltas) == "Paris."


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "kind", "retryable", "hint"),
    [
        (400, "invalid_request", False, "Invalid request body format"),
        (401, "auth", False, "DEEPSEEK_API_KEY"),
        (402, "payment", False, "top up"),
        (404, "model", False, "'deepseek-reasoner'"),
        (422, "invalid_request", False, "max_tokens"),
        (429, "rate_limit", True, "try again"),
        (500, "server", True, "try again"),
        (502, "server", True, "try again"),
        (503, "server", True, "overloaded"),
    ],
)
def test_http_errors_become_classified_llm_errors(server, status, kind, retryable, hint):
    server.enqueue(ErrorResponse(status))
    error, seen = failure(deepseek(server))
    assert (error.kind, error.status, error.retryable) == (kind, status, retryable)
    assert error.user_message.startswith("DeepSeek ")
    assert f"({status}" in error.user_message
    assert hint in error.user_message
    assert error.retry_after is None
    assert seen == []


def test_auth_error_message_tells_what_to_do(server):
    server.enqueue(ErrorResponse(401))
    error, _ = failure(deepseek(server))
    assert error.user_message == "DeepSeek rejected the API key (401): check DEEPSEEK_API_KEY."
    assert str(error) == error.user_message


def test_other_providers_are_named_in_messages(server):
    server.enqueue(ErrorResponse(401))
    error, _ = failure(deepseek(server, provider="vllm"))
    assert error.user_message.startswith("vLLM rejected the API key")
    assert "DEEPSEEK_API_KEY" not in error.user_message


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_seconds_are_parsed(server, status):
    server.enqueue(ErrorResponse(status, retry_after="7"))
    error, _ = failure(deepseek(server))
    assert error.retry_after == 7.0
    assert error.retryable
    assert "retry after 7 s" in error.user_message


def test_retry_after_http_date_is_parsed(server):
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    server.enqueue(ErrorResponse(429, retry_after=when))
    error, _ = failure(deepseek(server))
    assert error.retry_after is not None and 25 <= error.retry_after <= 31


def test_unparseable_retry_after_is_ignored(server):
    server.enqueue(ErrorResponse(429, retry_after="soon"))
    error, _ = failure(deepseek(server))
    assert error.kind == "rate_limit" and error.retry_after is None


def test_sdk_retries_stay_off_by_default(server):
    server.enqueue(ErrorResponse(503), Reply(answer="Too late."))
    error, _ = failure(deepseek(server))
    assert error.kind == "server"
    assert len(server.requests) == 1


def test_sdk_retries_can_be_enabled(server):
    server.enqueue(ErrorResponse(503, retry_after="0"), Reply(answer="Second time lucky."))
    done = complete(deepseek(server, max_retries=1), QUESTION)
    assert done.answer == "Second time lucky."
    assert len(server.requests) == 2


def test_a_hung_server_times_out(server):
    server.enqueue(Hang())
    started = time.monotonic()
    error, seen = failure(deepseek(server, timeout=0.5))
    elapsed = time.monotonic() - started
    assert error.kind == "timeout"
    assert error.retryable
    assert "0.5 s" in error.user_message
    assert 0.4 < elapsed < 3
    assert seen == []


def test_a_stream_that_stalls_mid_answer_times_out_as_incomplete(server):
    server.enqueue(Hang(reasoning="Thinking", answer="Paris is"))
    started = time.monotonic()
    error, seen = failure(deepseek(server, timeout=0.5))
    assert time.monotonic() - started < 3
    assert error.kind == "incomplete" and error.retryable
    assert "".join(d.answer for d in seen) == "Paris is"
    assert not any(isinstance(item, Completion) for item in seen)


@pytest.mark.parametrize("graceful", [False, True], ids=["socket-cut", "early-eof"])
def test_a_broken_stream_is_incomplete_not_a_completion(server, graceful):
    server.enqueue(Disconnect(reasoning="Thinking", answer="Paris is", graceful=graceful))
    error, seen = failure(deepseek(server))
    assert error.kind == "incomplete"
    assert error.retryable
    assert error.user_message.startswith("DeepSeek ")
    assert "".join(d.answer for d in seen) == "Paris is"
    assert not any(isinstance(item, Completion) for item in seen)


def test_nothing_listening_is_a_connection_error():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    llm = OpenAICompatibleLLM(
        id="local", base_url=f"http://127.0.0.1:{port}/v1", api_key="", model="m", timeout=2
    )
    error, _ = failure(llm)
    assert error.kind == "connection"
    assert error.retryable
    assert f"127.0.0.1:{port}" in error.user_message


def test_the_server_survives_a_reader_that_stops_early(server):
    server.enqueue(Reply(reasoning="a b c d e f", answer="g h i j"))
    llm = deepseek(server)
    stream = llm.stream(QUESTION)
    next(stream)
    stream.close()
    assert complete(llm, QUESTION).answer


@pytest.mark.parametrize(
    "kwargs",
    [{"timeout": 0}, {"max_retries": -1}, {"model": ""}, {"base_url": ""}],
)
def test_bad_settings_are_refused_up_front(kwargs):
    options = {"id": "x", "base_url": "http://127.0.0.1:9/v1", "api_key": "k", "model": "m"}
    with pytest.raises(ValueError):
        OpenAICompatibleLLM(**(options | kwargs))


# ---------------------------------------------------------------------------------------------
# FakeLLM
# ---------------------------------------------------------------------------------------------


def test_fake_llm_records_calls_and_replays_replies():
    scripted = Completion(
        answer="Rome is the capital [2].",
        reasoning="Source 2 is about Italy.",
        model="scripted",
        provider="fake",
        usage=Usage(prompt_tokens=3, completion_tokens=9, reasoning_tokens=4),
        finish_reason="stop",
    )
    llm = FakeLLM(replies=["Paris is the capital [1].", scripted])

    first_deltas, [first] = collect(llm)
    follow_up = [*QUESTION, Message(role="assistant", content=first.answer)]
    second_deltas, [second] = collect(llm, follow_up, max_tokens=50)

    assert llm.calls == [tuple(QUESTION), tuple(follow_up)]
    assert llm.options[1] == {"max_tokens": 50, "temperature": None}
    assert first.answer == "Paris is the capital [1]."
    assert (first.provider, first.finish_reason) == ("fake", "stop")
    assert first.usage.completion_tokens == 5
    assert len(first_deltas) > 1
    assert "".join(d.answer for d in first_deltas) == first.answer
    assert second is scripted
    assert "".join(d.reasoning for d in second_deltas) == scripted.reasoning
    assert "".join(d.answer for d in second_deltas) == scripted.answer


def test_fake_llm_raises_queued_exceptions_when_read():
    llm = FakeLLM(replies=[LLMError("rate_limit", "Slow down.", status=429, retry_after=1.0)])
    stream = llm.stream(QUESTION)
    assert len(llm.calls) == 1  # recorded even before the stream is read
    with pytest.raises(LLMError) as info:
        list(stream)
    assert (info.value.kind, info.value.retryable, info.value.retry_after) == (
        "rate_limit",
        True,
        1.0,
    )


def test_fake_llm_without_replies_says_so_or_uses_its_default():
    with pytest.raises(LookupError):
        FakeLLM().stream(QUESTION)
    llm = FakeLLM(default="I don't know.")
    assert complete(llm, QUESTION).answer == "I don't know."
    assert complete(llm, QUESTION).answer == "I don't know."
    assert len(llm.calls) == 2


def test_fake_llm_queue_appends():
    llm = FakeLLM()
    llm.queue("one", "two")
    assert [complete(llm, QUESTION).answer for _ in range(2)] == ["one", "two"]


# ---------------------------------------------------------------------------------------------
# One contract, every implementation
# ---------------------------------------------------------------------------------------------


@pytest.fixture(params=["fake", "openai-compatible"])
def any_llm(request, server) -> LLM:
    reasoning, answer = "Source 1 names Paris.", "Paris is the capital [1]."
    if request.param == "fake":
        return FakeLLM(
            replies=[Completion(answer=answer, reasoning=reasoning, model="fake", provider="fake")]
        )
    server.enqueue(Reply(reasoning=reasoning, answer=answer))
    return deepseek(server)


def test_contract_deltas_then_one_completion(any_llm):
    assert isinstance(any_llm, LLM)
    assert any_llm.id and any_llm.model and any_llm.provider
    items = list(any_llm.stream(QUESTION, max_tokens=64))
    *deltas, done = items
    assert isinstance(done, Completion)
    assert all(isinstance(d, Delta) for d in deltas)
    assert done.answer == "Paris is the capital [1]."
    assert done.reasoning == "Source 1 names Paris."
    assert "".join(d.answer for d in deltas) == done.answer
    assert "".join(d.reasoning for d in deltas) == done.reasoning
