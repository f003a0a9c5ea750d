from django.apps import AppConfig


class AssistantConfig(AppConfig):
    name = "assistant"

    def ready(self) -> None:
        from core import signals
        from ingest.services import document_changed_hooks

        from . import redaction  # noqa: F401  (registers the audit redaction handler)
        from .cache import cache_drop_document
        from .startup import warm_default_model

        if cache_drop_document not in document_changed_hooks:
            document_changed_hooks.append(cache_drop_document)
        signals.warming_up.connect(warm_default_model, dispatch_uid="assistant.warm_default_model")
