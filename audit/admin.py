from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.template.response import TemplateResponse

from .models import AuditContent, AuditRecord
from .services import AuditError, audit_redact


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

    actions = ["redact_content"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def has_redact_permission(self, request) -> bool:
        from accounts.roles import can_manage

        return can_manage(request.user)

    @admin.action(description="Redact the content of the selected records", permissions=["redact"])
    def redact_content(self, request, queryset):
        """Asks for a reason first; the records stay in the chain, their words are replaced."""
        reason = (request.POST.get("reason") or "").strip()
        if "confirm" not in request.POST or not reason:
            return TemplateResponse(
                request,
                "admin/audit/redact.html",
                {
                    **self.admin_site.each_context(request),
                    "records": queryset.order_by("seq"),
                    "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
                    "missing_reason": "confirm" in request.POST,
                    "title": "Redact audit record content",
                },
            )
        done, skipped = 0, []
        for record in queryset.order_by("seq"):
            try:
                audit_redact(record=record, by=request.user, reason=reason)
                done += 1
            except AuditError as exc:
                skipped.append(str(exc))
        self.message_user(request, f"Redacted {done} record(s); the chain still verifies.")
        for message in skipped:
            self.message_user(request, message, level=messages.WARNING)
        return None
