"""Serve the app on the embedded default: one process with the web server and the worker."""

import logging
import threading

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from audit.services import audit_apply_retention
from ingest import services
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
        import uvicorn

        from ingest.embedded import EmbeddedWorker

        try:
            get_store().ensure_collection()  # claim the embedded store now, fail clearly if taken
        except StoreLocked as exc:
            raise CommandError(str(exc)) from exc
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
        try:
            uvicorn.run(
                "config.asgi:application", host=host, port=port, workers=1, log_level="info"
            )
        finally:
            if worker is not None:
                worker.stop()


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
