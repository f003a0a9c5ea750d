"""Server-sent events from the synchronous answering pipeline.

Under ASGI (uvicorn, `make run`), Django buffers a *synchronous* streaming iterator completely
before sending it, which would defeat token streaming; so the pipeline runs on its own thread and
hands events to an async iterator. Under WSGI and in the test client a plain generator streams
fine. If the browser goes away, the thread still finishes, so the answer is recorded all the same.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Callable, Iterator

from django.core.handlers.asgi import ASGIRequest
from django.db import close_old_connections, connections
from django.http import HttpRequest, StreamingHttpResponse


def sse(event: dict) -> bytes:
    return f"event: {event['event']}\ndata: {json.dumps(event, ensure_ascii=False)}\n\n".encode()


def sse_response(
    request: HttpRequest, events: Callable[[], Iterator[dict]]
) -> StreamingHttpResponse:
    body = _threaded(events) if isinstance(request, ASGIRequest) else (sse(e) for e in events())
    response = StreamingHttpResponse(body, content_type="text/event-stream; charset=utf-8")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # nginx: pass tokens through as they come
    return response


async def _threaded(events: Callable[[], Iterator[dict]]) -> AsyncIterator[bytes]:
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()
    finished = object()

    def produce() -> None:
        close_old_connections()
        try:
            for event in events():
                loop.call_soon_threadsafe(queue.put_nowait, sse(event))
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
