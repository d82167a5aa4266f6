"""The vector SQL every search path shares: the per-space column, cast and distance
expression, the index's operator class, and the per-query index settings. Kept in one
place so the expression the planner sees always matches the expression each space's HNSW
index was built on.

A half-precision space (the default) reads `vector`, a `halfvec`; a full-precision space
reads `vector_full`, a `vector`. Both columns are dimension-free, so every expression casts
to the space's dimension; the cast is a typmod check, not a copy, because the values are
stored inline (`STORAGE MAIN`: never out of line in TOAST, which cost an exact scan twice
the time at 512 dimensions).
"""

import functools
from collections.abc import Sequence

import numpy as np
from django.db.models import F
from django.db.models.functions import Cast
from pgvector import HalfVector
from pgvector.django import CosineDistance, HalfVectorField, VectorField

from search.models import EmbeddingSpace, Precision
from search.storage import replicas

# Per precision: the column, its SQL type, the HNSW operator class and the bytes a dimension takes.
STORAGE = {
    Precision.HALF: ("vector", "halfvec", "halfvec_cosine_ops", 2),
    Precision.FULL: ("vector_full", "vector", "vector_cosine_ops", 4),
}


def _storage(space: EmbeddingSpace) -> tuple[str, str, str, int]:
    return STORAGE[Precision(space.precision)]


def sql_type(space: EmbeddingSpace) -> str:
    """The space's vector type with its dimension, e.g. `halfvec(512)`."""
    return f"{_storage(space)[1]}({int(space.dimension)})"


def column_sql(space: EmbeddingSpace, alias: str = "") -> str:
    """The typed vector expression the space's index is built on, e.g. `e.vector::halfvec(512)`."""
    column = _storage(space)[0]
    return f"{alias + '.' if alias else ''}{column}::{sql_type(space)}"


def distance_sql(space: EmbeddingSpace, alias: str = "") -> str:
    """Cosine distance from the space's vector column to one `%s` query parameter (a vector literal)."""
    return f"({column_sql(space, alias)} <=> %s::{sql_type(space)})"


def distance_to_sql(space: EmbeddingSpace, alias: str, query: str) -> str:
    """Cosine distance from the space's vector column to a query vector given as SQL (a scalar subquery, say:
    one literal sent once for every scan of a statement; the index still serves it, as an InitPlan)."""
    return f"({column_sql(space, alias)} <=> {query})"


def opclass(space: EmbeddingSpace) -> str:
    return _storage(space)[2]


def bytes_per_vector(space: EmbeddingSpace) -> int:
    return 8 + _storage(space)[3] * int(space.dimension)


def typed_vector(space: EmbeddingSpace):
    column, kind = _storage(space)[:2]
    field = HalfVectorField if kind == "halfvec" else VectorField
    return Cast(F(column), field(dimensions=space.dimension))


def cosine_distance(space: EmbeddingSpace, query: Sequence[float]):
    if space.precision == Precision.HALF:
        query = HalfVector(list(map(float, query)))
    return CosineDistance(typed_vector(space), query)


def set_local_search_params(*, ef_search: int, iterative: str = "relaxed_order", max_scan_tuples: int = 20000):
    """SET LOCAL the HNSW knobs for the current transaction only (call inside transaction.atomic()).

    iterative is pgvector's hnsw.iterative_scan: 'off', 'strict_order' or 'relaxed_order'.
    The settings go to the connection searches read from (a replica, see search.storage.replicas).
    """
    if iterative not in {"off", "strict_order", "relaxed_order"}:
        raise ValueError(f"unknown iterative scan mode {iterative!r}")
    connection = replicas.read_connection
    if not connection.in_atomic_block:
        raise RuntimeError("SET LOCAL outside a transaction would be a no-op; wrap the query in transaction.atomic()")
    with connection.cursor() as cursor:
        # One round trip for the three: a search is a handful of statements, each one counts.
        cursor.execute(
            "SELECT set_config('hnsw.ef_search', %s, true), set_config('hnsw.iterative_scan', %s, true),"
            " set_config('hnsw.max_scan_tuples', %s, true)",
            [str(int(ef_search)), iterative, str(int(max_scan_tuples))],
        )


def search_params_prefix(*, ef_search: int, iterative: str = "relaxed_order",
                         max_scan_tuples: int = 20000) -> tuple[str, list]:
    """The HNSW knobs as a statement to send in the same message as the query it governs:
    `cursor.execute(prefix + query, prefix_params + params)`, then `cursor.nextset()` for the rows.

    Statements sent together run as one transaction (PostgreSQL's implicit transaction block), so
    `set_config(..., true)` holds for that query and ends with it: one round trip, where BEGIN,
    SET LOCAL, the query and COMMIT took four. Inside an open transaction it lasts until that ends,
    like SET LOCAL.
    """
    if iterative not in {"off", "strict_order", "relaxed_order"}:
        raise ValueError(f"unknown iterative scan mode {iterative!r}")
    return (
        "SELECT set_config('hnsw.ef_search', %s, true), set_config('hnsw.iterative_scan', %s, true),"
        " set_config('hnsw.max_scan_tuples', %s, true); ",
        [str(int(ef_search)), iterative, str(int(max_scan_tuples))],
    )


def vector_literal(vector) -> str:
    """A query vector as pgvector's text form, for a parameter cast in SQL.

    A search sends each space's query vector three times (its ranking, the shown items' nearest passages, the
    passages' marks) and the demo space's "unknown" point with every ranking; writing 384 numbers as text took
    ~0.15 ms a time, so each vector is written once and kept (by its bytes: a repeated query's vector comes back
    from the text cache as the same numbers)."""
    array = np.asarray(vector)
    return _literal(array.tobytes(), array.dtype.str)


@functools.lru_cache(maxsize=256)
def _literal(data: bytes, dtype: str) -> str:
    return "[" + ",".join(f"{x:.8g}" for x in np.frombuffer(data, dtype=dtype).tolist()) + "]"


def parse_vector(text: str, dtype=np.float32) -> np.ndarray:
    """A vector read back as text (`vector::text`, `avg(...)::text`)."""
    return np.array(text.strip("[]").split(","), dtype=dtype)
