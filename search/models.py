"""The stored world: items, the embedding spaces they are mapped into, and their vectors.

Every space shares one `Embedding` table. pgvector's HNSW index needs a fixed dimension,
so each space gets its own partial expression index (`(vector::vector(dim)) WHERE
space_id = ...`), built by search.spaces when the space is registered; queries cast the
column the same way so the planner can use it.
"""

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVector, SearchVectorField
from django.db import models
from django.db.models import Q
from pgvector.django import VectorField


class Modality(models.TextChoices):
    TEXT = "text", "Text"
    IMAGE = "image", "Image"
    AUDIO = "audio", "Audio"


class EmbeddingStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


def media_path(item: "Item", filename: str) -> str:
    # Content-addressed, sharded by hash prefix: stable, collision-free, and no user-chosen names on disk.
    extension = filename.rsplit(".", 1)[-1].lower() if "." in filename else "bin"
    return f"items/{item.sha256[:2]}/{item.sha256}.{extension}"


def preview_path(item: "Item", filename: str) -> str:
    return f"previews/{item.sha256[:2]}/{item.sha256}.png"


class Item(models.Model):
    modality = models.CharField(max_length=8, choices=Modality.choices)
    title = models.CharField(max_length=300, blank=True)
    # The body of a text item, or the caption of an image or audio item.
    text = models.TextField(blank=True)
    media = models.FileField(upload_to=media_path, max_length=300, blank=True)
    # Thumbnail for images; waveform preview for audio.
    preview = models.FileField(upload_to=preview_path, max_length=300, blank=True)
    mime_type = models.CharField(max_length=100, blank=True)
    byte_size = models.PositiveBigIntegerField(default=0)
    # sha256 of the media bytes, or of the UTF-8 text for text items: the same content is one item.
    sha256 = models.CharField(max_length=64, unique=True)
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)
    duration = models.FloatField(null=True, blank=True, help_text="seconds")
    sample_rate = models.PositiveIntegerField(null=True, blank=True)
    # When a photo was taken (EXIF DateTimeOriginal), for filtering and sorting by capture time.
    taken_at = models.DateTimeField(null=True, blank=True)
    tags = ArrayField(models.CharField(max_length=64), default=list, blank=True)
    collection = models.CharField(max_length=100, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    hidden = models.BooleanField(default=False)
    pinned = models.BooleanField(default=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="items"
    )
    embedding_status = models.CharField(
        max_length=8, choices=EmbeddingStatus.choices, default=EmbeddingStatus.PENDING
    )
    embedding_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # Weighted full-text document: title ranks above body. Generated, so it can never go stale.
    search_document = models.GeneratedField(
        expression=SearchVector("title", weight="A", config="english")
        + SearchVector("text", weight="B", config="english"),
        output_field=SearchVectorField(),
        db_persist=True,
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["modality"], name="item_modality_idx"),
            models.Index(fields=["collection"], name="item_collection_idx"),
            models.Index(fields=["created_at"], name="item_created_idx"),
            models.Index(fields=["taken_at"], name="item_taken_idx"),
            models.Index(fields=["embedding_status"], name="item_status_idx"),
            GinIndex(fields=["tags"], name="item_tags_gin"),
            GinIndex(fields=["metadata"], name="item_metadata_gin", opclasses=["jsonb_path_ops"]),
            GinIndex(fields=["search_document"], name="item_fts_gin"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(modality__in=Modality.values), name="item_modality_valid"),
            models.CheckConstraint(condition=Q(byte_size__gte=0), name="item_byte_size_nonnegative"),
        ]

    def __str__(self) -> str:
        return self.title or f"{self.get_modality_display()} {self.sha256[:12]}"


class EmbeddingSpace(models.Model):
    """A registered embedding space. Its identity pins the exact encoder that made its vectors."""

    class Metric(models.TextChoices):
        COSINE = "cosine", "Cosine"

    name = models.CharField(max_length=64, unique=True)
    identity = models.CharField(max_length=400)
    dimension = models.PositiveIntegerField()
    metric = models.CharField(max_length=16, choices=Metric.choices, default=Metric.COSINE)
    modalities = ArrayField(models.CharField(max_length=8, choices=Modality.choices))
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(condition=Q(dimension__gte=1, dimension__lte=16000), name="space_dimension_range"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def index_name(self) -> str:
        return f"embedding_hnsw_space_{self.pk}"


class Embedding(models.Model):
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="embeddings")
    space = models.ForeignKey(EmbeddingSpace, on_delete=models.CASCADE, related_name="embeddings")
    # Dimension-free column: each space's index casts to its own dimension.
    vector = VectorField()
    # Set for the windows of long audio; null for the whole-item vector.
    segment_start = models.FloatField(null=True, blank=True)
    segment_end = models.FloatField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["space", "item"], name="embedding_space_item_idx")]
        constraints = [
            models.UniqueConstraint(
                fields=["item", "space"], condition=Q(segment_start__isnull=True), name="one_item_vector_per_space"
            ),
            models.UniqueConstraint(
                fields=["item", "space", "segment_start"],
                condition=Q(segment_start__isnull=False),
                name="one_vector_per_segment",
            ),
            models.CheckConstraint(
                condition=Q(segment_start__isnull=True, segment_end__isnull=True)
                | Q(segment_start__gte=0, segment_end__gt=models.F("segment_start")),
                name="segment_bounds_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.item_id}@{self.space_id}"
