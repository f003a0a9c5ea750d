"""Locust users for bench/load.py (run by it; not meant to be run by hand).

``Asker``: POST /api/v1/ask with "stream": true as the staff user's bearer token, one question
after another; reports "first token" (to the first ``answer`` SSE event) and "answer" (to
``done``) as custom request events. ``Uploader`` (one instance): POST /api/v1/documents, a small
new text document every few seconds, as the admin's token.

Read from the environment: LOAD_ASK_TOKEN, LOAD_ADMIN_TOKEN, LOAD_QUESTIONS (a JSON file of
questions), LOAD_SAMPLES (a JSON-lines file each finished request is appended to, so load.py
computes exact percentiles), LOAD_UPLOAD_EVERY (seconds, default 5).
"""

from __future__ import annotations

import itertools
import json
import os
import time

from locust import HttpUser, constant, events, task

ASK_TOKEN = os.environ.get("LOAD_ASK_TOKEN", "")
ADMIN_TOKEN = os.environ.get("LOAD_ADMIN_TOKEN", "")
if "LOAD_QUESTIONS" in os.environ:
    with open(os.environ["LOAD_QUESTIONS"], encoding="utf-8") as _file:
        QUESTIONS = json.load(_file)
else:
    QUESTIONS = ["What is this about?"]
_samples = open(os.environ.get("LOAD_SAMPLES", os.devnull), "a", buffering=1)  # noqa: SIM115
_questions = itertools.cycle(QUESTIONS)
_uploads = itertools.count(1)


def _sample(**fields) -> None:
    _samples.write(json.dumps(fields) + "\n")


class Asker(HttpUser):
    wait_time = constant(0)
    weight = 50

    @task
    def ask(self) -> None:
        question = next(_questions)
        started = time.perf_counter()
        first = None
        error = None
        done = None
        fire = self.environment.events.request.fire
        try:
            with self.client.post(
                "/api/v1/ask",
                json={"question": question, "stream": True},
                headers={"Authorization": f"Bearer {ASK_TOKEN}"},
                stream=True,
                catch_response=True,
                name="ask",
            ) as response:
                if response.status_code != 200:
                    error = f"HTTP {response.status_code}"
                else:
                    buffer = ""
                    for piece in response.iter_content(chunk_size=None, decode_unicode=True):
                        buffer += piece
                        while "\n\n" in buffer:
                            block, buffer = buffer.split("\n\n", 1)
                            if "data: " not in block:
                                continue
                            data = json.loads(block.split("data: ", 1)[1])
                            if data.get("event") == "answer" and first is None:
                                first = time.perf_counter() - started
                                fire(
                                    request_type="SSE",
                                    name="first token",
                                    response_time=first * 1000,
                                    response_length=0,
                                    exception=None,
                                    context={},
                                )
                            elif data.get("event") == "done":
                                done = data.get("message") or {}
                        if done is not None:
                            break
                    if done is None:
                        error = "stream ended without done"
                    elif done.get("status") == "error":
                        error = f"answer status error: {done.get('error')}"
                if error:
                    response.failure(error)
                else:
                    response.success()
        except Exception as exc:  # counted, not fatal: the benchmark measures errors too
            error = f"{type(exc).__name__}: {exc}"
        _sample(
            kind="ask",
            first_s=first,
            complete_s=time.perf_counter() - started,
            done=done is not None,
            audit_id=(done or {}).get("audit_id"),
            error=error,
        )


class Uploader(HttpUser):
    weight = 1
    fixed_count = 1
    wait_time = constant(float(os.environ.get("LOAD_UPLOAD_EVERY", "5")))

    @task
    def upload(self) -> None:
        number = next(_uploads)
        text = (
            f"Load test upload {number} at {time.time():.3f}.\n\n"
            + f"This document {number} describes shipment batch {number * 7919} "
            + "and the warehouse that received it. " * 20
        )
        with self.client.post(
            "/api/v1/documents",
            files={"file": (f"upload-{number:04d}.txt", text.encode(), "text/plain")},
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            catch_response=True,
            name="upload",
        ) as response:
            error = None
            if response.status_code not in (200, 201, 202):
                # Status 0: no response at all (response.error says why).
                error = f"HTTP {response.status_code}: {response.error or response.text[:200]!r}"
                response.failure(error)
            else:
                response.success()
        _sample(kind="upload", status=response.status_code, error=error)


@events.quitting.add_listener
def _close(**_) -> None:
    _samples.close()
