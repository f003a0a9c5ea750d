from django.contrib import admin

from .models import Conversation, Message


class ReadOnlyAdmin(admin.ModelAdmin):
    """Answers are a record: the admin may read them, not rewrite or delete them (not even a
    superuser: the audit log refers to them). A user deletes their own conversations in the
    chat (`conversation_delete`)."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class MessageInline(admin.TabularInline):
    model = Message
    fields = ("role", "status", "content", "model", "created_at")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True


@admin.register(Conversation)
class ConversationAdmin(ReadOnlyAdmin):
    list_display = ("title", "user", "created_at", "updated_at")
    search_fields = ("title", "user__username")
    inlines = [MessageInline]


@admin.register(Message)
class MessageAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "role", "status", "llm_id", "model", "short")
    list_filter = ("role", "status", "llm_id")
    search_fields = ("content", "question")

    @admin.display(description="content")
    def short(self, message: Message) -> str:
        return message.content[:80]
