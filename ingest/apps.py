from django.apps import AppConfig


class IngestConfig(AppConfig):
    name = "ingest"
    verbose_name = "Documents"

    def ready(self) -> None:
        from core import signals

        from . import startup

        signals.serving.connect(startup.start_worker, dispatch_uid="ingest.start_worker")
        signals.serving_stopped.connect(startup.stop_worker, dispatch_uid="ingest.stop_worker")
