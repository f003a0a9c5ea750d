from django.contrib import admin

from .models import Collection, Document


@admin.register(Collection)
class CollectionAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "created_at")
    prepopulated_fields = {"slug": ("name",)}
    search_fields = ("name", "slug")


@admin.register(Document)
class DocumentAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "collection",
        "status",
        "progress",
        "page_count",
        "chunk_count",
        "created_at",
    )
    list_filter = ("status", "collection", "media_type")
    search_fields = ("name", "sha256")
    readonly_fields = (
        "file", "media_type", "size", "sha256", "status", "stage", "progress", "page_count",
        "chunk_count", "error", "warnings", "attempts", "duplicate_of", "uploaded_by",
        "created_at", "updated_at", "started_at", "finished_at",
    )  # fmt: skip
