"""Queries as vectors: text, an uploaded image or audio clip, a stored item, a raw vector, or
a weighted mix of them ("red" +1, "circle" -0.5), combined as a normalised weighted sum in
the space. Every part must be embeddable in the space, or the query is refused."""

import contextlib
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from django.conf import settings

from encoders.base import EncoderError
from search.ingest.item_vectors import encode_batch, encode_query_text
from search.ingest.prepare import prepare_media
from search.media import MediaRejected, MediaTooLarge
from search.models import Embedding, EmbeddingSpace, Item
from search.runtime import json_input
from search.storage import spaces


class QueryError(ValueError):
    """A query that cannot be run, with a message for the person who wrote it."""


class QueryFileTooLarge(QueryError, MediaTooLarge):
    """A query file over a cap: a QueryError to the pages, a MediaTooLarge (413) to the API."""


@dataclass
class QueryPart:
    """One weighted ingredient of a query. Exactly one of the content fields is set."""

    text: str | None = None
    data: bytes | None = None  # image or audio bytes
    item_id: int | None = None
    vector: list[float] | None = None
    weight: float = 1.0

    @property
    def kind(self) -> str:
        if self.text is not None:
            return "text"
        if self.data is not None:
            return "file"
        if self.item_id is not None:
            return "item"
        return "vector"


class _TextCache:
    """LRU of text-query vectors per space identity: repeated queries skip the encoder."""

    def __init__(self, size: int):
        self.size = size
        self._entries: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def get(self, identity: str, text: str) -> np.ndarray | None:
        with self._lock:
            vector = self._entries.get((identity, text))
            if vector is None:
                self.misses += 1
                return None
            self._entries.move_to_end((identity, text))
            self.hits += 1
            return vector

    def put(self, identity: str, text: str, vector: np.ndarray) -> None:
        if self.size <= 0:
            return
        with self._lock:
            self._entries[(identity, text)] = vector
            self._entries.move_to_end((identity, text))
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.hits = self.misses = 0


text_cache = _TextCache(settings.SEARCH_TEXT_CACHE_SIZE)


def validate_parts(parts: list[QueryPart]) -> None:
    if not parts:
        raise QueryError("the query is empty: give text, a file, an item or a vector")
    limit = settings.SEARCH_MAX_QUERY_PARTS
    if len(parts) > limit:
        raise QueryError(f"a query has at most {limit} parts; got {len(parts)}")
    for part in parts:
        if not np.isfinite(part.weight) or abs(part.weight) > 100:
            raise QueryError("each weight must be a number between -100 and 100")
        if part.text is not None:
            part.text = part.text.strip()
            if not part.text:
                raise QueryError("a text part is empty")
            if len(part.text) > settings.SEARCH_MAX_QUERY_CHARS:
                raise QueryError(f"query text is limited to {settings.SEARCH_MAX_QUERY_CHARS} characters")
            if "\x00" in part.text or json_input.has_surrogates(part.text):
                raise QueryError("query text must be valid Unicode without NUL characters")
    if all(part.weight == 0 for part in parts):
        raise QueryError("at least one part needs a non-zero weight")
    if all(part.weight <= 0 for part in parts):
        raise QueryError("a query needs at least one part with a positive weight")


def embed_text(space: EmbeddingSpace, text: str) -> np.ndarray:
    cached = text_cache.get(space.identity, text)
    if cached is not None:
        return cached
    # A text asked, never stored: the space may encode it its faster way (EmbeddingSpace.encode_query_texts).
    vector = _embedded(encode_query_text(_encoder(space, "text"), text), "text")
    text_cache.put(space.identity, text, vector)
    return vector


# One helper thread: a fused search encodes its text in its other spaces there while the request's thread encodes it
# in the last. ONNX Runtime and torch let go of the GIL while they compute, so on a machine with a core to spare the
# other spaces' encoding costs little; on a busy one it costs what it did one after the other. A search that finds
# the helper busy (another request's thread is using it) encodes in turn on its own thread rather than queue.
_encoding = ThreadPoolExecutor(max_workers=1, thread_name_prefix="query-encoding")
_helper_free = threading.Semaphore(1)


def embed_text_in_spaces(chosen: list[EmbeddingSpace], text: str) -> None:
    """Encode `text` in each of `chosen` (into the cache `embed_text` reads): the last space in this thread while
    the helper thread encodes it in the others. A text a space cannot embed is left for the search to report as it
    asks each space in turn; so is every space when the helper is busy."""
    todo = [space for space in chosen if text_cache.get(space.identity, text) is None]
    if len(todo) < 2 or not _helper_free.acquire(blocking=False):
        return
    try:
        # Measured both ways round with the demo and text spaces (6 queries x 40, p50): the demo model's torch
        # forward in the helper and the text model's ONNX Runtime forward here took 3.7 ms for both, the other
        # way round 4.3.
        helped = _encoding.submit(_embed_each, todo[:-1], text)
        with contextlib.suppress(QueryError):
            embed_text(todo[-1], text)
        helped.result()
    finally:
        _helper_free.release()


def _embed_each(chosen: list[EmbeddingSpace], text: str) -> None:
    for space in chosen:
        with contextlib.suppress(Exception):  # raised again, in order, when the search asks that space
            embed_text(space, text)


def _encode(space: EmbeddingSpace, modality: str, content) -> np.ndarray:
    [result] = encode_batch(_encoder(space, modality), modality, [content])
    return _embedded(result if isinstance(result, Exception) else result.vector, modality)


def _encoder(space: EmbeddingSpace, modality: str):
    encoder = spaces.get_encoder(space.name)
    if not encoder.can_embed(modality):
        raise QueryError(f"the space {space.name!r} cannot embed {modality} queries; it embeds "
                         f"{', '.join(sorted(encoder.modalities))}")
    return encoder


def _embedded(result: np.ndarray | Exception, modality: str) -> np.ndarray:
    if isinstance(result, Exception):
        detail = str(result) if isinstance(result, EncoderError) else type(result).__name__
        raise QueryError(f"the {modality} query could not be embedded: {detail}")
    return result


def part_vector(space: EmbeddingSpace, part: QueryPart) -> np.ndarray:
    if part.text is not None:
        return embed_text(space, part.text)
    if part.data is not None:
        try:
            media = prepare_media(part.data, query=True)  # a query clip gets the short audio cap
        except MediaRejected as exc:
            error = QueryFileTooLarge if isinstance(exc, MediaTooLarge) else QueryError
            raise error(f"the query file was refused: {exc}") from None
        content = media.image if media.modality == "image" else (media.waveform, media.sample_rate)
        return _encode(space, media.modality, content)
    if part.item_id is not None:
        stored = (
            Embedding.objects.filter(item_id=part.item_id, space=space, segment_start__isnull=True)
            .values_list("vector", flat=True)
            .first()
        )
        if stored is None:
            if not Item.objects.filter(pk=part.item_id).exists():
                raise QueryError(f"there is no item {part.item_id}")
            raise QueryError(f"item {part.item_id} has no vector in the space {space.name!r} yet")
        # pgvector hands back a list, an ndarray or a Vector depending on how the connection was set up.
        stored = stored.to_numpy() if hasattr(stored, "to_numpy") else stored
        return np.asarray(stored, dtype=np.float32)
    vector = np.asarray(part.vector, dtype=np.float64)
    if vector.shape != (space.dimension,):
        raise QueryError(f"a raw vector for the space {space.name!r} must have {space.dimension} numbers; "
                         f"got {vector.size}")
    if not np.isfinite(vector).all() or np.linalg.norm(vector) < 1e-9:
        raise QueryError("a raw vector must be finite and non-zero")
    return (vector / np.linalg.norm(vector)).astype(np.float32)


def query_vector(space: EmbeddingSpace, parts: list[QueryPart]) -> np.ndarray:
    """The normalised weighted sum of the parts' unit vectors."""
    validate_parts(parts)
    total = np.zeros(space.dimension, dtype=np.float64)
    for part in parts:
        total += part.weight * part_vector(space, part).astype(np.float64)
    norm = np.linalg.norm(total)
    if not np.isfinite(norm) or norm < 1e-6:
        raise QueryError("the weighted parts cancel each other out; change the weights")
    return (total / norm).astype(np.float32)
