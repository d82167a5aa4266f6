"""Rankings of one space: nearest vectors (HNSW with iterative scans, or exact), full-text words, and each
modality scored against its own baseline (`q . centroid`), because raw cosine favours the query's own modality.
"""

import json
import time
from dataclasses import dataclass, replace

import numpy as np
from django.conf import settings

from encoders.base import EncoderError
from search.engine import ranking_batch
from search.engine.ranking_batch import VectorScan
from search.engine.requests import Filters
from search.models import EmbeddingSpace, Modality
from search.storage import knn, passage_rows, space_stats, spaces
from search.storage.replicas import read_connection as connection

RRF_K = 60  # the constant from Cormack et al.; dampens the head of each ranking


FUSION_DEPTH = 100  # candidates taken from each ranking before fusing


# A text with passages may fill several of the rows an index scan returns; this many rows per item
# wanted are read first (more when the scan ran out of distinct items before `limit`).
PASSAGE_FANOUT = 3
MAX_FANOUT = 64


def vector_scan(space: EmbeddingSpace, vector: np.ndarray, filters: Filters, limit: int, *, exact: bool = False,
                exclude_ids=(), ef_search: int | None = None) -> VectorScan:
    """The scan for the `limit` items of a space nearest to `vector` (run by search.engine.ranking_batch with
    the search's other scans). A text item is as near as its nearest vector: its passages' or its own
    (search.engine.passage_matches), so a long document is found by the sentence deep inside it that the query
    describes."""
    if not exact and filters.narrowing and settings.SEARCH_EXACT_BELOW:
        # A filter that leaves few rows is answered faster, and completely, by an exact scan.
        exact = estimated_rows(space, filters) <= settings.SEARCH_EXACT_BELOW
    no_meaning, no_meaning_params = meaningless_vectors_sql(space)
    with_passages = (not filters.modalities or Modality.TEXT in filters.modalities) and passage_rows.has_passages(space)
    fanout = PASSAGE_FANOUT if with_passages else 1
    if with_passages:
        # A space whose vectors are few next to what a re-read would read: read every one at once, so the scan
        # never comes back for more (a second statement).
        rows = sum(space_stats.of(space).rows.values())
        if rows <= limit * MAX_FANOUT:
            fanout = max(fanout, -(-rows // max(1, limit)) + 1)
            # Reading every vector, an exact scan is cheaper than the index asked for as many.
            exact = exact or rows <= settings.SEARCH_EXACT_BELOW
    return VectorScan(space=space, vector=vector, filters=filters, limit=limit, exact=exact,
                      exclude_ids=tuple(exclude_ids), ef_search=ef_search, with_passages=with_passages,
                      fanout=fanout, extra_where=no_meaning, extra_params=no_meaning_params)


def scan_rows(scan: VectorScan, found: ranking_batch.Ranked) -> list[tuple[int, float]]:
    """A scan's (item id, distance), read again deeper in the rare case the passages of a few texts filled the
    rows it read before `limit` distinct items were found."""
    rows, scanned = found.rows, found.scanned
    while scan.with_passages and len(rows) < scan.limit and scanned >= scan.read and scan.fanout < MAX_FANOUT:
        scan = replace(scan, fanout=scan.fanout * 4)
        [again], _, _, _ = ranking_batch.run([scan], default_ef=settings.SEARCH_HNSW_EF_SEARCH)
        rows, scanned = again.rows, again.scanned
    return rows


def vector_ranking(space: EmbeddingSpace, vector: np.ndarray, filters: Filters, limit: int, *,
                   exact: bool = False, exclude_ids=(), ef_search: int | None = None) -> tuple[list, bool]:
    """The `limit` nearest items as (item id, distance), best first; and whether the scan was exact."""
    scan = vector_scan(space, vector, filters, limit, exact=exact, exclude_ids=exclude_ids, ef_search=ef_search)
    [found], _, _, _ = ranking_batch.run([scan], default_ef=settings.SEARCH_HNSW_EF_SEARCH)
    return scan_rows(scan, found), scan.exact


_estimates: dict[tuple, tuple[float, float]] = {}  # (where, params) -> (when, the planner's row estimate)


def estimated_rows(space: EmbeddingSpace, filters: Filters) -> float:
    """About how many vectors of the space a filter leaves: for a filter on modality alone (every multimodal
    search ranks each modality on its own), the space's counted rows (search.storage.space_stats); otherwise
    the planner's estimate, kept for SEARCH_CENTROID_TTL seconds per filter. Counting would cost more than the
    search itself, and asking the planner each time was a statement of every search."""
    only_modality = filters.modalities and not Filters(**{**filters.__dict__, "modalities": []}).narrowing
    if only_modality:
        rows = space_stats.of(space).rows
        return float(sum(rows.get(modality, 0) for modality in filters.modalities))
    where, params = filters.sql()
    key = (where, repr(params))
    cached = _estimates.get(key)
    if cached is not None and time.monotonic() - cached[0] < settings.SEARCH_CENTROID_TTL:
        return cached[1]
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) SELECT 1 FROM search_item i WHERE {where}", params)
        plan = cursor.fetchone()[0]
    plan = json.loads(plan) if isinstance(plan, str) else plan
    if len(_estimates) > 1000:
        _estimates.clear()
    _estimates[key] = (time.monotonic(), float(plan[0]["Plan"]["Plan Rows"]))
    return _estimates[key][1]


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


def modality_centroid(space: EmbeddingSpace, modality: str) -> np.ndarray | None:
    """Mean vector of a modality's items in a space (kept for SEARCH_CENTROID_TTL seconds, search.storage.space_stats).

    For unit vectors x, q . mean(x) is the query's average similarity to that modality, the
    "modality gap" baseline that lets scores from different modalities be compared.
    """
    return space_stats.of(space).centroids.get(modality)


def clear_centroids() -> None:
    """Forget what is kept per process of the spaces' data and rows (each test builds its own world)."""
    space_stats.forget()
    passage_rows.forget()
    spaces.forget()
    _estimates.clear()


@dataclass
class CrossModalPlan:
    """One scan per target modality, each with the baseline its similarities are scored against."""

    scans: list[VectorScan]
    baselines: list[float]
    limit: int


def cross_modal_plan(space: EmbeddingSpace, vector: np.ndarray, filters: Filters, limit: int, **options
                     ) -> CrossModalPlan:
    targets = filters.modalities or sorted(space.modalities)
    plan = CrossModalPlan([], [], limit)
    for modality in targets:
        centroid = modality_centroid(space, modality)
        if centroid is None:
            continue
        narrowed = Filters(**{**filters.__dict__, "modalities": [modality]})
        plan.scans.append(vector_scan(space, vector, narrowed, limit, **options))
        plan.baselines.append(float(vector.astype(np.float64) @ centroid))
    return plan


def cross_modal_results(plan: CrossModalPlan, found: list[list[tuple[int, float]]]
                        ) -> tuple[list[tuple[int, float, float]], bool]:
    """Nearest items over several modalities as (item id, distance, score), best score first.

    Raw cosine similarity favours the query's own modality (CLIP's modality gap: text is
    closer to text than to any image). Each modality is ranked on its own, then scored by
    its similarity above that modality's baseline (q . centroid), so one list interleaves
    the best text, images and sounds by how much they stand out.
    """
    results: list[tuple[int, float, float]] = []
    for baseline, rows in zip(plan.baselines, found, strict=True):
        # Rounded to what half-precision storage can tell apart, so equal scores tie by id, not by noise.
        results.extend((item_id, distance, round((1.0 - distance) - baseline, 3)) for item_id, distance in rows)
    results.sort(key=lambda row: (-row[2], row[0]))
    return results[:plan.limit], all(scan.exact for scan in plan.scans)
