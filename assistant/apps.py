from django.apps import AppConfig


class AssistantConfig(AppConfig):
    name = "assistant"

    def ready(self) -> None:
        from . import redaction  # noqa: F401  (registers the audit redaction handler)
