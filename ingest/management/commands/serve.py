"""Serve the app on the embedded default: one process with the web server and the worker."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from ingest import services
from ingest.components import get_store
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
        import uvicorn

        from ingest.embedded import EmbeddedWorker

        try:
            get_store().ensure_collection()  # claim the embedded store now, fail clearly if taken
        except StoreLocked as exc:
            raise CommandError(str(exc)) from exc
        worker = None
        if settings.EMBEDDED_WORKER and not no_worker:
            worker = EmbeddedWorker()
            worker.start()
            resumed = services.documents_resume()
            if resumed:
                self.stderr.write(f"resumed {resumed} unfinished document(s)")
        self.stderr.write(f"serving on http://{host}:{port}/  (Ctrl+C to stop)")
        try:
            uvicorn.run(
                "config.asgi:application", host=host, port=port, workers=1, log_level="info"
            )
        finally:
            if worker is not None:
                worker.stop()
