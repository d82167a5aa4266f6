"""Rankings of one space: nearest vectors (HNSW with iterative scans, or exact), full-text words, and each
modality scored against its own baseline (`q . centroid`), because raw cosine favours the query's own modality.
"""

import json
import time

import numpy as np
from django.conf import settings
from django.db import transaction

from encoders.base import EncoderError
from search.engine import passage_matches
from search.engine.requests import Filters
from search.models import EmbeddingSpace, Modality
from search.storage import knn, passage_rows, spaces
from search.storage.replicas import read_connection as connection

RRF_K = 60  # the constant from Cormack et al.; dampens the head of each ranking


FUSION_DEPTH = 100  # candidates taken from each ranking before fusing


# A text with passages may fill several of the rows an index scan returns; this many rows per item
# wanted are read first (more when the scan ran out of distinct items before `limit`).
PASSAGE_FANOUT = 3


def vector_ranking(space: EmbeddingSpace, vector: np.ndarray, filters: Filters, limit: int, *,
                   exact: bool = False, exclude_ids=(), ef_search: int | None = None) -> tuple[list, bool]:
    """The `limit` nearest items as (item id, distance), best first; and whether the scan was exact.

    A text item is as near as its nearest vector: its passages' or its own (search.engine.passage_matches), so a
    long document is found by the sentence deep inside it that the query describes.
    """
    where, params = filters.sql()
    if exclude_ids:
        where += " AND NOT (i.id = ANY(%s))"
        params.append(list(exclude_ids))
    if not exact and filters.narrowing and settings.SEARCH_EXACT_BELOW:
        # A filter that leaves few rows is answered faster, and completely, by an exact scan. The
        # planner's row estimate decides: counting would cost more than the search itself.
        exact = _estimated_rows(where, params) <= settings.SEARCH_EXACT_BELOW
    no_meaning, no_meaning_params = meaningless_vectors_sql(space)
    where, params = where + no_meaning, params + no_meaning_params
    with_passages = (not filters.modalities or Modality.TEXT in filters.modalities) and passage_rows.has_passages(space)
    fanout = PASSAGE_FANOUT if with_passages else 1
    while True:
        rows, scanned = _nearest_rows(space, vector, where, params, limit, fanout, exact=exact,
                                      with_passages=with_passages, ef_search=ef_search)
        # Passages crowded the rows read: read more, unless the scan already saw everything it could.
        if not with_passages or len(rows) >= limit or scanned < limit * fanout or fanout >= 64:
            return rows, exact
        fanout *= 4


def _unknown_point(space: EmbeddingSpace) -> tuple[np.ndarray | None, float]:
    try:
        encoder = spaces.get_encoder(space.name)
    except EncoderError:
        return None, 1.0  # a space of raw vectors (benchmarks, imports) has no model to ask
    return encoder.unknown_text_point(), encoder.unknown_similarity


def related_similarity(space: EmbeddingSpace) -> float | None:
    """The cosine below which the space's model calls two items rarely related (encoders.base), or None."""
    try:
        return spaces.get_encoder(space.name).related_similarity
    except EncoderError:
        return None


def meaningless_vectors_sql(space: EmbeddingSpace) -> tuple[str, list]:
    """A condition leaving out the vectors on the space's "unknown" point (encoders.base.EmbeddingSpace.
    unknown_text_point): they carry no meaning in this space, and would answer every query that has none either
    (ordinary prose in the demo model). Such items stay findable through their words and other spaces."""
    point, similarity = _unknown_point(space)
    if point is None:
        return "", []
    return f" AND {knn.distance_sql(space, 'e')} > %s", [knn.vector_literal(point), 1.0 - similarity]


def carries_no_meaning(space: EmbeddingSpace, vector: np.ndarray) -> bool:
    """Whether a query vector lands on the space's "unknown" point: then this space has nothing to say about it."""
    point, similarity = _unknown_point(space)
    return point is not None and float(np.dot(point, vector) / (np.linalg.norm(vector) or 1.0)) >= similarity


def _nearest_rows(space, vector, where, params, limit, fanout, *, exact, with_passages, ef_search):
    distance = knn.distance_sql(space, "e")
    # "+ 0" hides the ORDER BY from the index, which forces the exact scan when asked for.
    order = f"{distance} + 0" if exact else distance
    # Both match the space's partial index (search.storage.spaces.index_sql).
    vectors = "(e.segment_start IS NULL OR e.passage)" if with_passages else "e.segment_start IS NULL"
    read = limit * fanout
    sql = (
        f"WITH nearest AS MATERIALIZED ("
        f" SELECT e.item_id, {distance} AS distance FROM search_embedding e"
        f" JOIN search_item i ON i.id = e.item_id"
        f" WHERE e.space_id = %s AND {vectors} AND {where}"
        f" ORDER BY {order} LIMIT %s)"
        f" SELECT item_id, min(distance) AS distance, (SELECT count(*) FROM nearest) FROM nearest"
        f" GROUP BY item_id ORDER BY distance, item_id LIMIT %s"
    )
    literal = knn.vector_literal(vector)
    args = [literal, int(space.pk), *params, literal, read, limit]
    knobs = {"ef_search": max(ef_search or settings.SEARCH_HNSW_EF_SEARCH, min(read, 1000)),
             "iterative": "relaxed_order", "max_scan_tuples": max(20000, read * 200)}
    if connection.settings_dict.get("OPTIONS", {}).get("server_side_binding"):
        # Server-side binding sends one statement per message: the knobs first, in a transaction.
        with transaction.atomic(using=connection.alias):
            knn.set_local_search_params(**knobs)
            with connection.cursor() as cursor:
                cursor.execute(sql, args)
                rows = cursor.fetchall()
    else:
        prefix, prefix_params = knn.search_params_prefix(**knobs)
        with connection.cursor() as cursor:
            cursor.execute(prefix + sql, prefix_params + args)
            cursor.nextset()
            rows = cursor.fetchall()
    scanned = int(rows[0][2]) if rows else 0
    return [(item_id, float(d)) for item_id, d, _ in rows], scanned


def _estimated_rows(where: str, params: list) -> float:
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) SELECT 1 FROM search_item i WHERE {where}", params)
        plan = cursor.fetchone()[0]
    plan = json.loads(plan) if isinstance(plan, str) else plan
    return float(plan[0]["Plan"]["Plan Rows"])


def lexical_ranking(text: str, filters: Filters, limit: int, exclude_ids=()) -> list[tuple[int, float]]:
    where, params = filters.sql()
    if exclude_ids:
        where += " AND NOT (i.id = ANY(%s))"
        params.append(list(exclude_ids))
    sql = (
        "SELECT i.id, ts_rank_cd(i.search_document, q) AS rank"
        " FROM search_item i, websearch_to_tsquery('english', %s) q"
        f" WHERE i.search_document @@ q AND {where}"
        " ORDER BY rank DESC, i.id LIMIT %s"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [text, *params, limit])
        return [(item_id, float(rank)) for item_id, rank in cursor.fetchall()]


def audio_moments(space: EmbeddingSpace, vector: np.ndarray, item_ids: list[int]) -> dict[int, tuple[float, float]]:
    """For each audio item, the window closest to the query."""
    return passage_matches.best_segments(space, vector, item_ids)


_centroids: dict[tuple, tuple[float, np.ndarray | None]] = {}


def modality_centroid(space: EmbeddingSpace, modality: str) -> np.ndarray | None:
    """Mean vector of a modality's items in a space (cached for SEARCH_CENTROID_TTL seconds).

    For unit vectors x, q . mean(x) is the query's average similarity to that modality, the
    "modality gap" baseline that lets scores from different modalities be compared.
    """
    key = (space.pk, space.identity, modality)
    cached = _centroids.get(key)
    if cached is not None and time.monotonic() - cached[0] < settings.SEARCH_CENTROID_TTL:
        return cached[1]
    column = knn.column_sql(space, "e")
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT avg({column})::text FROM search_embedding e JOIN search_item i ON i.id = e.item_id"
            f" WHERE e.space_id = %s AND e.segment_start IS NULL AND i.modality = %s AND NOT i.hidden",
            [int(space.pk), modality],
        )
        row = cursor.fetchone()[0]
    centroid = knn.parse_vector(row, np.float64) if row else None
    _centroids[key] = (time.monotonic(), centroid)
    return centroid


def clear_centroids() -> None:
    _centroids.clear()
    passage_rows.forget()


def cross_modal_ranking(space: EmbeddingSpace, vector: np.ndarray, filters: Filters, limit: int, **options
                        ) -> tuple[list[tuple[int, float, float]], bool]:
    """Nearest items over several modalities as (item id, distance, score), best score first.

    Raw cosine similarity favours the query's own modality (CLIP's modality gap: text is
    closer to text than to any image). Each modality is ranked on its own, then scored by
    its similarity above that modality's baseline (q . centroid), so one list interleaves
    the best text, images and sounds by how much they stand out.
    """
    targets = filters.modalities or sorted(space.modalities)
    results: list[tuple[int, float, float]] = []
    exact_all = True
    for modality in targets:
        centroid = modality_centroid(space, modality)
        if centroid is None:
            continue
        baseline = float(vector.astype(np.float64) @ centroid)
        narrowed = Filters(**{**filters.__dict__, "modalities": [modality]})
        ranking, exact = vector_ranking(space, vector, narrowed, limit, **options)
        exact_all = exact_all and exact
        # Rounded to what half-precision storage can tell apart, so equal scores tie by id, not by noise.
        results.extend((item_id, distance, round((1.0 - distance) - baseline, 3)) for item_id, distance in ranking)
    results.sort(key=lambda row: (-row[2], row[0]))
    return results[:limit], exact_all
