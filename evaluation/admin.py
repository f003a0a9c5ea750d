from django.contrib import admin

from .models import EvalRun


@admin.register(EvalRun)
class EvalRunAdmin(admin.ModelAdmin):
    """Runs are a record of measurements: readable here, written only by `manage.py eval`."""

    list_display = ("id", "created_at", "kind", "dataset", "questions", "hybrid_mrr", "gate_ok")
    list_filter = ("kind", "dataset")
    search_fields = ("dataset", "corpus_version")
    date_hierarchy = "created_at"
    readonly_fields = (
        "kind",
        "dataset",
        "questions",
        "corpus_version",
        "corpus_description",
        "parameters",
        "metrics",
        "gate",
        "created_at",
    )
    fields = readonly_fields

    @admin.display(description="hybrid mrr@10")
    def hybrid_mrr(self, obj: EvalRun):
        return (obj.metrics or {}).get("hybrid", {}).get("mrr@10")

    @admin.display(description="gate", boolean=True)
    def gate_ok(self, obj: EvalRun):
        return None if obj.gate is None else bool(obj.gate.get("passed"))

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
