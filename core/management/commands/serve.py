"""Serve the app on the embedded default: one process with the web server and the worker.

The apps' own start-up work (the offline model's warm-up, the embedded ingestion worker, audit
retention, resuming unfinished documents) is theirs: `serve` sends core.signals and their
AppConfig.ready() connects the receivers, so this command imports none of them."""

from collections.abc import Callable

import uvicorn
from django.core.management.base import BaseCommand, CommandError

from core import announcement, signals
from core.components import get_retriever, get_store
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
        with announcement.announce(host=host, port=port, worker=not no_worker) as listening:
            self._serve(host, port, no_worker=no_worker, listening=listening)

    def _serve(
        self, host: str, port: int, *, no_worker: bool, listening: Callable[[], None]
    ) -> None:
        get_retriever().warm_up()  # the embedding model loads now, not on the first question
        signals.warming_up.send(sender=type(self))  # the offline model, in the background
        # the embedded worker, retention and resumed documents (ingest.startup)
        signals.serving.send(
            sender=type(self), host=host, port=port, worker=not no_worker, write=self.stderr.write
        )
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
            signals.serving_stopped.send(sender=type(self))
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
