"""Dependency arrows point one way: the apps may use core/ and rag/, never the reverse, and rag/
knows nothing of Django. `manage.py serve` lives in core and starts the apps' own work through
core.signals, whose receivers the apps connect in their AppConfig.ready()."""

import ast
import io
import threading
from pathlib import Path

import pytest
from django.core.management import call_command

from core import announcement, signals
from core.management.commands import serve

ROOT = Path(__file__).resolve().parents[2]
APPS = {"ingest", "assistant", "evaluation", "accounts", "audit"}
DYNAMIC = {"import_module", "import_string", "__import__"}  # a dotted path given as a literal


def imported_modules(source: str, package: str) -> set[str]:
    """Every absolute module name ``source`` imports (statements anywhere in the module, and
    literal arguments of import_module / import_string / __import__); relative imports are
    resolved against ``package``."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                names.add(".".join([*base, node.module] if node.module else base))
            else:
                names.add(node.module)
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
            first = node.args[0]
            if name in DYNAMIC and isinstance(first, ast.Constant) and isinstance(first.value, str):
                names.add(first.value.split(":")[0])
    return names


def imports_of(top: str) -> dict[str, set[str]]:
    """Module path → the top-level packages it imports, for every .py file under ``top``."""
    found = {}
    for path in sorted((ROOT / top).rglob("*.py")):
        relative = path.relative_to(ROOT)
        parts = relative.with_suffix("").parts
        package = ".".join(parts if path.name == "__init__.py" else parts[:-1])
        modules = imported_modules(path.read_text(encoding="utf-8"), package)
        found[str(relative)] = {name.split(".")[0] for name in modules}
    return found


def test_the_scan_sees_what_it_must_refuse():
    source = (
        "import os, ingest.services\n"
        "from assistant import llms\n"
        "def f():\n"
        "    from evaluation.gate import x\n"
        "    import_module('accounts.roles')\n"
        "    import_string('audit.services:audit_append')\n"
        "from . import sibling\n"
        "from ..other import y\n"
        "import ingestion\n"
    )
    tops = {name.split(".")[0] for name in imported_modules(source, "core.management")}
    assert tops == APPS | {"os", "core", "ingestion"}  # `ingestion` is not `ingest`


def test_core_and_rag_import_none_of_the_apps():
    scanned = {**imports_of("core"), **imports_of("rag")}
    assert "core/components.py" in scanned and "core/management/commands/serve.py" in scanned
    assert "rag/retrieval.py" in scanned
    offenders = {path: sorted(tops & APPS) for path, tops in scanned.items() if tops & APPS}
    assert offenders == {}


def test_rag_imports_no_django():
    offenders = sorted(path for path, tops in imports_of("rag").items() if "django" in tops)
    assert offenders == []


# --- serve and the signals --------------------------------------------------------------------


class FakeWorker:
    events: list[str] = []

    def start(self) -> None:
        self.events.append("worker started")

    def stop(self) -> None:
        self.events.append("worker stopped")


@pytest.fixture
def fake_ingest_startup(settings, monkeypatch):
    """ingest's start-up work with its effects recorded instead of done."""
    import audit.services
    import ingest.embedded
    import ingest.services

    events = FakeWorker.events = []
    settings.EMBEDDED_WORKER = True
    monkeypatch.setattr(ingest.embedded, "EmbeddedWorker", FakeWorker)
    monkeypatch.setattr(
        audit.services, "audit_apply_retention", lambda: events.append("retention") or 2
    )
    monkeypatch.setattr(ingest.services, "documents_resume", lambda: events.append("resume") or 3)
    return events


def test_ingest_starts_and_stops_its_worker_on_serve_signals(fake_ingest_startup):
    events, lines = fake_ingest_startup, []
    signals.serving.send(sender=serve.Command, host="h", port=1, worker=True, write=lines.append)
    assert events == ["worker started", "retention", "resume"]
    assert lines == [
        "retention: redacted 2 old audit record(s)",
        "resumed 3 unfinished document(s)",
    ]
    signals.serving_stopped.send(sender=serve.Command)
    assert events[-1] == "worker stopped"
    signals.serving_stopped.send(sender=serve.Command)  # a second stop stops nothing
    assert events.count("worker stopped") == 1


@pytest.mark.parametrize("embedded, flag", [(True, False), (False, True)])
def test_no_worker_means_no_ingest_start_up_work(fake_ingest_startup, settings, embedded, flag):
    settings.EMBEDDED_WORKER = embedded  # production settings, or `serve --no-worker`
    lines = []
    signals.serving.send(sender=serve.Command, host="h", port=1, worker=flag, write=lines.append)
    signals.serving_stopped.send(sender=serve.Command)
    assert fake_ingest_startup == [] and lines == []


@pytest.mark.parametrize("enabled", [True, False])
def test_the_assistant_warms_its_model_on_warming_up(settings, monkeypatch, enabled):
    import assistant.startup

    settings.LOCAL_LLM_WARM_UP = enabled
    warmed = threading.Event()
    monkeypatch.setattr(assistant.startup, "_warm_default_model", warmed.set)
    signals.warming_up.send(sender=serve.Command)
    assert warmed.wait(5 if enabled else 0.2) is enabled


class FakeRetriever:
    def __init__(self, events: list[str]) -> None:
        self.events = events

    def warm_up(self) -> None:
        self.events.append("retriever warm")


@pytest.mark.parametrize("no_worker", [False, True])
def test_serve_sends_the_signals_in_order_around_the_server(
    settings, monkeypatch, tmp_path, no_worker
):
    settings.DATA_DIR = tmp_path
    settings.EMBEDDED_WORKER = False  # the apps' receivers do nothing here
    settings.LOCAL_LLM_WARM_UP = False
    events: list[str] = []

    class FakeStore:
        def ensure_collection(self) -> None:
            events.append("store claimed")

    def run(server) -> None:
        events.append(f"server runs, announced: {announcement.announced() is not None}")
        server.started = True
        server.listening()
        assert announcement.announced().listening

    def record(name):
        def receiver(sender, **kwargs):
            assert sender is serve.Command
            events.append(name if name != "serving" else f"serving worker={kwargs['worker']}")
            if name == "serving":
                assert (kwargs["host"], kwargs["port"]) == ("127.0.0.1", 8765)
                kwargs["write"]("a line from an app")

        return receiver

    monkeypatch.setattr(serve, "get_store", FakeStore)
    monkeypatch.setattr(serve, "get_retriever", lambda: FakeRetriever(events))
    monkeypatch.setattr(serve._Server, "run", run)
    receivers = {name: record(name) for name in ("warming_up", "serving", "serving_stopped")}
    for name, receiver in receivers.items():
        getattr(signals, name).connect(receiver)
    try:
        err = io.StringIO()
        arguments = ["--port", "8765"] + (["--no-worker"] if no_worker else [])
        call_command("serve", *arguments, stderr=err)
    finally:
        for name, receiver in receivers.items():
            getattr(signals, name).disconnect(receiver)

    assert events == [
        "store claimed",
        "retriever warm",
        "warming_up",
        f"serving worker={not no_worker}",
        "server runs, announced: True",
        "serving_stopped",
    ]
    assert err.getvalue().splitlines() == [
        "a line from an app",
        "serving on http://127.0.0.1:8765/  (Ctrl+C to stop)",
    ]
    assert announcement.announced() is None  # the announcement is gone with the server
