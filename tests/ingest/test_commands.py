"""`manage.py ingest` and `manage.py search`, held to the JSON contract in ARCHITECTURE.md."""

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from ingest.models import Document
from rag.chunking import CHUNKER_VERSION
from tests.docs import make_pdf

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
INGEST_KEYS = {"id", "name", "collection", "status", "pages", "chunks", "error"}
RESULT_KEYS = {
    "rank", "chunk_id", "document_id", "document", "page", "score", "text", "section", "kind"
}  # fmt: skip


def run(*args) -> list[dict]:
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO())
    return [json.loads(line) for line in out.getvalue().splitlines()]


@pytest.fixture
def corpus(tmp_path) -> Path:
    folder = tmp_path / "corpus"
    (folder / "policies" / "old").mkdir(parents=True)
    (folder / "policies" / "travel.pdf").write_bytes(
        make_pdf(
            [
                "Introduction\nThis document describes company travel.",
                "Expenses\nHotel receipts must be submitted within thirty days.",
            ]
        )
    )
    (folder / "policies" / "old" / "security.md").write_text(
        "# Security\n\nLaptops lock their screen after five minutes.\n"
    )
    (folder / "broken.pdf").write_bytes(b"%PDF-1.7\n" + b"\x00garbage" * 10)
    (folder / "notes.xyz").write_text("not a supported extension: skipped in folders")
    (folder / ".hidden").mkdir()
    (folder / ".hidden" / "secret.txt").write_text("hidden folders are skipped")
    return folder


class TestIngest:
    def test_sync_json_lines_one_per_document(self, corpus):
        lines = run("ingest", str(corpus), "--sync", "--json", "--collection", "policies")

        assert all(set(line) >= INGEST_KEYS for line in lines)
        by_name = {line["name"]: line for line in lines}
        assert sorted(by_name) == ["broken.pdf", "security.md", "travel.pdf"]
        travel = by_name["travel.pdf"]
        assert (travel["status"], travel["pages"], travel["collection"]) == ("ready", 2, "policies")
        assert travel["chunks"] >= 2 and travel["error"] is None
        assert by_name["security.md"]["pages"] is None
        assert by_name["broken.pdf"]["status"] == "failed"
        assert "corrupt or truncated PDF" in by_name["broken.pdf"]["error"]

    def test_same_file_again_is_a_duplicate(self, corpus):
        path = str(corpus / "policies" / "travel.pdf")
        (first,) = run("ingest", path, "--sync", "--json")
        (again,) = run("ingest", path, "--sync", "--json")

        assert again["status"] == "duplicate" and again["duplicate_of"] == first["id"]
        assert again["chunks"] == first["chunks"]

    def test_without_sync_it_queues(self, corpus, django_capture_on_commit_callbacks):
        with django_capture_on_commit_callbacks() as queued:
            (line,) = run("ingest", str(corpus / "policies" / "travel.pdf"), "--json")

        assert line["status"] == "queued"
        assert len(queued) == 1
        assert Document.objects.get(pk=line["id"]).status == "queued"

    def test_reindex_processes_the_uploaded_originals_again(self, corpus):
        first = run("ingest", str(corpus), "--sync", "--json", "--collection", "policies")
        ids = {line["name"]: line["id"] for line in first}
        # as if indexed by an older chunker: --outdated picks exactly those
        Document.objects.filter(pk=ids["travel.pdf"]).update(chunker_version="1")

        outdated = run("ingest", "--reindex", "--outdated", "--sync", "--json")
        assert [(line["id"], line["status"]) for line in outdated] == [(ids["travel.pdf"], "ready")]
        travel = Document.objects.get(pk=ids["travel.pdf"])
        assert travel.chunker_version == CHUNKER_VERSION

        again = run("ingest", "--reindex", "--collection", "policies", "--sync", "--json")
        # every finished document with its original, the failed one too (it may parse now)
        assert sorted(line["name"] for line in again) == ["broken.pdf", "security.md", "travel.pdf"]
        assert {line["name"]: line["status"] for line in again}["broken.pdf"] == "failed"

    def test_reindex_without_sync_queues_for_the_worker(
        self, corpus, django_capture_on_commit_callbacks
    ):
        run("ingest", str(corpus / "policies" / "travel.pdf"), "--sync", "--json")
        with django_capture_on_commit_callbacks() as queued:
            (line,) = run("ingest", "--reindex", "--json")
        assert line["status"] == "queued" and len(queued) == 1

    @pytest.mark.parametrize(
        "args, message",
        [
            (["--reindex", "x.pdf"], "takes no PATH"),
            ([], "at least one PATH"),
            (["x.pdf", "--outdated"], "goes with --reindex"),
            (["--reindex", "--collection", "nope"], "no collection 'nope'"),
        ],
    )
    def test_reindex_usage_errors(self, args, message):
        with pytest.raises(CommandError, match=message) as error:
            call_command("ingest", *args, stdout=io.StringIO())
        assert error.value.returncode == 2

    def test_missing_path_is_a_usage_error(self, tmp_path):
        with pytest.raises(CommandError, match="no such file or folder") as error:
            call_command("ingest", str(tmp_path / "missing.pdf"), stdout=io.StringIO())
        assert error.value.returncode == 2


class TestSearch:
    def test_json_shape_and_physical_page(self, corpus):
        run("ingest", str(corpus), "--sync", "--json")

        (output,) = run("search", "deadline for hotel receipts", "--json", "-k", "3")

        assert set(output) == {"results", "latency_ms"}
        assert isinstance(output["latency_ms"], float | int)
        top = output["results"][0]
        assert set(top) == RESULT_KEYS
        assert (top["rank"], top["document"], top["page"]) == (1, "travel.pdf", 2)
        assert isinstance(top["document_id"], int) and "thirty days" in top["text"]
        assert len(output["results"]) <= 3

    def test_collection_filter(self, corpus):
        run(
            "ingest",
            str(corpus / "policies" / "travel.pdf"),
            "--sync",
            "--json",
            "--collection",
            "travel",
        )
        run(
            "ingest",
            str(corpus / "policies" / "old"),
            "--sync",
            "--json",
            "--collection",
            "security",
        )

        (output,) = run("search", "receipts", "--json", "--collection", "security")

        assert {r["document"] for r in output["results"]} == {"security.md"}

    def test_batch_reads_and_writes_json_lines(self, corpus, tmp_path):
        run("ingest", str(corpus), "--sync", "--json")
        batch = tmp_path / "queries.jsonl"
        batch.write_text(
            '{"id": "q1", "query": "screen lock"}\n\n'
            "not json\n"
            '{"id": 7, "query": "hotel receipts"}\n'
        )

        lines = run("search", "--batch", str(batch), "-k", "2", "--json")

        assert [line["id"] for line in lines] == ["q1", None, 7]
        assert lines[0]["results"][0]["document"] == "security.md"
        assert "bad line" in lines[1]["error"] and lines[1]["line"] == 3
        assert lines[2]["results"][0]["page"] == 2
        assert all(set(r) == RESULT_KEYS for r in lines[2]["results"])

    @pytest.mark.parametrize(
        "args",
        [(), ("query", "--batch", "x.jsonl"), ("query", "-k", "0")],
        ids=["nothing", "both", "k-zero"],
    )
    def test_bad_arguments_exit_2(self, args):
        with pytest.raises(CommandError) as error:
            call_command("search", *args, stdout=io.StringIO())
        assert error.value.returncode == 2


def test_exit_codes_and_clean_stdout_in_a_real_process(tmp_path):
    """The contract as a script sees it: exit 2 on bad arguments, nothing but JSON on stdout."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.local",
        "DATA_DIR": str(tmp_path),
    }
    env.pop("DATABASE_URL", None)
    env.pop("CELERY_BROKER_URL", None)

    def manage(*args):
        return subprocess.run(
            [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True
        )

    assert manage("migrate", "--noinput").returncode == 0
    bad = manage("ingest", str(tmp_path / "nope.pdf"), "--json")
    assert bad.returncode == 2 and "no such file" in bad.stderr and bad.stdout == ""

    document = tmp_path / "memo.txt"
    document.write_text("The cafeteria opens at eight.")
    done = manage("ingest", str(document), "--sync", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["status"] == "ready"

    found = manage("search", "when does the cafeteria open", "--json")
    assert found.returncode == 0, found.stderr
    assert json.loads(found.stdout)["results"][0]["document"] == "memo.txt"
