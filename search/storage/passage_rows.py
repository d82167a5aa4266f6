"""Which spaces hold passage rows (the passages of long texts), cached per process (a search counts each text's
passages in its ranking statement, search.engine.ranking_batch).

A search that can skip passages ranks exactly as before at no extra cost; ingest forgets the cached flag
when it stores the first passages of a space.
"""

import time

from django.conf import settings

from search.models import EmbeddingSpace
from search.storage.replicas import read_connection as connection

_flags: dict[tuple, tuple[float, bool]] = {}  # (space id, identity) -> (when, whether it has passages)


def has_passages(space: EmbeddingSpace) -> bool:
    """Whether any text item in the space has passages (cached for SEARCH_CENTROID_TTL seconds): a
    search that can skip them ranks exactly as before, at no extra cost."""
    key = (space.pk, space.identity)
    cached = _flags.get(key)
    if cached is not None and time.monotonic() - cached[0] < settings.SEARCH_CENTROID_TTL:
        return cached[1]
    with connection.cursor() as cursor:
        cursor.execute("SELECT EXISTS (SELECT 1 FROM search_embedding WHERE space_id = %s AND passage)",
                       [int(space.pk)])
        found = bool(cursor.fetchone()[0])
    _flags[key] = (time.monotonic(), found)
    return found


def forget(space: EmbeddingSpace | None = None) -> None:
    """Drop the cached flags (all, or one space's), e.g. after texts with passages were stored."""
    if space is None:
        _flags.clear()
    else:
        for key in [key for key in _flags if key[0] == space.pk]:
            del _flags[key]
