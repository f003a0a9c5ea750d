"""`/healthz` and `/readyz`: what a container's health check or a load balancer asks.

- ``/healthz``: the process is up and answers. Nothing else is touched (no database), so a slow
  dependency never gets a healthy web process restarted.
- ``/readyz``: this process can serve: the database answers ``SELECT 1``, the broker accepts a
  connection, the vector store counts its passages, and at least one configured model can
  answer (an in-process one, or a server that answers its model list). 200 when all pass, 503
  otherwise, with each check's name, ``ok``, ``latency_ms`` and a short ``reason``.

Both are answered by ``HealthMiddleware``, first in ``MIDDLEWARE``: a probe from inside the
container asks for ``http://127.0.0.1:8000/readyz``, a host that ALLOWED_HOSTS rightly refuses
(CommonMiddleware calls ``request.get_host()``) and over plain HTTP, which SECURE_SSL_REDIRECT
redirects (SecurityMiddleware). Answering before them needs no host or SSL exception in the
settings, and nothing those middlewares protect is reachable this way: the answer is built here
and carries no user data, no URL and no secret (reasons are scrubbed, in the log too).

A probe runs every few seconds on every web process, so the checks are cheap and bounded: they
run in parallel on a small thread pool and the answer waits at most ``READY_TIMEOUT`` seconds; a
check still running then is reported failed, and the next probe waits for that same check
instead of starting another (a hung dependency costs one thread, not one per probe). A model
server's answer is kept for ``MODEL_PROBE_TTL`` seconds.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass
from urllib.parse import urlsplit

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse, JsonResponse

logger = logging.getLogger(__name__)

LIVENESS_PATH = "/healthz"
READINESS_PATH = "/readyz"
READY_TIMEOUT = 3.0  # seconds a readiness answer waits for its checks
CONNECT_TIMEOUT = 2.0  # seconds for the broker's and a model server's connection
MODEL_PROBE_TTL = 30.0  # seconds a model server's answer is reused
REASON_CHARS = 160


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    latency_ms: float
    reason: str


class HealthMiddleware:
    """Answers the two probe paths before any other middleware sees the request (see above)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        path = request.path_info
        if path not in (LIVENESS_PATH, READINESS_PATH):
            return self.get_response(request)
        if request.method not in ("GET", "HEAD"):
            response = JsonResponse({"error": f"method {request.method} not allowed"}, status=405)
            response["Allow"] = "GET, HEAD"
        elif path == LIVENESS_PATH:
            response = JsonResponse({"status": "ok"})
        else:
            response = readiness_response()
        response["Cache-Control"] = "no-store"
        return response


def readiness_response() -> JsonResponse:
    checks = readiness_checks()
    failed = [check.name for check in checks if not check.ok]
    body = {
        "status": "unavailable" if failed else "ok",
        "failed": failed,
        "checks": [asdict(check) for check in checks],
    }
    return JsonResponse(body, status=503 if failed else 200)


def readiness_checks(timeout: float | None = None) -> list[Check]:
    """Every check, run in parallel, each reported by the deadline."""
    timeout = READY_TIMEOUT if timeout is None else timeout
    started = {name: _start(name, probe) for name, probe in CHECKS.items()}
    wait([future for future, _ in started.values()], timeout=timeout)
    checks = []
    for name, (future, since) in started.items():
        if future.done():
            checks.append(future.result())
        else:
            waited = time.monotonic() - since
            checks.append(
                Check(name, False, round(waited * 1000, 1), f"no answer after {waited:.1f} s")
            )
    return checks


# -- running checks ------------------------------------------------------------------------------

_executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="readyz")
_running: dict[str, tuple[Future, float]] = {}
_running_lock = threading.Lock()


def _start(name: str, probe: Callable[[], str]) -> tuple[Future, float]:
    """The check's future and when it started: the one still running from an earlier probe,
    if any, else a new one."""
    with _running_lock:
        running = _running.get(name)
        if running is None or running[0].done():
            running = (_executor.submit(_timed, name, probe), time.monotonic())
            _running[name] = running
        return running


def _timed(name: str, probe: Callable[[], str]) -> Check:
    started = time.perf_counter()
    try:
        reason, ok = probe(), True
    except Exception as exc:
        reason = str(exc) if isinstance(exc, NotReady) else f"{type(exc).__name__}: {exc}"
        logger.warning("readiness check %s failed: %s", name, scrub(reason, limit=None))
        reason, ok = scrub(reason), False
    return Check(name, ok, round((time.perf_counter() - started) * 1000, 1), reason)


class NotReady(Exception):
    """A check's own refusal (its message is the reason shown)."""


# -- the checks: each returns a short reason when ready, raises when not -------------------------


def check_database() -> str:
    from django.db import connections

    connection = connections["default"]  # this pool thread's own connection
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
        return connection.vendor
    finally:
        connection.close()  # back to the pool (Postgres), or closed: no thread keeps one


def check_broker() -> str:
    from config.celery import app

    with app.connection_for_write(
        url=settings.CELERY_BROKER_URL, connect_timeout=CONNECT_TIMEOUT
    ) as connection:
        connection.ensure_connection(
            max_retries=1, interval_start=0, interval_step=0, timeout=CONNECT_TIMEOUT
        )
        connection.default_channel  # noqa: B018 - Redis: opening the channel PINGs the server
        return connection.transport_cls


def check_store() -> str:
    """The store the app searches, as it searches it (the first call builds it, embedding
    model included, like the first search would)."""
    from core.components import get_store

    store = get_store()
    return f"{type(store).__name__}, {store.count()} passages"


def check_model() -> str:
    """Ready when at least one configured model can answer; every model's state is named."""
    from assistant import llms

    results = []
    for choice in llms.available_models().values():
        if _circuit_open(choice.id):
            ok, why = False, "circuit open after repeated failures"
        else:
            ok, why = _model_state(choice.id, choice.llm)
        results.append((choice.id, ok, why))
    summary = "; ".join(f"{model_id}: {why}" for model_id, _, why in results)
    if not any(ok for _, ok, _ in results):
        raise NotReady(summary or "no model configured")
    return summary


CHECKS: dict[str, Callable[[], str]] = {
    "database": check_database,
    "broker": check_broker,
    "store": check_store,
    "model": check_model,
}


# -- models --------------------------------------------------------------------------------------

_model_states: dict[str, tuple[float, bool, str]] = {}  # id -> (checked at, ok, reason)
_model_lock = threading.Lock()


def _model_state(model_id: str, llm) -> tuple[bool, str]:
    base_url = getattr(llm, "base_url", None)
    if not base_url:  # in this process: the offline model (or a test's fake)
        gguf_path = getattr(llm, "gguf_path", "")
        if gguf_path is None:
            return False, "model file missing"
        return True, "in process"
    with _model_lock:
        cached = _model_states.get(model_id)
    if cached and time.monotonic() - cached[0] < MODEL_PROBE_TTL:
        return cached[1], cached[2]
    ok, why = _probe_server(base_url, _api_key(model_id))
    with _model_lock:
        _model_states[model_id] = (time.monotonic(), ok, why)
    return ok, why


def _circuit_open(model_id: str) -> bool:
    """What answering knows of the model: its breaker (shared between processes when the
    cache is Redis, so a provider another process found down counts here too)."""
    from assistant import llms

    try:
        return llms.breakers().get(model_id).state == "open"
    except Exception:  # the shared cache is down: the broker's check reports Redis
        logger.warning("readiness: breaker state of %s unknown", model_id, exc_info=True)
        return False


def _probe_server(base_url: str, api_key: str) -> tuple[bool, str]:
    """GET the OpenAI-compatible model list: cheap, and what every such server answers."""
    import httpx

    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        response = httpx.get(
            base_url.rstrip("/") + "/models", headers=headers, timeout=CONNECT_TIMEOUT
        )
    except httpx.HTTPError as exc:
        logger.warning("readiness: model server unreachable: %s", scrub(str(exc), limit=None))
        return False, scrub(f"unreachable ({type(exc).__name__})")
    status = response.status_code
    if status in (401, 403):
        return False, f"refused the API key (HTTP {status})"
    if status >= 500:
        return False, f"server error (HTTP {status})"
    if status == 429:
        return True, "reachable, rate limited (HTTP 429)"
    return True, f"reachable (HTTP {status})"  # a 404: a server without the list still answers


def _api_key(model_id: str) -> str:
    for entry in settings.LLMS:
        options = entry.get("OPTIONS", {})
        if options.get("id") == model_id:
            return options.get("api_key") or ""
    return ""


def reset() -> None:
    """Forget the model servers' answers (tests; a change of LLMS)."""
    with _model_lock:
        _model_states.clear()


@receiver(setting_changed)
def _on_setting_changed(*, setting: str, **kwargs) -> None:
    if setting == "LLMS":
        reset()


# -- nothing secret in an answer -----------------------------------------------------------------

_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://\S+")


def scrub(text: str, *, limit: int | None = REASON_CHARS) -> str:
    """A reason fit for an unauthenticated answer (and for the log): URLs and configured
    secrets removed, one line of at most ``limit`` characters."""
    text = _URL.sub("<url>", " ".join(str(text).split()))
    for secret in _secrets():
        text = text.replace(secret, "***")
    return text if limit is None or len(text) <= limit else text[: limit - 1] + "…"


def _secrets() -> set[str]:
    values = {settings.SECRET_KEY, getattr(settings, "QDRANT_API_KEY", "")}
    values.add(settings.RAG_VECTOR_STORE.get("OPTIONS", {}).get("api_key") or "")
    for database in settings.DATABASES.values():
        values.add(database.get("PASSWORD") or "")
    values.add(urlsplit(getattr(settings, "CELERY_BROKER_URL", "")).password or "")
    values.update(entry.get("OPTIONS", {}).get("api_key") or "" for entry in settings.LLMS)
    return {value for value in values if len(value) >= 3}
