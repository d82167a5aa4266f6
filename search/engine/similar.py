"""Items like a stored item: more like this, and its near-duplicates."""


import numpy as np
from django.conf import settings

from search.engine import access
from search.engine.query_vectors import QueryPart
from search.engine.requests import Filters, Hit, SearchPage, SearchRequest
from search.engine.search_service import search
from search.models import Embedding, EmbeddingSpace, Item


def more_like_this(item_id: int, *, k: int = 10, page: int = 1, filters: Filters | None = None,
                   space: str | None = None, viewer=None) -> SearchPage:
    return search(SearchRequest(parts=[QueryPart(item_id=item_id)], filters=filters or Filters(), k=k, page=page,
                                space=space, exclude_ids=[item_id], viewer=viewer))


def near_duplicates(item_id: int, *, threshold: float = 0.02, limit: int = 20,
                    space: str | None = None, viewer=None) -> list[Hit]:
    """Items within `threshold` cosine distance of this one, nearest first."""
    page = search(SearchRequest(parts=[QueryPart(item_id=item_id)], space=space, k=min(limit, settings.SEARCH_MAX_K),
                                exclude_ids=[item_id], exact=True, viewer=viewer))
    return [hit for hit in page.hits if hit.distance is not None and hit.distance <= threshold]


DUPLICATE_SCAN_LIMIT = 2000
DUPLICATE_LIST_LIMIT = 500  # pairs on one review page


def duplicate_pairs(threshold: float, *, viewer=None) -> tuple[list[tuple[float, Item, Item]], str]:
    """Pairs of visible items within `threshold` cosine distance in the default space, nearest first.

    All pairs among the newest DUPLICATE_SCAN_LIMIT items, compared in blocks with numpy (2,000 items
    are 2 million pairs, well under a second); one query per item through the index was minutes.
    """
    space = EmbeddingSpace.objects.filter(name=settings.SEARCH_DEFAULT_SPACE).first()
    if space is None:
        return [], f"the space {settings.SEARCH_DEFAULT_SPACE!r} has no vectors yet"
    rows = list(Embedding.objects.filter(space=space, segment_start__isnull=True, item__in=access.visible(
        Item.objects.filter(hidden=False), viewer)).order_by("-item_id").values_list("item_id", "vector")
        [:DUPLICATE_SCAN_LIMIT])
    if len(rows) < 2:
        return [], ""
    ids = [item_id for item_id, _ in rows]
    vectors = np.stack([np.asarray(v.to_list() if hasattr(v, "to_list") else v, dtype=np.float32) for _, v in rows])
    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    found_pairs = []
    for start in range(0, len(ids), 512):
        similarity = vectors[start:start + 512] @ vectors.T
        a, b = np.nonzero(similarity >= 1.0 - threshold)
        for i, j in zip(a + start, b, strict=True):
            if i < j:
                found_pairs.append((float(1.0 - similarity[i - start, j]), ids[i], ids[j]))
    found_pairs.sort()
    found = Item.objects.in_bulk({pk for _, a, b in found_pairs for pk in (a, b)})
    return [(1 - distance, found[a], found[b]) for distance, a, b in found_pairs[:DUPLICATE_LIST_LIMIT]], ""
