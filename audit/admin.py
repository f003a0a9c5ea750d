from django.contrib import admin

from .models import AuditContent, AuditRecord


class AuditContentInline(admin.TabularInline):
    model = AuditContent
    fk_name = "record"
    fields = ("field", "value", "redacted_at", "redacted_by", "redaction_reason")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(AuditRecord)
class AuditRecordAdmin(admin.ModelAdmin):
    """The log is a record: admins may read it, nobody may add, change or delete through here
    (redaction has its own service, which records itself in the chain)."""

    list_display = ("seq", "created_at", "kind", "actor_name", "subject")
    list_filter = ("kind", ("created_at", admin.DateFieldListFilter))
    search_fields = ("=seq", "subject", "actor_name")
    date_hierarchy = "created_at"
    ordering = ("-seq",)
    readonly_fields = (
        "seq",
        "kind",
        "actor",
        "actor_name",
        "subject",
        "created_at",
        "payload",
        "commitments",
        "prev_hash",
        "hash",
    )
    fields = readonly_fields
    inlines = [AuditContentInline]
    show_full_result_count = False  # a COUNT(*) over millions of rows on every page is wasted

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
