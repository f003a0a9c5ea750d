"""Server-sent events from the synchronous answering pipeline, and verdicts on an answer's
sentences while it streams.

Under ASGI (uvicorn, `make run`), Django buffers a *synchronous* streaming iterator completely
before sending it, which would defeat token streaming; so the pipeline runs on its own thread and
hands events to an async iterator. Under WSGI and in the test client a plain generator streams
fine. If the browser goes away, the thread still finishes, so the answer is recorded all the same.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Sequence

import numpy as np
from django.core.handlers.asgi import ASGIRequest
from django.db import close_old_connections, connections
from django.http import HttpRequest, StreamingHttpResponse

from rag import citations as verifier
from rag.embedding import Embedder
from rag.types import ScoredChunk

logger = logging.getLogger(__name__)


def sse(event: dict) -> bytes:
    return f"event: {event['event']}\ndata: {json.dumps(event, ensure_ascii=False)}\n\n".encode()


def sse_response(
    request: HttpRequest,
    events: Callable[[], Iterator],
    *,
    frame: Callable[[object], bytes] = sse,
) -> StreamingHttpResponse:
    """``frame``: how one event is written (the OpenAI-compatible endpoint writes its own)."""
    if isinstance(request, ASGIRequest):
        body = _threaded(events, frame)
    else:
        body = (frame(e) for e in events())
    response = StreamingHttpResponse(body, content_type="text/event-stream; charset=utf-8")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # nginx: pass tokens through as they come
    return response


async def _threaded(
    events: Callable[[], Iterator], frame: Callable[[object], bytes]
) -> AsyncIterator[bytes]:
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()
    finished = object()

    def produce() -> None:
        close_old_connections()
        try:
            for event in events():
                loop.call_soon_threadsafe(queue.put_nowait, frame(event))
        except BaseException as exc:  # surfaced to the response below
            loop.call_soon_threadsafe(queue.put_nowait, exc)
        finally:
            connections.close_all()  # this thread's connections die with it
            loop.call_soon_threadsafe(queue.put_nowait, finished)

    threading.Thread(target=produce, name="answer-stream", daemon=True).start()
    while (item := await queue.get()) is not finished:
        if isinstance(item, BaseException):
            raise item
        yield item


# A sentence can only have ended where one of these is; until the text after the last settled
# sentence holds one, a new piece cannot complete anything and the answer is not re-read.
_BOUNDARY = re.compile(r"[.!?\u2026\n|]")
# What a sentence starts with that does not yet show a new sentence has begun: markers still
# arriving after the previous full stop ("… travel. [1" / "… travel. [1]") belong to it.
_LEADING_MARKERS = re.compile(r"^(?:\s*\[[^\]\n]*\]?)*\s*")


class LiveVerdicts:
    """Verdicts on an answer's cited sentences as they complete, while the answer streams.

    A sentence is complete when a later one has started (its words, not just markers arriving
    after the full stop). Each complete sentence with markers is verified on its own against
    the prompt's sources, one embedding call per sentence, so the reader sees its chips marked
    long before the whole answer is judged. The verdicts are advisory: the answer's recorded
    verdicts come from verifying the whole answer at the end (they are what ``done`` carries).
    """

    def __init__(self, *, sources: Sequence[ScoredChunk], embedder: Embedder | None) -> None:
        self.sources = sources
        self.embedder = _Remembering(embedder) if embedder is not None else None
        self.text = ""
        self._settled = 0  # end of the last complete sentence in self.text
        self._count = 0  # complete sentences before self._settled
        self._failed = False

    def feed(self, piece: str) -> Iterator[dict]:
        """Take the next piece of answer text; yield a ``verdict`` event for each cited
        sentence it completes: ``{"event": "verdict", "index", "start", "end", "sentence",
        "citations": [{"marker", "verdict", "score"}]}`` (``index``: the sentence's position
        in the answer; ``start``/``end``: its offsets in the answer streamed so far, in code
        points; ``sentence``: its text without markers or markdown)."""
        self.text += piece
        if self._failed or not piece.strip() or not _BOUNDARY.search(self.text, self._settled):
            return
        # Only the text after the last complete sentence is read again: re-reading the whole
        # answer on every piece would cost quadratic time on long answers.
        base = self._settled
        sentences = verifier.parse_markers(self.text[base:])
        started = [i for i, s in enumerate(sentences) if _LEADING_MARKERS.sub("", s.text)]
        complete = sentences[: started[-1]] if started else []
        for sentence in complete:
            index = self._count
            self._count += 1
            self._settled = base + sentence.end
            if not sentence.markers:
                continue
            try:
                report = verifier.verify_citations(
                    answer=sentence.text, sources=self.sources, embedder=self.embedder
                )
            except Exception:  # advisory only: the answer goes on, verified at the end
                logger.exception("verifying a streamed sentence failed")
                self._failed = True
                return
            yield {
                "event": "verdict",
                "index": index,
                "start": base + sentence.start,
                "end": base + sentence.end,
                "sentence": sentence.claim,
                "citations": [
                    {"marker": c.marker, "verdict": c.verdict, "score": round(c.score, 4)}
                    for c in report.citations
                ],
            }


class _Remembering:
    """An embedder that embeds each text once: the sentences of one answer cite the same few
    passages, whose candidate spans would otherwise be embedded again for every sentence (about
    ten times the cost of the sentence itself)."""

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder
        self.dimension = embedder.dimension
        self.name = getattr(embedder, "name", "")
        self._vectors: dict[str, np.ndarray] = {}

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        missing = list(dict.fromkeys(t for t in texts if t not in self._vectors))
        if missing:
            vectors = np.asarray(self.embedder.embed(missing), dtype=np.float32)
            self._vectors.update(zip(missing, vectors, strict=True))
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return np.stack([self._vectors[t] for t in texts])
