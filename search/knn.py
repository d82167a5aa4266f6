"""The vector SQL every search path shares: the per-space distance expression and the
per-query index settings. Kept in one place so the expression the planner sees always
matches the expression each space's HNSW index was built on."""

from collections.abc import Sequence

from django.db import connection
from django.db.models import F
from django.db.models.functions import Cast
from pgvector.django import CosineDistance, VectorField

from search.models import EmbeddingSpace


def typed_vector(space: EmbeddingSpace):
    return Cast(F("vector"), VectorField(dimensions=space.dimension))


def cosine_distance(space: EmbeddingSpace, query: Sequence[float]):
    return CosineDistance(typed_vector(space), query)


def set_local_search_params(*, ef_search: int, iterative: str = "relaxed_order", max_scan_tuples: int = 20000):
    """SET LOCAL the HNSW knobs for the current transaction only (call inside transaction.atomic()).

    iterative is pgvector's hnsw.iterative_scan: 'off', 'strict_order' or 'relaxed_order'.
    """
    if iterative not in {"off", "strict_order", "relaxed_order"}:
        raise ValueError(f"unknown iterative scan mode {iterative!r}")
    if not connection.in_atomic_block:
        raise RuntimeError("SET LOCAL outside a transaction would be a no-op; wrap the query in transaction.atomic()")
    with connection.cursor() as cursor:
        cursor.execute("SELECT set_config('hnsw.ef_search', %s, true)", [str(int(ef_search))])
        cursor.execute("SELECT set_config('hnsw.iterative_scan', %s, true)", [iterative])
        cursor.execute("SELECT set_config('hnsw.max_scan_tuples', %s, true)", [str(int(max_scan_tuples))])
