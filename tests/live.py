"""A real app process for end-to-end tests: `manage.py` commands and `manage.py serve` (ASGI,
uvicorn) on a free port, as `make run` starts it, with an HTTP client logged in as the admin."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "embedded-test-pw"

# Debian's chromium, driven by Playwright (which cannot download its own browsers here).
CHROMIUM = "/usr/bin/chromium"
# Chromium's own background traffic is refused on this closed network; keep it quiet.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def embedded_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of the embedded default: no server URLs, everything under data_dir."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "CELERY_BROKER_URL", "QDRANT_URL", "EMBEDDED_WORKER"}
    }
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings.local",
        DATA_DIR=str(data_dir),
        ADMIN_PASSWORD=PASSWORD,
        HF_HUB_OFFLINE="1",
        LOCAL_LLM_WARM_UP="false",  # no test here asks the offline model; don't load it
        **extra,
    )
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def manage(env, *args, check=True) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result


class Server:
    def __init__(self, env) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(Path(env["DATA_DIR"]) / f"serve-{self.port}.log", "w+")  # noqa: SIM115
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "serve", "--port", str(self.port)],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.output()
            try:
                if httpx.get(f"{self.url}/login/", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.3)
        raise AssertionError("the app did not start:\n" + self.output())

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read()

    def client(self) -> httpx.Client:
        client = httpx.Client(base_url=self.url, timeout=30, follow_redirects=False)
        client.get("/login/")
        response = client.post(
            "/login/",
            data={
                "username": "admin",
                "password": PASSWORD,
                "csrfmiddlewaretoken": client.cookies["csrftoken"],
            },
            headers={"Referer": f"{self.url}/login/"},
        )
        assert response.status_code == 302, "login failed"
        client.headers["X-CSRFToken"] = client.cookies["csrftoken"]
        client.headers["Referer"] = f"{self.url}/documents/"
        return client

    def stop(self) -> str:
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise
        return self.output()


# Run in `manage.py shell` of the app under test, before it serves (the embedded store is opened
# by one process at a time). The real pipeline answers; only the offline model is replaced by a
# FakeLLM that says it is the offline model, so its unverified answer is handled as the offline
# model's is (quoted instead, or withheld) without loading the model or depending on what it says.
_OFFLINE_ANSWERS = """
import json
from django.conf import settings
from django.contrib.auth import get_user_model
from assistant import llms, services
settings.ANSWER_CACHE = False
user = get_user_model().objects.get(username="admin")
results = []
for question, answer in CASES:
    settings.LLMS = [{"BACKEND": "rag.llm.FakeLLM", "LABEL": "Offline model (scripted)",
                      "RESIDENCY": "internal", "OPTIONS": {"id": "local", "default": answer}}]
    llms.reset_models()
    llms.model_get("local").llm.provider = "local"
    message = services.answer_question(user=user, question=question)
    results.append({"conversation_id": message.conversation_id, "status": message.status})
print("RESULTS " + json.dumps(results))
"""


def answer_offline(env, cases: list[tuple[str, str]]) -> list[dict]:
    """Ask each question as admin with the offline model scripted to answer ``answer``; return
    ``{"conversation_id", "status"}`` per case."""
    code = f"CASES = {cases!r}\n" + _OFFLINE_ANSWERS
    out = manage(env, "shell", "-c", code).stdout
    line = next(line for line in out.splitlines() if line.startswith("RESULTS "))
    return json.loads(line.removeprefix("RESULTS "))


# --- Celery worker processes sharing this test's database and broker -------------------------


def database_url(settings) -> str:
    """The test database this process uses (pytest-django's ``test_<name>``), for another
    process to connect to."""
    db = settings.DATABASES["default"]
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def worker_env(settings, data_dir: Path, **extra: str) -> dict[str, str]:
    """A worker's environment, as production configures one: this test's database and broker,
    its own DATA_DIR, and none of this process's store or storage settings unless ``extra``
    gives them."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AWS_", "S3_", "QDRANT_")) and key != "STORAGE_BACKEND"
    }
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings.test",
        DATA_DIR=str(data_dir),
        DATABASE_URL=database_url(settings),
        CELERY_BROKER_URL=settings.CELERY_BROKER_URL,
        EMBEDDED_WORKER="false",
        HF_HUB_OFFLINE="1",
        **extra,
    )
    return env


def celery_worker_command(hostname: str) -> list[str]:
    """`celery -A config worker` as production starts it, one task at a time."""
    return [
        sys.executable, "-m", "celery", "-A", "config", "worker", "--pool=solo",
        "--loglevel=INFO", "--without-gossip", "--without-mingle", f"--hostname={hostname}@%h",
    ]  # fmt: skip


class CeleryWorker:
    """One worker process configured by its environment only, its output in ``log_path``."""

    def __init__(self, name: str, *, env: dict[str, str], log_path: Path) -> None:
        self.name = name
        self.log = open(log_path, "w+")  # noqa: SIM115  (closed by stop())
        self.process = subprocess.Popen(
            celery_worker_command(f"{name}-{uuid.uuid4().hex[:8]}"),
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read()

    def alive(self) -> None:
        assert self.process.poll() is None, f"{self.name} died:\n{self.output()}"

    def wait_ready(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.alive()
            if " ready." in self.output():
                return
            time.sleep(0.2)
        raise AssertionError(f"{self.name} did not start:\n{self.output()}")

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # warm shutdown
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.log.close()
