"""`search`, `ask` and `ingest` while the app serves the same DATA_DIR (ingest.serving): the app
holds the embedded store, so the commands go through its JSON API, with the same output and exit
codes as without it; a command that cannot answer leaves nothing in the audit log."""

import io
import json
import os
import sqlite3
import stat
from pathlib import Path

import pytest
from django.contrib.auth.models import Group
from django.core.management import CommandError, call_command

from accounts.models import ApiToken
from accounts.services import operator_user_get
from assistant.models import Conversation
from audit.models import AuditRecord
from core import announcement
from ingest import serving
from ingest.models import Document
from ingest.services import collection_access_set
from tests.docs import make_pdf
from tests.fakes.deepseek import FakeDeepSeek, Scripted
from tests.live import Server, embedded_env, free_port, manage

RESULT_KEYS = {
    "rank", "chunk_id", "document_id", "document", "page", "score", "text", "section", "kind"
}  # fmt: skip
ASK_KEYS = {"answer", "citations", "status", "reasoning", "model", "route", "audit_id"}
INGEST_KEYS = {"id", "name", "collection", "status", "pages", "chunks", "error"}


def run_json(*args) -> dict:
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO())
    return json.loads(out.getvalue())


# --- the pieces, in this process --------------------------------------------------------------


@pytest.mark.django_db
class TestSearchApi:
    def test_answers_what_the_search_command_prints(self, admin_client, handbook):
        local = run_json("search", "receipts deadline", "--json", "-k", "3")

        response = admin_client.post(
            "/api/v1/search",
            {"query": "receipts deadline", "k": 3},
            content_type="application/json",
        )

        assert response.status_code == 200
        assert set(response.json()) == {"results", "latency_ms"}
        assert response.json()["results"] == local["results"]
        assert set(local["results"][0]) == RESULT_KEYS

    def test_searches_only_collections_the_user_may_read(self, client, staff_user, handbook):
        collection_access_set(
            collection=handbook.collection, groups=[Group.objects.create(name="hr")]
        )
        client.force_login(staff_user)  # not in "hr"
        response = client.post(
            "/api/v1/search",
            {"query": "receipts", "collection": "general"},
            content_type="application/json",
        )
        assert response.status_code == 200
        assert response.json()["results"] == []

    @pytest.mark.parametrize(
        ("body", "error"),
        [
            ({}, '"query"'),
            ({"query": "x", "k": 0}, '"k"'),
            ({"query": "x", "k": True}, '"k"'),
            ({"query": "x", "collections": "general"}, '"collections"'),
        ],
    )
    def test_bad_requests_are_400_with_a_reason(self, admin_client, body, error):
        response = admin_client.post("/api/v1/search", body, content_type="application/json")
        assert response.status_code == 400
        assert error in response.json()["error"]

    def test_needs_a_login(self, client):
        assert client.post("/api/v1/search", {"query": "x"}).status_code == 401


@pytest.mark.django_db
def test_ask_that_cannot_open_the_store_leaves_no_trace(settings):
    """Before, the failed question was recorded as an "error" answer (conversation, audit)."""
    settings.RAG_VECTOR_STORE = {
        "BACKEND": "rag.store.QdrantStore",
        "OPTIONS": {"url": f"http://127.0.0.1:{free_port()}", "timeout": 2},  # nothing there
    }
    records, conversations = AuditRecord.objects.count(), Conversation.objects.count()

    out = io.StringIO()
    with pytest.raises(CommandError) as error:
        call_command("ask", "When are receipts due?", "--json", stdout=out)

    assert error.value.returncode == 1
    assert "unreachable" in str(error.value)
    assert out.getvalue() == ""
    assert AuditRecord.objects.count() == records
    assert Conversation.objects.count() == conversations


def test_announce_writes_an_owner_only_file_and_removes_it(settings, tmp_path):
    settings.DATA_DIR = tmp_path
    with announcement.announce(host="0.0.0.0", port=8123) as listening:
        path = tmp_path / "run" / "serve.json"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        assert announcement.announced() == announcement.RunningApp(
            pid=os.getpid(), url="http://127.0.0.1:8123", listening=False
        )
        listening()
        assert announcement.announced().listening
    assert not path.exists()
    assert announcement.announced() is None


def test_an_announcement_left_by_a_dead_process_is_ignored(settings, tmp_path):
    settings.DATA_DIR = tmp_path
    (tmp_path / "run").mkdir()
    dead = os.fork()
    if dead == 0:
        os._exit(0)
    os.waitpid(dead, 0)
    (tmp_path / "run" / "serve.json").write_text(json.dumps({"pid": dead, "url": "http://x"}))
    assert announcement.announced() is None
    assert serving.locate() is None  # the store is free: the command opens it itself


@pytest.mark.django_db
def test_ingest_sync_refuses_an_app_serving_without_its_worker_and_sends_nothing(
    settings, tmp_path, monkeypatch
):
    settings.DATA_DIR = tmp_path
    with announcement.announce(host="127.0.0.1", port=1, worker=False):
        app = announcement.announced()
    assert app.worker is False
    monkeypatch.setattr(serving, "locate", lambda **kwargs: app)  # as when the app holds the store
    memo = tmp_path / "memo.txt"
    memo.write_text("Quarterly figures are published each April.")

    with pytest.raises(CommandError, match=r"runs without its worker .*nothing was sent") as error:
        call_command("ingest", str(memo), "--sync", stdout=io.StringIO(), stderr=io.StringIO())
    assert error.value.returncode == 1
    assert not Document.objects.exists()


@pytest.mark.django_db
def test_the_operator_token_is_issued_once_audited_and_replaced_when_revoked(settings, tmp_path):
    settings.DATA_DIR = tmp_path
    app = announcement.RunningApp(pid=os.getpid(), url="http://127.0.0.1:1")
    operator = operator_user_get()

    serving.AppClient(app, user=operator)
    serving.AppClient(app, user=operator)  # reuses the stored token

    tokens = tmp_path / "run" / "tokens.json"
    assert stat.S_IMODE(tokens.stat().st_mode) == 0o600
    assert ApiToken.objects.filter(user=operator).count() == 1
    issued = AuditRecord.objects.filter(kind="token.issue")
    assert [r.payload["user"] for r in issued] == ["cli"]

    ApiToken.objects.update(revoked_at="2020-01-01T00:00:00Z")
    serving.AppClient(app, user=operator)
    assert ApiToken.objects.filter(user=operator, revoked_at__isnull=True).count() == 1
    assert AuditRecord.objects.filter(kind="token.issue").count() == 2


# --- the real thing: `manage.py serve` and commands in other processes -----------------------


def audit_count(data_dir: Path) -> int:
    with sqlite3.connect(data_dir / "db.sqlite3") as db:
        return db.execute("SELECT COUNT(*) FROM audit_auditrecord").fetchone()[0]


def answer_with_citation(request: dict) -> tuple[str, str]:
    return ("The first source says it.", "Breakfast is served from seven until nine [1].")


@pytest.mark.slow
def test_search_ask_and_ingest_work_the_same_while_the_app_serves(tmp_path):
    data_dir = tmp_path / "data"
    with FakeDeepSeek(default=Scripted(answer_with_citation), api_key="sk-test") as deepseek:
        env = embedded_env(
            data_dir,
            DEEPSEEK_API_KEY="sk-test",
            DEEPSEEK_BASE_URL=deepseek.base_url,
            ANSWER_CACHE="false",  # each ask is answered, not replayed
            MAX_UPLOAD_MB="1",
        )
        manage(env, "migrate", "--noinput")
        manage(env, "ensure_admin")
        memo = tmp_path / "canteen.md"
        memo.write_text("# Canteen\n\nThe canteen serves breakfast from seven until nine.\n")
        safety = tmp_path / "safety.pdf"
        safety.write_bytes(
            make_pdf(["Safety manual\nGeneral rules.", "Fire safety\nAssembly point: car park B."])
        )

        big = tmp_path / "big.txt"
        big.write_text("word " * 250_000)  # over MAX_UPLOAD_MB: the app would refuse it (413)

        server = Server(env)
        try:
            announced = json.loads((data_dir / "run" / "serve.json").read_text())
            assert announced == {
                "pid": server.process.pid,
                "url": server.url,
                "listening": True,
                "worker": True,
            }

            # ingest --sync: uploaded through the API, processed by the app's worker, waited for
            ingested = manage(env, "ingest", str(memo), str(safety), str(big), "--sync", "--json")
            lines = [json.loads(line) for line in ingested.stdout.splitlines()]
            assert [(d["name"], d["status"]) for d in lines] == [
                ("canteen.md", "ready"),
                ("safety.pdf", "ready"),
                ("big.txt", "failed"),  # recorded with the reason, as without the app
            ], lines
            assert all(set(d) == INGEST_KEYS for d in lines)
            assert lines[1]["pages"] == 2
            assert "MAX_UPLOAD_MB" in lines[2]["error"]

            served_search = manage(env, "search", "assembly point", "--json", "-k", "2")
            batch = tmp_path / "queries.jsonl"
            batch.write_text('{"id": "q1", "query": "breakfast"}\n')
            served_batch = manage(env, "search", "--batch", str(batch), "-k", "1", "--json")
            records = audit_count(data_dir)
            served_ask = manage(env, "ask", "When is breakfast served?", "--json")
            assert audit_count(data_dir) == records + 1  # the answer, recorded by the app

            # A store held by a process that announces no app: a clear failure, no record.
            serve_json = data_dir / "run" / "serve.json"
            saved = serve_json.read_bytes()
            serve_json.unlink()
            failed_ask = manage(env, "ask", "When is breakfast served?", "--json", check=False)
            serve_json.write_bytes(saved)
            assert failed_ask.returncode == 1
            assert "open in another process" in failed_ask.stderr and failed_ask.stdout == ""
            assert audit_count(data_dir) == records + 1
        finally:
            server.stop()
        assert not (data_dir / "run" / "serve.json").exists()

        # The same commands with the app stopped: this process opens the store itself.
        local_search = manage(env, "search", "assembly point", "--json", "-k", "2")
        local_ask = manage(env, "ask", "When is breakfast served?", "--json")

    served, local = json.loads(served_search.stdout), json.loads(local_search.stdout)
    assert set(served) == set(local) == {"results", "latency_ms"}
    assert served["results"] == local["results"]
    assert (local["results"][0]["document"], local["results"][0]["page"]) == ("safety.pdf", 2)
    assert json.loads(served_batch.stdout)["results"][0]["document"] == "canteen.md"

    served, local = json.loads(served_ask.stdout), json.loads(local_ask.stdout)
    assert set(served) == set(local) >= ASK_KEYS
    for answer in (served, local):
        assert answer["status"] == "answered"
        assert answer["answer"] == "Breakfast is served from seven until nine [1]."
        assert [(c["document"], c["verdict"]) for c in answer["citations"]] == [
            ("canteen.md", "supported")
        ]
    assert local["audit_id"] == served["audit_id"] + 1  # the failed one left no record between
