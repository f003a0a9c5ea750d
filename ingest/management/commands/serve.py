"""Serve the app on the embedded default: one process with the web server and the worker."""

import logging
import threading
from collections.abc import Callable

import uvicorn
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from audit.services import audit_apply_retention
from ingest import services, serving
from ingest.components import get_retriever, get_store
from rag.store import StoreLocked


class Command(BaseCommand):
    help = "Serve the app (ASGI, uvicorn); on the embedded default also run the ingestion worker."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument(
            "--no-worker", action="store_true", help="do not start the in-process worker"
        )

    def handle(self, *args, host: str, port: int, no_worker: bool, **options):
        try:
            get_store().ensure_collection()  # claim the embedded store now, fail clearly if taken
        except StoreLocked as exc:
            raise CommandError(str(exc)) from exc
        # From the claim on, search, ask and ingest run meanwhile find the app here and go
        # through it (waiting while it starts) instead of failing on the held store.
        with serving.announce(host=host, port=port) as listening:
            self._serve(host, port, no_worker=no_worker, listening=listening)

    def _serve(
        self, host: str, port: int, *, no_worker: bool, listening: Callable[[], None]
    ) -> None:
        from ingest.embedded import EmbeddedWorker

        get_retriever().warm_up()  # the embedding model loads now, not on the first question
        if settings.LOCAL_LLM_WARM_UP:
            threading.Thread(target=_warm_default_model, name="warm-model", daemon=True).start()
        worker = None
        if settings.EMBEDDED_WORKER and not no_worker:
            worker = EmbeddedWorker()
            worker.start()
            redacted = audit_apply_retention()  # what beat does daily in production
            if redacted:
                self.stderr.write(f"retention: redacted {redacted} old audit record(s)")
            resumed = services.documents_resume()
            if resumed:
                self.stderr.write(f"resumed {resumed} unfinished document(s)")
        self.stderr.write(f"serving on http://{host}:{port}/  (Ctrl+C to stop)")
        server = _Server(
            uvicorn.Config(
                "config.asgi:application", host=host, port=port, workers=1, log_level="info"
            ),
            listening=listening,
        )
        try:
            server.run()  # what uvicorn.run does, with a word when the port is open
        except KeyboardInterrupt:
            pass
        finally:
            if worker is not None:
                worker.stop()
        if not server.started:
            raise CommandError(f"could not serve on {host}:{port} (see the log above)")


class _Server(uvicorn.Server):
    """uvicorn's server, which says when its port is open (commands wait for that)."""

    def __init__(self, config: uvicorn.Config, *, listening: Callable[[], None]) -> None:
        super().__init__(config)
        self.listening = listening

    async def startup(self, sockets=None) -> None:
        await super().startup(sockets)
        if self.started:
            self.listening()


def _warm_default_model() -> None:
    """Load the offline model in the background (seconds from its cache, ~35 s the first time)
    so the first question does not wait for it; an API model needs nothing."""
    from assistant import llms

    try:
        model = llms.model_get()
        warm_up = getattr(model.llm, "warm_up", None)
        if warm_up is not None:
            warm_up()
    except Exception:  # the first question will report it with a clear message
        logging.getLogger(__name__).exception("could not load the default model")
