"""/healthz and /readyz (config/health.py) against the real services: Postgres, Redis, the embedded
store, the fake model; a closed port for what is down. Both answer a probe from inside the
container (Host 127.0.0.1, plain HTTP) whatever ALLOWED_HOSTS and SECURE_SSL_REDIRECT say."""

import asyncio
import json
import os
import secrets
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml
from django.db import connections

from config import health
from core.components import get_embedder
from tests.fakes.deepseek import FakeDeepSeek
from tests.fakes.qdrant import FakeQdrant

ROOT = Path(__file__).resolve().parents[2]
PROBE = {"HTTP_HOST": "127.0.0.1:8000"}  # what the compose health check sends
CLOSED = "127.0.0.1:1"  # nothing listens on port 1


@pytest.fixture(autouse=True)
def fresh_probes():
    health.reset()
    yield
    health.reset()
    for future, _ in list(health._running.values()):
        future.result(timeout=30)  # a check left running must not answer the next test
    health._running.clear()


@pytest.fixture
def warm(fake_llm):
    """The app as it serves: the embedding model loaded, qdrant-client and openai imported
    (seconds each here), else the first probe would do it and answer "no answer after 3.0 s"
    meanwhile."""
    import openai  # noqa: F401
    import qdrant_client  # noqa: F401

    get_embedder()
    return fake_llm


def ready(client, **headers):
    response = client.get("/readyz", **(headers or PROBE))
    body = response.json()
    return response, body, {check["name"]: check for check in body["checks"]}


# -- /healthz ------------------------------------------------------------------------------------


def test_healthz_says_the_process_is_up_without_touching_the_database(client):
    """No db mark: pytest-django refuses any database access here, so this proves there is none."""
    response = client.get("/healthz", **PROBE)
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert response["Cache-Control"] == "no-store"


def test_healthz_answers_head_and_refuses_other_methods(client):
    assert client.head("/healthz", **PROBE).status_code == 200
    response = client.post("/readyz", **PROBE)
    assert response.status_code == 405 and response["Allow"] == "GET, HEAD"


def test_probes_answer_127_0_0_1_over_http_with_strict_host_and_ssl_settings(
    client, settings, warm, db
):
    """No host or SSL exception: the probes come before both middlewares."""
    settings.ALLOWED_HOSTS = ["example.com"]
    settings.SECURE_SSL_REDIRECT = True
    for host in ("127.0.0.1:8000", "localhost", "127.0.0.1"):
        assert client.get("/healthz", HTTP_HOST=host).status_code == 200
        response, body, _ = ready(client, HTTP_HOST=host)
        assert response.status_code == 200, body
    # the same settings do refuse that host everywhere else (the exception is the probes only)
    assert client.get("/login/", HTTP_HOST="127.0.0.1:8000").status_code == 400
    assert client.get("/login/", HTTP_HOST="example.com").status_code == 301  # to https


# -- /readyz -------------------------------------------------------------------------------------


def test_readyz_is_ok_when_database_broker_store_and_a_model_are(client, warm, db):
    response, body, checks = ready(client)
    assert response.status_code == 200, body
    assert body["status"] == "ok" and body["failed"] == []
    assert list(checks) == ["database", "broker", "store", "model"]
    for check in checks.values():
        assert check["ok"] is True and isinstance(check["latency_ms"], float)
        assert check["latency_ms"] < health.READY_TIMEOUT * 1000
    assert checks["database"]["reason"] == "postgresql"
    assert checks["broker"]["reason"] == "redis"
    assert checks["store"]["reason"] == "EdgeStore, 0 passages"
    assert checks["model"]["reason"] == "fake: in process"
    assert response["Cache-Control"] == "no-store"


def test_readyz_hands_its_database_connection_back_to_the_pool(client, warm, db):
    pool = connections["default"].pool
    assert pool is not None  # Postgres is pooled (DB_POOL_MAX)
    for _ in range(3):
        assert ready(client)[0].status_code == 200
    stats = pool.get_stats()
    assert stats["pool_size"] - stats["pool_available"] == 1  # this test's own, nothing else


def test_readyz_names_the_broker_when_its_port_is_closed(client, settings, warm, db):
    settings.CELERY_BROKER_URL = f"redis://:broker-s3cret@{CLOSED}/0"
    response, body, checks = ready(client)
    assert response.status_code == 503
    assert body["status"] == "unavailable" and body["failed"] == ["broker"]
    assert checks["broker"]["ok"] is False and "Connection refused" in checks["broker"]["reason"]
    assert checks["database"]["ok"] and checks["store"]["ok"] and checks["model"]["ok"]
    assert "broker-s3cret" not in response.content.decode()


def test_readyz_names_the_store_when_it_is_unavailable(client, settings, warm, db):
    settings.RAG_VECTOR_STORE = {
        "BACKEND": "rag.store.QdrantStore",
        "OPTIONS": {"url": f"http://admin:store-s3cret@{CLOSED}", "api_key": "key-s3cret"},
    }
    response, body, checks = ready(client)
    assert response.status_code == 503 and body["failed"] == ["store"]
    assert checks["store"]["reason"].startswith("StoreUnavailable: Qdrant is unreachable at <url>")
    text = response.content.decode()
    assert "s3cret" not in text and "http://" not in text


def test_readyz_is_ok_against_a_qdrant_server(client, settings, warm, db):
    with FakeQdrant() as server:
        settings.RAG_VECTOR_STORE = {
            "BACKEND": "rag.store.QdrantStore",
            "OPTIONS": {"url": server.url},
        }
        response, body, checks = ready(client)
    assert response.status_code == 200, body
    assert checks["store"]["reason"] == "QdrantStore, 0 passages"


def test_readyz_names_the_database_when_it_refuses_and_hides_its_password(
    client, warm, db, monkeypatch
):
    """The probe's thread connects anew with these settings (the shared dict every thread's
    connection reads), outside the pool, which holds connections made before."""
    params = connections.settings["default"]
    monkeypatch.setitem(params, "PORT", "1")
    monkeypatch.setitem(params, "PASSWORD", "db-s3cret")
    options = {k: v for k, v in params.get("OPTIONS", {}).items() if k != "pool"}
    monkeypatch.setitem(params, "OPTIONS", options)
    response, body, checks = ready(client)
    assert response.status_code == 503 and body["failed"] == ["database"]
    assert checks["database"]["reason"].startswith("OperationalError")
    assert "db-s3cret" not in response.content.decode()


def test_readyz_needs_one_model_that_answers(client, settings, warm, db):
    settings.LLMS = [
        {
            "BACKEND": "rag.llm.OpenAICompatibleLLM",
            "OPTIONS": {
                "id": "server",
                "base_url": f"http://{CLOSED}/v1",
                "api_key": "sk-model-s3cret",
                "model": "m",
            },
        }
    ]
    response, body, checks = ready(client)
    assert response.status_code == 503 and body["failed"] == ["model"]
    assert checks["model"]["reason"] == "server: unreachable (ConnectError)"
    assert "s3cret" not in response.content.decode()


def test_a_model_server_that_answers_makes_it_ready_and_is_asked_every_30_s_at_most(
    client, settings, warm, db, monkeypatch
):
    asked = []
    probe = health._probe_server
    monkeypatch.setattr(health, "_probe_server", lambda *args: asked.append(args) or probe(*args))
    with FakeDeepSeek() as server:
        url = server.base_url
        settings.LLMS = [
            {
                "BACKEND": "rag.llm.OpenAICompatibleLLM",
                "OPTIONS": {
                    "id": "deepseek",
                    "base_url": url,
                    "api_key": "sk-x",
                    "model": "deepseek-chat",
                },
            },
            *settings.LLMS,  # the fake model, in process
        ]
        for _ in range(3):
            response, body, checks = ready(client)
            assert response.status_code == 200, body
    assert checks["model"]["reason"] == "deepseek: reachable (HTTP 200); fake: in process"
    assert asked == [(url, "sk-x")]  # once for the three probes


def test_a_model_whose_circuit_is_open_does_not_count(client, settings, warm, db):
    """The fake model alone, its breaker tripped by answering's failures: not ready."""
    from assistant import llms

    breaker = llms.breakers().get("fake")
    for _ in range(settings.LLM_BREAKER_FAILURES):
        breaker.record_failure()
    response, body, checks = ready(client)
    assert response.status_code == 503 and body["failed"] == ["model"]
    assert checks["model"]["reason"] == "fake: circuit open after repeated failures"


def test_a_hung_check_is_reported_by_the_deadline_and_not_started_twice(
    client, warm, db, monkeypatch
):
    started = []

    def hangs():
        started.append(1)
        time.sleep(1.5)
        return "late"

    monkeypatch.setattr(health, "READY_TIMEOUT", 0.3)
    monkeypatch.setitem(health.CHECKS, "broker", hangs)
    begin = time.monotonic()
    response, body, checks = ready(client)
    second, _, again = ready(client)
    took = time.monotonic() - begin
    assert response.status_code == second.status_code == 503
    assert checks["broker"]["reason"].startswith("no answer after 0.")
    assert again["broker"]["reason"].startswith("no answer after ")
    # the second probe waited for the first one's check, which had been running longer
    assert started == [1] and again["broker"]["latency_ms"] > checks["broker"]["latency_ms"]
    assert took < 1.5


def test_the_reason_scrubs_urls_and_secrets(settings):
    settings.LLMS = [{"BACKEND": "x", "OPTIONS": {"id": "x", "api_key": "sk-abc123"}}]
    text = "failed at postgres://rag:pw@db:5432/rag with sk-abc123\nand more " + "x" * 300
    scrubbed = health.scrub(text)
    assert "pw@" not in scrubbed and "sk-abc123" not in scrubbed and "\n" not in scrubbed
    assert scrubbed.startswith("failed at <url> with *** and more")
    assert len(scrubbed) == health.REASON_CHARS


# -- through the ASGI application, and the compose health check against uvicorn -----------------


def test_probes_through_the_asgi_application(settings, warm, db):
    from config.asgi import application

    settings.ALLOWED_HOSTS = ["example.com"]
    settings.SECURE_SSL_REDIRECT = True

    async def probe():
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
            return await http.get("/healthz"), await http.get("/readyz")

    live, ready_ = asyncio.run(probe())
    assert live.status_code == 200 and live.json() == {"status": "ok"}
    assert ready_.status_code == 200, ready_.text


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _compose_web() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["web"]


@pytest.mark.django_db(transaction=True)
def test_the_compose_health_check_passes_against_uvicorn_with_two_workers(tmp_path):
    """The web container's command and health check as compose runs them, minus Docker:
    production settings with strict hosts and an SSL redirect, two uvicorn workers, the real
    Postgres and Redis, a Qdrant server (the test stand-in) and the offline model."""
    web = _compose_web()
    command = web["command"][-1].split("exec ", 1)[1]  # after migrate and collectstatic
    port = _free_port()
    command = command.replace("${WEB_WORKERS:-2}", "2").replace("--port 8000", f"--port {port}")
    check = web["healthcheck"]["test"][1:]  # ["python", "-c", ...] after "CMD"
    check = [sys.executable, check[1], check[2].replace(":8000/", f":{port}/")]
    database = connections["default"].settings_dict
    with FakeQdrant() as qdrant:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")},
            "DJANGO_SETTINGS_MODULE": "config.settings.production",
            "SECRET_KEY": secrets.token_urlsafe(50),
            "DATABASE_URL": f"postgres://{database['USER']}@{database['HOST']}:"
            f"{database['PORT']}/{database['NAME']}",
            "CELERY_BROKER_URL": os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/15"),
            "QDRANT_URL": qdrant.url,
            "ALLOWED_HOSTS": "rag.example.org",
            "SECURE_SSL_REDIRECT": "true",
            "DATA_DIR": str(tmp_path),
            "LOCAL_LLM_WARM_UP": "false",
        }
        server = subprocess.Popen(
            [sys.executable, "-m", *shlex.split(command)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + 120
            while True:  # what start_period and retries give it
                result = subprocess.run(check, capture_output=True, text=True, timeout=10)
                if result.returncode == 0 or time.monotonic() > deadline:
                    break
                assert server.poll() is None, server.stderr.read()
                time.sleep(1)
            assert result.returncode == 0, result.stderr
            # a new connection each time, as the health check makes: both workers answer
            http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5)
            http.headers["Connection"] = "close"
            streak = 0
            while streak < 10:  # until both workers have loaded the embedding model
                answer = http.get("/readyz")
                streak = streak + 1 if answer.status_code == 200 else 0
                assert time.monotonic() < deadline, answer.text
            timings = []
            for _ in range(20):  # warm, well inside the health check's timeout
                began = time.perf_counter()
                answer = http.get("/readyz")
                timings.append((time.perf_counter() - began) * 1000)
                assert answer.status_code == 200, answer.text
            body = answer.json()
            checks_ms = {c["name"]: c["latency_ms"] for c in body["checks"]}
            assert {c["name"]: c["reason"] for c in body["checks"]}["store"].startswith(
                "QdrantStore"
            )
            timings.sort()
            readyz_ms = {"p50": round(timings[9], 1), "max": round(timings[-1], 1)}
            print(json.dumps({"readyz_ms": readyz_ms, "checks_ms": checks_ms}))
            assert timings[9] < 1000
            assert http.get("/login/").status_code == 400  # strict hosts everywhere else
            http.close()
        finally:
            server.terminate()
            server.wait(timeout=30)
