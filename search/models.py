"""The stored world: items, the embedding spaces they are mapped into, and their vectors.

Every space shares one `Embedding` table. pgvector's HNSW index needs a fixed dimension,
so each space gets its own partial expression index (`(vector::halfvec(dim)) WHERE
space_id = ...`), built by search.storage.spaces when the space is registered; queries cast the
column the same way (search.storage.knn) so the planner can use it. Vectors are half precision
unless the space asks for full precision (docs/scaling.md).
"""

import numpy as np
from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVectorField
from django.db import models
from django.db.models import Q
from django.utils.text import Truncator
from pgvector.django import HalfVectorField, VectorField


class Modality(models.TextChoices):
    TEXT = "text", "Text"
    IMAGE = "image", "Image"
    AUDIO = "audio", "Audio"


class Precision(models.TextChoices):
    HALF = "half", "Half (halfvec, 2 bytes a dimension)"
    FULL = "full", "Full (vector, 4 bytes a dimension)"


class HalfVector(HalfVectorField):
    """A dimension-free halfvec column read as a float32 numpy array, like pgvector's VectorField."""

    def from_db_value(self, value, expression, connection):
        value = super().from_db_value(value, expression, connection)
        return None if value is None else np.asarray(value, dtype=np.float32)


class ExtractionStatus(models.TextChoices):
    NONE = "none", "Nothing to read"  # a text (its words are its own), or extraction turned off
    PENDING = "pending", "Pending"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class EmbeddingStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


def media_path(item: "Item", filename: str) -> str:
    # Content-addressed, sharded by hash prefix: stable, collision-free, and no user-chosen names on disk.
    extension = filename.rsplit(".", 1)[-1].lower() if "." in filename else "bin"
    return f"items/{item.sha256[:2]}/{item.sha256}.{extension}"


def preview_path(item: "Item", filename: str) -> str:
    # A photo's thumbnail is a JPEG, a sound's waveform a PNG (search.media.previews); older thumbnails are PNGs.
    extension = filename.rsplit(".", 1)[-1].lower() if "." in filename else "png"
    return f"previews/{item.sha256[:2]}/{item.sha256}.{extension}"


# Words of a text item's first line that name it where it has no title of its own.
TITLE_WORDS = 8


class ItemManager(models.Manager):
    def get_queryset(self):
        # The full-text vector is only ever read by PostgreSQL (a long document's is up to a megabyte).
        # The words read from an item and where they are (a long recording's transcript) are read when shown.
        return super().get_queryset().defer("search_document", "extraction", "extracted_alternatives")


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
    # A document's pages (PDF): the character offset in `text` where each starts, for "page N" of a passage.
    text_pages = ArrayField(models.PositiveIntegerField(), null=True, blank=True)
    # Words read from the item itself in the background (search.ingest.extraction): text in a picture or a
    # scanned page, speech in a recording. Found by words (search_document) and, for pictures and sounds, by
    # meaning in the spaces that read text but cannot see or hear the item.
    # Defaults in the database too: rows written by COPY (bulk loads, benchmarks) name only the columns they fill.
    extracted_text = models.TextField(blank=True, default="", db_default="")
    # Where those words are: {"source": "picture" | "speech", "size": [w, h], "lines": [{text, box,
    # confidence, page}], "words": [{text, start, end, confidence}], "pages": [offsets]}.
    extraction = models.JSONField(default=dict, blank=True, db_default=models.Value({}, models.JSONField()))
    # Words a recording may have said: the speech recogniser's alternatives (its n-best list) that are not in
    # `extracted_text`, one utterance's after another. Searched by words (weight D), never shown as said; a
    # curator's correction of the transcript drops them (search.ingest.extraction.correct).
    extracted_alternatives = models.TextField(blank=True, default="", db_default="")
    extraction_status = models.CharField(max_length=8, choices=ExtractionStatus.choices,
                                         default=ExtractionStatus.NONE, db_default=ExtractionStatus.NONE)
    extraction_error = models.TextField(blank=True, default="", db_default="")
    # Weighted full-text document: title ranks above body, body above the words read from the item. Generated,
    # so it can never go stale. The function (migrations 0006, 0008) is setweight(to_tsvector(title), 'A') ||
    # setweight(to_tsvector(text), 'B') || setweight(to_tsvector(extracted_text), 'C') ||
    # setweight(strip(to_tsvector(extracted_alternatives)), 'D') (migration 0012: a set of words, no positions),
    # falling back to a vector without positions for a text of mostly distinct tokens (a word list, a
    # dump) whose positions would pass PostgreSQL's 1 MB tsvector limit, so no text is refused for it.
    search_document = models.GeneratedField(
        expression=models.Func(models.F("title"), models.F("text"), models.F("extracted_text"),
                               models.F("extracted_alternatives"), function="search_document_vector",
                               output_field=SearchVectorField()),
        output_field=SearchVectorField(),
        db_persist=True,
    )

    objects = ItemManager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["modality"], name="item_modality_idx"),
            models.Index(fields=["collection"], name="item_collection_idx"),
            models.Index(fields=["created_at"], name="item_created_idx"),
            models.Index(fields=["taken_at"], name="item_taken_idx"),
            models.Index(fields=["embedding_status"], name="item_status_idx"),
            models.Index(fields=["extraction_status"], name="item_extraction_idx"),
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

    @property
    def display_title(self) -> str:
        """A title people (and screen readers) can tell apart: a text item without one of its own is
        called by its first words, not by a number."""
        title = self.title.strip()
        if self.modality == Modality.TEXT and (not title or title == self.text.strip()):
            return Truncator(" ".join(self.text.split())).words(TITLE_WORDS) or str(self)
        return str(self)


# A space's HNSW index is this followed by the space's id (search.storage.spaces builds it).
HNSW_INDEX_PREFIX = "embedding_hnsw_space_"


class EmbeddingSpace(models.Model):
    """A registered embedding space. Its identity pins the exact encoder that made its vectors."""

    class Metric(models.TextChoices):
        COSINE = "cosine", "Cosine"

    name = models.CharField(max_length=64, unique=True)
    identity = models.CharField(max_length=400)
    dimension = models.PositiveIntegerField()
    metric = models.CharField(max_length=16, choices=Metric.choices, default=Metric.COSINE)
    modalities = ArrayField(models.CharField(max_length=8, choices=Modality.choices))
    # Storage and index precision; from the space's PRECISION setting (search.storage.spaces converts on change).
    precision = models.CharField(max_length=4, choices=Precision.choices, default=Precision.HALF)
    # How raw cosine maps to a relevance in [0, 1] per query modality -> item modality (search.engine.calibration).
    calibration = models.JSONField(default=dict, blank=True)
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
        return f"{HNSW_INDEX_PREFIX}{self.pk}"


class Embedding(models.Model):
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="embeddings")
    space = models.ForeignKey(EmbeddingSpace, on_delete=models.CASCADE, related_name="embeddings")
    # Dimension-free columns: each space's index casts to its own dimension. `vector` holds every
    # space's vectors at half precision; a full-precision space also keeps them in `vector_full`,
    # which its index and searches use. Both are stored inline (STORAGE MAIN, see search.storage.knn).
    vector = HalfVector()
    vector_full = VectorField(null=True, blank=True)
    # Set for the windows of long audio (seconds) and the passages of long text (character offsets, end
    # exclusive); null for the whole-item vector.
    segment_start = models.FloatField(null=True, blank=True)
    segment_end = models.FloatField(null=True, blank=True)
    # A passage of a text: searched like the item's own vector, so the space's index holds it (audio
    # windows only point at a moment of an item already found, and stay out of the index).
    passage = models.BooleanField(default=False)

    class Meta:
        indexes = [
            models.Index(fields=["space", "item"], name="embedding_space_item_idx"),
            # "Does this space hold any passages?" answered from a tiny index
            # (search.storage.passage_rows.has_passages).
            models.Index(fields=["space"], condition=Q(passage=True), name="embedding_passage_space_idx"),
        ]
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
            models.CheckConstraint(condition=Q(passage=False) | Q(segment_start__isnull=False),
                                   name="passage_has_span"),
        ]

    def __str__(self) -> str:
        return f"{self.item_id}@{self.space_id}"

    def save(self, *args, **kwargs):
        # bulk writes go through search.ingest.item_vectors.write_vectors, which fills both columns the same way
        if self.vector_full is None and self.space.precision == Precision.FULL:
            self.vector_full = self.vector
        super().save(*args, **kwargs)


class Job(models.Model):
    """Bulk work done by the background workers: a batch upload, a re-embed or a space backfill.

    The queue (procrastinate's tables) only says *that* a job runs; this row says what it is for,
    how far it got and how each input ended, and outlives the queue's clean-ups.
    """

    class Kind(models.TextChoices):
        INGEST = "ingest", "Batch upload"
        EMBED = "embed", "Embed (re-embed or backfill)"
        EVALUATE = "evaluate", "Evaluate a space"
        EXTRACT = "extract", "Read words (text in pictures, speech)"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    kind = models.CharField(max_length=8, choices=Kind.choices)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    # What to do: for embed jobs {"spaces": [...], "missing_only": bool, "reset": bool}.
    params = models.JSONField(default=dict, blank=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="jobs"
    )
    total = models.PositiveIntegerField(default=0)
    processed = models.PositiveIntegerField(default=0)
    succeeded = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    attempts = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    cancel_requested = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status"], name="job_status_idx")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} #{self.pk}"

    @property
    def finished(self) -> bool:
        return self.status in (self.Status.DONE, self.Status.FAILED, self.Status.CANCELLED)


class JobInput(models.Model):
    """One input of a batch upload: its bytes or text until processed, then how it ended."""

    class Outcome(models.TextChoices):
        PENDING = "pending", "Pending"
        ADDED = "added", "Added"
        PRESENT = "present", "Already present"
        FAILED = "failed", "Failed"

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="inputs")
    position = models.PositiveIntegerField()
    name = models.CharField(max_length=300, blank=True)  # the uploaded file's name, for the report
    # The payload lives in the database until the input is processed, so a job survives a restart;
    # it is cleared once the item is stored.
    data = models.BinaryField(null=True, blank=True)
    text = models.TextField(blank=True)  # a text input's body ("" for a file)
    fields = models.JSONField(default=dict, blank=True)  # title, caption, tags, collection, metadata
    outcome = models.CharField(max_length=8, choices=Outcome.choices, default=Outcome.PENDING)
    item = models.ForeignKey(Item, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["job", "position"]
        constraints = [models.UniqueConstraint(fields=["job", "position"], name="one_input_per_job_position")]

    def __str__(self) -> str:
        return f"{self.job_id}#{self.position} {self.name}"


class EvaluationReport(models.Model):
    """A space's evaluation on its golden set (search.engine.evaluation), as `manage.py evaluate` stores it.

    In the database, so every web node shows the same latest figures whichever job worker ran it; earlier ones are
    kept (a few per space) for comparison."""

    space = models.CharField(max_length=100)  # the space's name (a space is configured by name)
    created_at = models.DateTimeField(auto_now_add=True)
    report = models.JSONField()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["space", "-created_at"], name="evaluation_space_latest")]

    def __str__(self) -> str:
        return f"{self.space} {self.created_at:%Y-%m-%d %H:%M}"
