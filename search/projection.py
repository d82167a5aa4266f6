"""The 2-D map of a space: its item vectors projected onto their first two principal components.

PCA is a few milliseconds of numpy for the demo's hundreds of items, but reading every vector
is not free, so the result is cached under a fingerprint of what it depends on (the space's
identity, its vectors and the visible items). Any ingest, edit, hide or re-embed changes the
fingerprint, so the map is never stale and is computed once per change.
"""

import hashlib
from dataclasses import dataclass

import numpy as np
from django.core.cache import cache
from django.db import connection

from search.models import Embedding, EmbeddingSpace, Item

# More points than this would make the SVG heavy for a phone; beyond it the map shows an even sample.
MAX_POINTS = 3000
CACHE_SECONDS = 24 * 3600


@dataclass
class Point:
    item_id: int
    x: float  # both in [0, 1]
    y: float
    modality: str
    title: str
    preview: str  # media name of the preview, or ""


@dataclass
class Projection:
    points: list[Point]
    total: int  # items with a vector in the space, before sampling
    explained: tuple[float, float]  # share of the variance along each axis


def fingerprint(space: EmbeddingSpace) -> str:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*), max(e.id), max(i.updated_at) FROM search_embedding e"
            " JOIN search_item i ON i.id = e.item_id"
            " WHERE e.space_id = %s AND e.segment_start IS NULL AND NOT i.hidden",
            [space.pk],
        )
        count, last_id, updated = cursor.fetchone()
    raw = f"{space.pk}:{space.identity}:{count}:{last_id}:{updated.isoformat() if updated else ''}"
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


def principal_axes(vectors: np.ndarray) -> tuple[np.ndarray, tuple[float, float]]:
    """Rows projected onto the first two principal components, scaled into [0, 1]."""
    n = len(vectors)
    if n == 0:
        return np.zeros((0, 2)), (0.0, 0.0)
    centred = vectors - vectors.mean(axis=0)
    if n == 1:
        return np.full((1, 2), 0.5), (0.0, 0.0)
    _, singular, components = np.linalg.svd(centred, full_matrices=False)
    axes = components[:2]
    if len(axes) < 2:
        axes = np.vstack([axes, np.zeros_like(axes[0])])
    # An SVD's signs are arbitrary; fixing them keeps the map from flipping between recomputations.
    signs = np.sign(axes[np.arange(2), np.abs(axes).argmax(axis=1)])
    axes = axes * np.where(signs == 0, 1, signs)[:, None]
    coords = centred @ axes.T
    variance = singular**2
    total = variance.sum() or 1.0
    explained = (float(variance[0] / total), float(variance[1] / total) if len(variance) > 1 else 0.0)
    low, high = coords.min(axis=0), coords.max(axis=0)
    span = np.where(high - low > 1e-12, high - low, 1.0)
    return (coords - low) / span, explained


def compute(space: EmbeddingSpace) -> Projection:
    rows = list(
        Embedding.objects.filter(space=space, segment_start__isnull=True, item__hidden=False)
        .order_by("item_id")
        .values_list("item_id", "vector")
    )
    total = len(rows)
    if total > MAX_POINTS:
        step = total / MAX_POINTS
        rows = [rows[int(i * step)] for i in range(MAX_POINTS)]
    if not rows:
        return Projection([], 0, (0.0, 0.0))
    vectors = np.stack([np.asarray(vector, dtype=np.float64) for _, vector in rows])
    coords, explained = principal_axes(vectors)
    items = Item.objects.only("id", "modality", "title", "sha256", "preview").in_bulk([item_id for item_id, _ in rows])
    points = [
        Point(item_id, round(float(x), 5), round(float(y), 5), items[item_id].modality, str(items[item_id]),
              items[item_id].preview.name or "")
        for (item_id, _), (x, y) in zip(rows, coords, strict=True)
    ]
    return Projection(points, total, explained)


def projection(space: EmbeddingSpace) -> Projection:
    """The space's map, from the cache while nothing it depends on has changed."""
    key = f"search:map:{fingerprint(space)}"
    result = cache.get(key)
    if result is None:
        result = compute(space)
        cache.set(key, result, CACHE_SECONDS)
    return result
