"""The 2-D map of a space: its item vectors laid out so that neighbours stay neighbours.

The layout is UMAP (umap-learn) over cosine distance: unlike the first two principal
components, which keep only the broad spread (17% + 12% of the variance for the demo) and mix
every kind of item together, it keeps each item's nearest neighbours near it, so clusters show.
UMAP takes seconds to minutes (numba compiles it on first use; 5,000 points take about a
minute on two cores), so it runs in a background thread while the map shows the PCA layout,
and the page swaps to the UMAP layout when it is ready. Without umap-learn, or if it fails,
the map stays PCA and says so.

Both layouts are cached under a fingerprint of what they depend on (the space's identity, its
vectors and the visible items): any ingest, edit, hide or re-embed changes it, so the map is
never stale and each layout is computed once per change. The cache is the shared one (search/settings.py CACHES),
so every process and node shows the same layout, and one process computes it: the one whose claim in the cache
lands first.
"""

import hashlib
import logging
import threading
from dataclasses import dataclass, replace

import numpy as np
from django.core.cache import cache
from django.db import connection

from search.models import Embedding, EmbeddingSpace, Item

log = logging.getLogger(__name__)

# The canvas draws this many points smoothly; beyond it the map shows an even sample.
MAX_POINTS = 50_000
CACHE_SECONDS = 7 * 24 * 3600
# Below this many points there are no neighbourhoods worth keeping: PCA is the whole story.
UMAP_MIN_POINTS = 10
UMAP_NEIGHBOURS = 15

# A claim on computing a layout expires after this, so a process that died computing (kill -9, a lost node) is
# followed by another one at the next request.
CLAIM_SECONDS = 15 * 60


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
    explained: tuple[float, float]  # share of the variance along each PCA axis
    method: str = "pca"  # "umap" or "pca"
    pending: bool = False  # a UMAP layout is being computed and will replace this one
    note: str = ""  # why the map is PCA when UMAP was wanted


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


def _unit_square(coords: np.ndarray) -> np.ndarray:
    low, high = coords.min(axis=0), coords.max(axis=0)
    span = np.where(high - low > 1e-12, high - low, 1.0)
    return (coords - low) / span


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
    return _unit_square(coords), explained


def neighbourhood_axes(vectors: np.ndarray) -> np.ndarray:
    """UMAP of the rows over cosine distance, scaled into [0, 1]. Raises ImportError without umap-learn.

    A fixed random_state makes the layout the same for the same vectors (and single-threaded,
    which suits a background thread on a small machine).
    """
    import umap  # noqa: PLC0415 - heavy (numba), and optional: imported only when a layout is made

    n = len(vectors)
    reducer = umap.UMAP(n_neighbors=max(2, min(UMAP_NEIGHBOURS, n - 1)), min_dist=0.1, metric="cosine",
                        init="pca", random_state=0, n_jobs=1, low_memory=True)
    return _unit_square(np.asarray(reducer.fit_transform(vectors.astype(np.float32)), dtype=np.float64))


def umap_available() -> bool:
    try:
        import umap  # noqa: F401, PLC0415
    except ImportError:
        return False
    return True


def _read(space: EmbeddingSpace) -> tuple[list[int], np.ndarray, int]:
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
        return [], np.zeros((0, 0)), 0
    vectors = np.stack([np.asarray(vector.to_list() if hasattr(vector, "to_list") else vector, dtype=np.float64)
                        for _, vector in rows])
    return [item_id for item_id, _ in rows], vectors, total


def _points(ids: list[int], coords: np.ndarray) -> list[Point]:
    items = Item.objects.only("id", "modality", "title", "text", "sha256", "preview").in_bulk(ids)

    return [
        Point(item_id, round(float(x), 5), round(float(y), 5), items[item_id].modality,
              items[item_id].display_title, items[item_id].preview.name or "")
        for item_id, (x, y) in zip(ids, coords, strict=True)
    ]


def compute(space: EmbeddingSpace) -> Projection:
    """The PCA layout, at once."""
    ids, vectors, total = _read(space)
    if not ids:
        return Projection([], 0, (0.0, 0.0))
    coords, explained = principal_axes(vectors)
    return Projection(_points(ids, coords), total, explained)


def _layout_in_background(key: str, pca: Projection, vectors: np.ndarray) -> None:
    try:
        coords = neighbourhood_axes(vectors)
    except Exception as exc:  # a failed layout must leave the PCA map, with a reason, not a broken page
        log.exception("UMAP layout failed")
        cache.set(key, replace(pca, note=f"the neighbourhood layout failed ({exc.__class__.__name__})"),
                  CACHE_SECONDS)
    else:
        points = [replace(p, x=round(float(x), 5), y=round(float(y), 5)) for p, (x, y) in zip(pca.points, coords,
                                                                                                 strict=True)]
        cache.set(key, replace(pca, points=points, method="umap"), CACHE_SECONDS)
    finally:
        cache.delete(f"{key}:claim")


def _layout_in_thread(key: str, pca: Projection, vectors: np.ndarray) -> None:
    try:
        _layout_in_background(key, pca, vectors)
    finally:
        connection.close()  # the cache's connection of this thread, back to the pool


def projection(space: EmbeddingSpace, *, wait: bool = False) -> Projection:
    """The space's map: the UMAP layout once computed, the PCA layout (marked pending) until then.

    `wait` computes the UMAP layout in this thread (for tests and management commands).
    """
    fp = fingerprint(space)
    umap_key, pca_key = f"search:map:umap:{fp}", f"search:map:pca:{fp}"
    done = cache.get(umap_key)
    if done is not None:
        return done
    pca = cache.get(pca_key)
    if pca is None:
        pca = compute(space)
        cache.set(pca_key, pca, CACHE_SECONDS)
    if len(pca.points) < UMAP_MIN_POINTS:
        return pca
    if not umap_available():
        return replace(pca, note="umap-learn is not installed, so this is the principal-component view")
    if cache.get(f"{umap_key}:claim") is not None:
        return replace(pca, pending=True)
    ids, vectors, _ = _read(space)
    if [p.item_id for p in pca.points] != ids:  # changed between the two reads: the next request catches up
        return replace(pca, pending=True)
    if wait:
        _layout_in_background(umap_key, pca, vectors)
        return cache.get(umap_key) or pca
    if cache.add(f"{umap_key}:claim", True, CLAIM_SECONDS):
        threading.Thread(target=_layout_in_thread, args=(umap_key, pca, vectors), daemon=True,
                         name="map-layout").start()
    return replace(pca, pending=True)
