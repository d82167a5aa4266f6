from django.contrib import admin

from search.models import Embedding, EmbeddingSpace, Item


@admin.register(Item)
class ItemAdmin(admin.ModelAdmin):
    list_display = ("id", "title", "modality", "collection", "embedding_status", "hidden", "pinned", "created_at")
    list_filter = ("modality", "embedding_status", "hidden", "pinned", "collection")
    search_fields = ("title", "text", "sha256")
    readonly_fields = (
        "sha256", "mime_type", "byte_size", "width", "height", "duration", "sample_rate",
        "embedding_status", "embedding_error", "created_at", "updated_at",
    )


@admin.register(EmbeddingSpace)
class EmbeddingSpaceAdmin(admin.ModelAdmin):
    list_display = ("name", "dimension", "metric", "identity", "created_at")
    readonly_fields = ("name", "identity", "dimension", "metric", "modalities", "created_at")

    def has_add_permission(self, request):
        # Spaces come from settings; the database only mirrors them.
        return False


@admin.register(Embedding)
class EmbeddingAdmin(admin.ModelAdmin):
    list_display = ("id", "item", "space", "segment_start", "segment_end")
    list_filter = ("space",)
    raw_id_fields = ("item",)
    readonly_fields = ("item", "space", "vector", "segment_start", "segment_end")
