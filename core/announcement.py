"""The app serving a DATA_DIR announces itself there, so that commands find it.

`manage.py serve` claims the embedded store, then announces itself in ``DATA_DIR/run/serve.json``
(``{"pid", "url", "listening", "worker"}``, readable by its owner only; ``listening`` turns
true once its port is open; ``worker`` is false under ``serve --no-worker``) and removes the file when it stops. Commands read it with `announced`;
``ingest.serving`` does their work through the announced app when it holds the store.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings


@dataclass(frozen=True)
class RunningApp:
    pid: int
    url: str
    listening: bool = False  # False: still starting (loading the model), worth waiting for
    worker: bool = True  # False: started with --no-worker, so nothing here processes uploads


def run_dir() -> Path:
    return Path(settings.DATA_DIR) / "run"


def announcement_path() -> Path:
    return run_dir() / "serve.json"


# --- the serving side --------------------------------------------------------------------------


@contextmanager
def announce(*, host: str, port: int, worker: bool = True) -> Iterator[Callable[[], None]]:
    """Announce this process as the app serving DATA_DIR (starting) for as long as the block
    runs; call the function it gives once the port is open."""
    app = RunningApp(pid=os.getpid(), url=f"http://{_loopback(host)}:{port}", worker=worker)
    path = announcement_path()
    fields = {"pid": app.pid, "url": app.url, "worker": app.worker}
    write_private(path, {**fields, "listening": False})

    def listening() -> None:
        write_private(path, {**fields, "listening": True})

    try:
        yield listening
    finally:
        current = read_json(path)
        if current is not None and current.get("pid") == app.pid:  # not a newer app's
            path.unlink(missing_ok=True)


def _loopback(host: str) -> str:
    """Where a local client reaches a server bound to ``host``."""
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


# --- the command side --------------------------------------------------------------------------


def announced() -> RunningApp | None:
    """The app announced in DATA_DIR, if its process is alive."""
    data = read_json(announcement_path())
    try:
        app = RunningApp(
            pid=int(data["pid"]),
            url=str(data["url"]),
            listening=data.get("listening") is True,
            worker=data.get("worker") is not False,
        )
    except (TypeError, KeyError, ValueError):
        return None
    return app if _alive(app.pid) else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


# --- files under DATA_DIR/run ------------------------------------------------------------------


def read_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_private(path: Path, data: dict) -> None:
    """Write ``data`` to ``path`` readable by this user only, atomically."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.parent.chmod(0o700)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.unlink(missing_ok=True)  # O_EXCL: the mode below is the file's, never an old one's
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        json.dump(data, handle)
    os.replace(temporary, path)
