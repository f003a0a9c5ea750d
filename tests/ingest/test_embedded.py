"""The embedded default as `make run` starts it: one process serving the app and running the
ingestion worker, SQLite, the folder broker and Qdrant local mode under DATA_DIR, no servers."""

import json
import sqlite3
import time
from pathlib import Path

import httpx
import pytest

from tests.docs import make_pdf
from tests.live import Server, manage
from tests.live import embedded_env as live_env

pytestmark = pytest.mark.slow


@pytest.fixture
def embedded_env(tmp_path) -> dict[str, str]:
    return live_env(tmp_path / "data")


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
        page = client.get("/search/", params={"q": "where is the assembly point"})
        assert page.status_code == 200
        assert "safety.pdf" in page.text and "#page=2" in page.text
    finally:
        log = server.stop()
    # the queued one too: a retry waiting on its countdown lives only in the old worker
    assert "resumed 2 unfinished document(s)" in log

    # the app is stopped and its lock on the store released: the CLI can open the store now
    found = json.loads(manage(embedded_env, "search", "assembly point", "--json", "-k", "1").stdout)
    assert (found["results"][0]["document"], found["results"][0]["page"]) == ("safety.pdf", 2)
