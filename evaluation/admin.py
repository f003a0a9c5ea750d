from django.contrib import admin

from .history import HEADLINE, metric_value
from .models import EvalRun


@admin.register(EvalRun)
class EvalRunAdmin(admin.ModelAdmin):
    """Runs are a record of measurements: readable here, written only by `manage.py eval`."""

    list_display = ("id", "created_at", "kind", "dataset", "questions", "headline", "gate_ok")
    list_filter = ("kind", "dataset")
    search_fields = ("dataset", "corpus_version")
    date_hierarchy = "created_at"
    readonly_fields = (
        "kind",
        "dataset",
        "questions",
        "model_ids",
        "prompt_version",
        "corpus_version",
        "corpus_description",
        "parameters",
        "metrics",
        "gate",
        "details",
        "created_at",
    )
    fields = readonly_fields

    @admin.display(description="headline")
    def headline(self, obj: EvalRun):
        """The first headline metric of its kind: hybrid recall@5, or answers correct."""
        for group, metric, label in HEADLINE.get(obj.kind, ())[:1]:
            value = metric_value(obj, group, metric)
            return "–" if value is None else f"{label} {value:.3f}"
        return "–"

    @admin.display(description="gate", boolean=True)
    def gate_ok(self, obj: EvalRun):
        return None if obj.gate is None else bool(obj.gate.get("passed"))

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
