"""The app serving a DATA_DIR, seen from the commands.

The embedded vector store can be opened by one process, and `manage.py serve` holds it while it
runs. So that `search`, `ask` and `ingest` work the same whether or not the app is serving:

- `manage.py serve` claims the store, then announces itself in ``DATA_DIR/run/serve.json``
  (``core.announcement``: ``{"pid", "url", "listening", "worker"}``, readable by its owner
  only) and
  removes the file when it stops.
- A command opens the store itself (`locate`). Only when that fails because the store is held
  (`StoreLocked`, whatever the store's implementation) and a live app is announced does it do its
  work through that app's JSON API on loopback instead (`AppClient`). A held store with no app
  announced is reported as it always was.
- Through the API, the command acts as the operator ("cli", see
  `accounts.services.operator_user_get`) or as `ask --user NAME`, with an API token issued for
  the purpose the first time (recorded in the audit log, revocable in the admin site) and kept in
  ``DATA_DIR/run/tokens.json`` (owner only: whoever may read that folder may read the database
  beside it, so the file gives nobody more than they had).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser

from core.announcement import RunningApp, announced, read_json, run_dir, write_private
from core.components import get_store
from rag.store import StoreLocked, StoreUnavailable

START_WAIT = 120.0  # seconds to wait for an announced app that is still starting (model load)
POLL_INTERVAL = 0.5  # seconds between two looks at a document being ingested
FINISHED = ("ready", "failed", "duplicate")


class AppError(Exception):
    """The running app could not be reached, or refused; ``status`` is its HTTP status."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def locate(*, store_needed: bool = True) -> RunningApp | None:
    """Where a command does its work: None — here (the store is open in this process now, or
    it is not needed and no app is serving); a RunningApp — through the app holding the store.

    Raises StoreLocked when the store is held but no app is announced, and StoreUnavailable
    (when ``store_needed``) when it cannot be reached."""
    if not store_needed and announced() is None:
        return None
    try:
        get_store().ensure_collection()
    except StoreLocked:
        app = announced()
        if app is None:
            raise
        return app
    except StoreUnavailable:
        if store_needed:
            raise
    return None


class AppClient:
    """The running app's JSON API, as ``user``. Errors are AppError with the app's reason."""

    def __init__(
        self,
        app: RunningApp,
        *,
        user: AbstractBaseUser,
        notify: Callable[[str], None] = lambda message: None,
    ) -> None:
        import httpx

        self.app = app
        self.notify = notify
        headers = {"Authorization": f"Bearer {_token_for(user)}"}
        if host := _host_header(app.url):
            headers["Host"] = host
        self._http = httpx.Client(base_url=app.url, headers=headers, follow_redirects=False)

    # -- endpoints ----------------------------------------------------------------------------

    def search(self, query: str, *, k: int, collections: list[str] | None) -> dict:
        body = {"query": query, "k": k, "collections": collections}
        return self._request("POST", "/api/v1/search", json=body, read_timeout=300)

    def ask(self, question: str, *, collections: list[str] | None, model: str | None) -> dict:
        body = {"question": question, "collections": collections, "model": model}
        # The offline model may take minutes: the app decides when a model has failed.
        return self._request("POST", "/api/v1/ask", json=body, read_timeout=None)

    def upload(self, path: Path, *, collection: str) -> dict:
        with path.open("rb") as handle:
            created = self._request(
                "POST",
                "/api/v1/documents",
                data={"collection": collection},
                files={"file": (path.name, handle, "application/octet-stream")},
                read_timeout=600,
            )
        return created["documents"][0]

    def reindex(self, document_id: int) -> dict:
        return self._request("POST", f"/api/v1/documents/{document_id}/reindex", read_timeout=60)

    def document(self, document_id: int) -> dict:
        return self._request("GET", f"/api/v1/documents/{document_id}", read_timeout=60)

    def wait(self, document_id: int) -> dict:
        """Poll the document until it is ready, failed or a duplicate (the app's worker is on
        it; a long document takes as long as it takes, as with `--sync` here)."""
        while True:
            document = self.document(document_id)
            if document["status"] in FINISHED:
                return document
            time.sleep(POLL_INTERVAL)

    # -- plumbing -----------------------------------------------------------------------------

    def _request(self, method: str, path: str, *, read_timeout: float | None, **kwargs) -> dict:
        import httpx

        timeout = httpx.Timeout(10.0, read=read_timeout)
        deadline = time.monotonic() + START_WAIT
        told = False
        while True:
            for value in kwargs.get("files", {}).values():
                value[1].seek(0)  # a retried upload sends the file from its start
            try:
                response = self._http.request(method, path, timeout=timeout, **kwargs)
                break
            except httpx.ConnectError as exc:
                # Announced but not listening yet: it claims the store before it loads the
                # model and opens its port. Nothing was sent, so trying again is safe.
                now = announced()
                if now is None or now.pid != self.app.pid:
                    raise AppError(
                        f"the app that held the store (pid {self.app.pid}) has stopped; "
                        "run the command again"
                    ) from exc
                if now.listening or time.monotonic() > deadline:
                    raise AppError(f"the app at {self.app.url} does not answer: {exc}") from exc
                if not told:
                    self.notify(f"waiting for the app at {self.app.url} to start…")
                    told = True
                time.sleep(POLL_INTERVAL)
            except httpx.HTTPError as exc:
                raise AppError(f"the app at {self.app.url} did not answer: {exc}") from exc
        try:
            data = response.json()
        except ValueError:
            data = None
        if response.status_code >= 400 or not isinstance(data, dict):
            reason = data.get("error") if isinstance(data, dict) else None
            raise AppError(
                reason or f"the app answered {response.status_code} to {method} {path}",
                status=response.status_code,
            )
        return data


def _token_for(user: AbstractBaseUser) -> str:
    """The stored token of ``user`` if it is still live, else a new one (audited)."""
    from accounts.services import operator_token_issue, operator_token_valid

    path = run_dir() / "tokens.json"
    tokens = read_json(path) or {}
    username = user.get_username()
    key = tokens.get(username)
    if isinstance(key, str) and operator_token_valid(user=user, key=key):
        return key
    key = operator_token_issue(user=user, name=f"manage.py at the shell ({username})"[:100])
    write_private(path, {**tokens, username: key})
    return key


def _host_header(url: str) -> str | None:
    """A Host the app accepts when ALLOWED_HOSTS leaves out the loopback address."""
    from urllib.parse import urlsplit

    host = urlsplit(url).hostname or ""
    allowed = [h for h in settings.ALLOWED_HOSTS if h]
    if not allowed or "*" in allowed or host in allowed or (host == "::1" and "[::1]" in allowed):
        return None
    return allowed[0].lstrip(".")
