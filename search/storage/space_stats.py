"""What a search needs to know of a space's data, read in one statement and kept per process for
SEARCH_CENTROID_TTL seconds: per modality, how many vectors an index scan would search (items and passages)
and the mean item vector (the baseline each modality is scored against, search.engine.rankers).

A search used to ask the planner for an estimate before each ranking (to choose an exact scan below
SEARCH_EXACT_BELOW rows) and to average each modality's vectors when its baseline expired: a statement each.
"""

import time
from dataclasses import dataclass, field

import numpy as np
from django.conf import settings

from search.models import EmbeddingSpace
from search.storage import knn, shards
from search.storage.replicas import read_connection as connection
from search.storage.shards import fanout as shard_fanout


@dataclass
class SpaceStats:
    rows: dict[str, int] = field(default_factory=dict)  # modality -> vectors an index scan searches (passages too)
    items: dict[str, int] = field(default_factory=dict)  # modality -> visible items with a vector
    centroids: dict[str, np.ndarray] = field(default_factory=dict)  # modality -> mean item vector


_kept: dict[tuple, tuple[float, SpaceStats]] = {}  # (space id, identity) -> (when, stats)


def of(space: EmbeddingSpace) -> SpaceStats:
    key = (space.pk, space.identity)
    cached = _kept.get(key)
    if cached is not None and time.monotonic() - cached[0] < settings.SEARCH_CENTROID_TTL:
        return cached[1]
    column = knn.column_sql(space, "e")
    if shards.configured():
        sql, params = shard_fanout.space_stats_sql(space)  # each shard's part, computed there
    else:
        sql = ("SELECT i.modality, count(*) FILTER (WHERE e.segment_start IS NULL), count(*),"
               f" (avg({column}) FILTER (WHERE e.segment_start IS NULL))::text"
               " FROM search_embedding e JOIN search_item i ON i.id = e.item_id"
               " WHERE e.space_id = %s AND (e.segment_start IS NULL OR e.passage) AND NOT i.hidden GROUP BY i.modality")
        params = [int(space.pk)]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    stats = SpaceStats()
    means: dict[str, list[tuple[int, np.ndarray]]] = {}
    # One row per modality on one server; one per shard and modality with shards: the means weighted by their items.
    for modality, items, vectors, centroid in rows:
        stats.items[modality] = stats.items.get(modality, 0) + int(items)
        stats.rows[modality] = stats.rows.get(modality, 0) + int(vectors)
        if centroid:
            means.setdefault(modality, []).append((int(items), knn.parse_vector(centroid, np.float64)))
    for modality, parts in means.items():
        stats.centroids[modality] = parts[0][1] if len(parts) == 1 else \
            sum(items * mean for items, mean in parts) / sum(items for items, _ in parts)
    _kept[key] = (time.monotonic(), stats)
    return stats


def forget() -> None:
    _kept.clear()
