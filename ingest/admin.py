from django.contrib import admin

from . import services
from .models import Collection, Document


@admin.register(Collection)
class CollectionAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "sensitivity", "readers", "created_at")
    list_filter = ("sensitivity",)
    prepopulated_fields = {"slug": ("name",)}
    search_fields = ("name", "slug")
    filter_horizontal = ("groups",)

    @admin.display(description="readable by")
    def readers(self, collection: Collection) -> str:
        return ", ".join(g.name for g in collection.groups.all()) or "admins only"

    def save_model(self, request, obj, form, change) -> None:
        """A sensitivity change goes through the service, so it lands in the audit log."""
        wanted = obj.sensitivity
        if change:
            obj.sensitivity = Collection.objects.get(pk=obj.pk).sensitivity
        super().save_model(request, obj, form, change)
        if change:
            services.collection_sensitivity_set(collection=obj, sensitivity=wanted, by=request.user)

    def save_related(self, request, form, formsets, change) -> None:
        """Group changes go through the service, so each one lands in the audit log."""
        groups = list(form.cleaned_data.pop("groups", []))
        super().save_related(request, form, formsets, change)
        services.collection_access_set(collection=form.instance, groups=groups, by=request.user)


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
