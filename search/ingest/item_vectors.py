"""Turning item contents into stored vectors: batched encoding with failures isolated to
the item that caused them, and bulk vector writes with binary COPY.

Used by ingestion (new items) and by `manage.py embed` (backfills and retries), so a
space's vectors are always made the same way.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from django.core.files.storage import default_storage
from django.db import connection
from pgvector import HalfVector
from pgvector.psycopg import register_vector

from encoders.audio.frontend import decode_audio
from encoders.base import EmbeddingSpace as Encoder
from encoders.base import Segment
from encoders.images import load_image
from search.models import EmbeddingSpace, Item, Precision
from search.runtime import metrics
from search.storage import passage_rows


@dataclass
class Vectors:
    """What one item contributes to one space: its vector and, for long audio, its windows (seconds) or,
    for long text, its passages (character offsets)."""

    vector: np.ndarray
    segments: list[Segment] = field(default_factory=list)
    passages: bool = False  # the segments are passages of a text (indexed and searched), not audio windows


def encode_batch(encoder: Encoder, modality: str, contents: Sequence) -> list["Vectors | Exception"]:
    """Encode contents of one modality; one bad input fails alone, not its whole batch."""
    try:
        return _encode(encoder, modality, contents)
    except Exception as exc:
        if len(contents) == 1:
            return [exc]
    results: list[Vectors | Exception] = []
    for content in contents:
        try:
            results.extend(_encode(encoder, modality, [content]))
        except Exception as exc:
            results.append(exc)
    return results


def encode_query_text(encoder: Encoder, text: str) -> "np.ndarray | Exception":
    """The vector of a text asked as a query (`EmbeddingSpace.encode_query_texts`), or what went wrong."""
    try:
        with metrics.ENCODE_SECONDS.labels("text").time():
            return encoder.encode_query_texts([text])[0]
    except Exception as exc:
        return exc


def _encode(encoder: Encoder, modality: str, contents: Sequence) -> list[Vectors]:
    with metrics.ENCODE_SECONDS.labels(modality).time():
        return _encode_untimed(encoder, modality, contents)


def _encode_untimed(encoder: Encoder, modality: str, contents: Sequence) -> list[Vectors]:
    if modality == "text":
        # A long text also gets its passages (character spans), stored like the windows of long audio.
        return [Vectors(vector, spans, passages=True)
                for vector, spans in encoder.encode_texts_with_passages(list(contents))]
    if modality == "image":
        return [Vectors(v) for v in encoder.encode_images(list(contents))]
    pairs = encoder.encode_audio_with_segments(list(contents))
    # A clip that fits in one window has nothing finer to point at than the whole clip.
    return [Vectors(vector, segments if len(segments) > 1 else []) for vector, segments in pairs]


def load_content(item: Item):
    """The encoder input for a stored item (used when re-embedding)."""
    if item.modality == "text":
        return item.text or item.extracted_text  # a scanned PDF's text is what was read from its pages
    with default_storage.open(item.media.name, "rb") as handle:
        data = handle.read()
    if item.modality == "image":
        return load_image(data)
    return decode_audio(data)


def _ensure_vector_type(raw_connection) -> None:
    if not getattr(raw_connection, "_search_vector_registered", False):
        register_vector(raw_connection)
        raw_connection._search_vector_registered = True


def write_vectors(space: EmbeddingSpace, rows: Sequence[tuple[int, Vectors]]) -> int:
    """COPY the vectors of (item id, Vectors) pairs into the space; returns rows written.

    Binary COPY is an order of magnitude faster than INSERTs for bulk loads, and runs in
    the caller's transaction, so vectors commit together with their items. Every space's
    vectors go into the half-precision `vector` column; a full-precision space's also into
    `vector_full` (see search.models.Embedding).
    """
    connection.ensure_connection()
    _ensure_vector_type(connection.connection)
    full = space.precision == Precision.FULL
    written = 0
    with connection.cursor() as cursor:
        copy_sql = (
            "COPY search_embedding (item_id, space_id, vector, vector_full, segment_start, segment_end, passage) "
            "FROM STDIN WITH (FORMAT BINARY)"
        )
        with cursor.cursor.copy(copy_sql) as copy:
            copy.set_types(["int8", "int8", "halfvec", "vector", "float8", "float8", "bool"])

            def row(item_id, vector, start, end, passage):
                vector = np.asarray(vector, dtype=np.float32)
                copy.write_row([item_id, space.pk, HalfVector(vector), vector if full else None, start, end, passage])

            for item_id, vectors in rows:
                row(item_id, vectors.vector, None, None, False)
                written += 1
                for segment in vectors.segments:
                    row(item_id, segment.vector, float(segment.start), float(segment.end), vectors.passages)
                    written += 1
    if any(vectors.passages and vectors.segments for _, vectors in rows):
        passage_rows.forget(space)  # searches here look for passages from now on (other processes within a minute)
    return written
