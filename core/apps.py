from django.apps import AppConfig


class CoreConfig(AppConfig):
    """Component wiring (core.components) and `manage.py serve`: every app may depend on core,
    core depends on none of them (tests/core/test_wiring.py keeps it so)."""

    name = "core"
    verbose_name = "Core"
