"""The embedded default as `make run` starts it: one process serving the app and running the
ingestion worker, SQLite, the folder broker and Qdrant local mode under DATA_DIR, no servers."""

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.docs import make_pdf

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "embedded-test-pw"

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def embedded_env(tmp_path) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "CELERY_BROKER_URL", "QDRANT_URL", "EMBEDDED_WORKER"}
    }
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings.local",
        DATA_DIR=str(tmp_path / "data"),
        ADMIN_PASSWORD=PASSWORD,
        HF_HUB_OFFLINE="1",
    )
    return env


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


def wait_for_ready(client: httpx.Client, count: int, timeout: float = 180) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        documents = client.get("/api/v1/documents").json()["documents"]
        if len(documents) == count and all(
            d["status"] in ("ready", "failed", "duplicate") for d in documents
        ):
            return documents
        time.sleep(0.5)
    raise AssertionError(f"not finished: {documents}")


def test_serve_ingests_uploads_and_cli_queued_files_then_search_finds_the_page(
    embedded_env, tmp_path
):
    manage(embedded_env, "migrate", "--noinput")
    created = manage(embedded_env, "ensure_admin")
    assert "Created the first admin 'admin'" in created.stdout
    assert "password:" not in created.stdout  # ADMIN_PASSWORD was given: nothing to print

    # queued from the command line before the app runs: the app's worker picks it up
    memo = tmp_path / "memo.md"
    memo.write_text("# Canteen\n\nThe canteen serves breakfast from seven until nine.\n")
    queued = json.loads(manage(embedded_env, "ingest", str(memo), "--json").stdout)
    assert queued["status"] == "queued"

    # a document a crash left half-done, with its queue message lost: resumed at start-up
    stuck = tmp_path / "stuck.txt"
    stuck.write_text("Parking permits are renewed every January at the front desk.")
    stuck_id = json.loads(manage(embedded_env, "ingest", str(stuck), "--json").stdout)["id"]
    broker = Path(embedded_env["DATA_DIR"]) / "broker"
    messages = sorted(p for p in broker.glob("*.msg"))
    assert len(messages) == 2
    messages[-1].unlink()
    with sqlite3.connect(Path(embedded_env["DATA_DIR"]) / "db.sqlite3") as db:
        db.execute("UPDATE ingest_document SET status='embedding' WHERE id=?", (stuck_id,))

    server = Server(embedded_env)
    try:
        client = server.client()
        pdf = make_pdf(
            ["Safety manual\nGeneral rules.", "Fire safety\nAssembly point is car park B."]
        )
        response = client.post(
            "/api/v1/documents", files=[("file", ("safety.pdf", pdf, "application/pdf"))]
        )
        assert response.status_code == 202, response.text

        documents = wait_for_ready(client, 3)
        assert {d["name"]: d["status"] for d in documents} == {
            "safety.pdf": "ready",
            "memo.md": "ready",
            "stuck.txt": "ready",
        }
        page = client.get("/", params={"q": "where is the assembly point"})
        assert page.status_code == 200
        assert "safety.pdf" in page.text and "#page=2" in page.text
    finally:
        log = server.stop()
    # the queued one too: a retry waiting on its countdown lives only in the old worker
    assert "resumed 2 unfinished document(s)" in log

    # the app is stopped and its lock on the store released: the CLI can open the store now
    found = json.loads(manage(embedded_env, "search", "assembly point", "--json", "-k", "1").stdout)
    assert (found["results"][0]["document"], found["results"][0]["page"]) == ("safety.pdf", 2)


def test_a_second_process_is_told_clearly_that_the_store_is_taken(embedded_env):
    manage(embedded_env, "migrate", "--noinput")
    manage(embedded_env, "ensure_admin")
    server = Server(embedded_env)
    try:
        result = manage(embedded_env, "search", "anything", "--json", check=False)
    finally:
        server.stop()
    assert result.returncode == 1
    assert "open in another process" in result.stderr and result.stdout == ""
