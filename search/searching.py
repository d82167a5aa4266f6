"""The search service: every search in the product (web UI, admin, REST API) runs here.

Modes: `vector` ranks by cosine distance in one space (HNSW with pgvector iterative index
scans, so filtered queries still return k results; an exact scan when the filter leaves
few rows or when asked); `lexical` ranks by PostgreSQL full text over title and text;
`hybrid` fuses both rankings by reciprocal rank fusion. Hidden items never appear.
"""

import json
import time
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import numpy as np
from django.conf import settings
from django.db import transaction

from encoders.base import EncoderError
from search import access, knn, metrics, passages, spaces
from search import calibration as calibrate
from search.media import formats
from search.models import Embedding, EmbeddingSpace, Item, Modality
from search.queries import QueryError, QueryPart, query_vector, validate_parts
from search.replicas import read_connection as connection

MODES = ("vector", "hybrid", "lexical")
# Orders of the relevant set: by relevance (the search's own order), or by a field of the items.
SORTS = {
    "relevance": None,
    "newest": ("-created_at", "-id"),
    "oldest": ("created_at", "id"),
    "title": ("title_lower", "id"),
    "taken_newest": ("-taken_at", "-id"),
    "taken_oldest": ("taken_at", "id"),
}
FACETS = ("modality", "collection", "tags")
SUGGESTIONS = 3
RRF_K = 60  # the constant from Cormack et al.; dampens the head of each ranking
FUSION_DEPTH = 100  # candidates taken from each ranking before fusing


@dataclass
class Filters:
    modalities: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)  # an item must carry every one
    collection: str = ""
    metadata: dict = field(default_factory=dict)  # an item's metadata must contain this object
    created_after: datetime | None = None
    created_before: datetime | None = None
    taken_after: datetime | None = None  # capture time (EXIF) of photos
    taken_before: datetime | None = None

    def validate(self) -> None:
        unknown = set(self.modalities) - set(Modality.values)
        if unknown:
            raise QueryError(f"unknown modality {sorted(unknown)[0]!r}; use {', '.join(Modality.values)}")
        if not isinstance(self.metadata, dict):
            raise QueryError("the metadata filter must be a JSON object")

    def sql(self) -> tuple[str, list]:
        """A WHERE fragment over search_item aliased `i`, with its parameters."""
        clauses, params = ["NOT i.hidden"], []
        if self.modalities:
            clauses.append("i.modality = ANY(%s)")
            params.append(list(self.modalities))
        if self.tags:
            clauses.append("i.tags @> %s::varchar[]")
            params.append([t.strip().lower() for t in self.tags])
        if self.collection:
            clauses.append("i.collection = %s")
            params.append(self.collection)
        if self.metadata:
            clauses.append("i.metadata @> %s::jsonb")
            params.append(json.dumps(self.metadata))
        if self.created_after:
            clauses.append("i.created_at >= %s")
            params.append(self.created_after)
        if self.created_before:
            clauses.append("i.created_at < %s")
            params.append(self.created_before)
        if self.taken_after:
            clauses.append("i.taken_at >= %s")
            params.append(self.taken_after)
        if self.taken_before:
            clauses.append("i.taken_at < %s")
            params.append(self.taken_before)
        return " AND ".join(clauses), params

    @property
    def narrowing(self) -> bool:
        return bool(self.modalities or self.tags or self.collection or self.metadata or self.created_after
                    or self.created_before or self.taken_after or self.taken_before)


@dataclass
class SearchRequest:
    parts: list[QueryPart]
    filters: Filters = field(default_factory=Filters)
    space: str | None = None
    k: int = 10
    page: int = 1
    mode: str = "vector"
    exact: bool = False
    exclude_ids: list[int] = field(default_factory=list)
    ef_search: int | None = None
    # Pinned items rise to the top only if at least this similar to the query (None: the setting).
    pin_min_similarity: float | None = None
    # Rank several target modalities on a common scale (see cross_modal_ranking); off = raw cosine.
    balance_modalities: bool = True
    # The user the query runs for (None: anonymous). An item they may not see cannot be a query part:
    # its neighbours would reveal it.
    viewer: Any = None
    # Results below this calibrated relevance are not returned (None: SEARCH_MIN_RELEVANCE) ...
    min_relevance: float | None = None
    # ... unless asked for: then they follow the relevant ones, flagged `weak`.
    include_weak: bool = False
    sort: str = "relevance"
    facets: list[str] = field(default_factory=list)


@dataclass
class Hit:
    item: Item
    score: float  # what the list is sorted by: calibrated similarity, RRF or text rank, by mode
    rank: int
    distance: float | None = None
    similarity: float | None = None  # raw cosine similarity, 1 - distance
    vector_rank: int | None = None
    lexical_rank: int | None = None
    moment: tuple[float, float] | None = None
    relevance: float | None = None  # calibrated, in [0, 1] (search.calibration)
    weak: bool = False  # below the cutoff, shown only on request
    space: str = ""  # the space whose vectors matched it
    passage: "passages.Passage | None" = None  # the part of a text (or long caption) that matched
    passages: int = 0  # how many passages the item has (a long text), for calibration


@dataclass
class SearchPage:
    hits: list[Hit]
    page: int
    k: int
    has_more: bool
    space: str
    mode: str
    exact: bool
    timings: dict[str, float]
    min_relevance: float = 0.0
    sort: str = "relevance"
    total_relevant: int = 0  # among the candidates looked at (SEARCH_MAX_RELEVANT at most)
    weak_count: int = 0  # candidates below the cutoff
    facets: dict[str, dict[str, int]] = field(default_factory=dict)
    # When nothing is relevant: the nearest few anyway, for a "no close match; nearest were..." answer.
    suggestions: list[Hit] = field(default_factory=list)
    matched_words: bool = False  # whether any result matched the query's words (hybrid, lexical)


def resolve_space(name: str | None) -> EmbeddingSpace:
    name = name or settings.SEARCH_DEFAULT_SPACE
    if name not in settings.SEARCH_SPACES:
        raise QueryError(f"unknown space {name!r}; available: {', '.join(settings.SEARCH_SPACES)}")
    try:
        return spaces.register(name)
    except spaces.SpaceIdentityMismatch as exc:
        raise QueryError(f"the space {name!r} is being rebuilt for a new model and cannot be searched yet") from exc


def _check_paging(request: SearchRequest) -> None:
    if request.mode not in MODES:
        raise QueryError(f"unknown mode {request.mode!r}; use {', '.join(MODES)}")
    if not 1 <= request.k <= settings.SEARCH_MAX_K:
        raise QueryError(f"k must be between 1 and {settings.SEARCH_MAX_K}")
    if not 1 <= request.page <= settings.SEARCH_MAX_PAGE:
        raise QueryError(f"page must be between 1 and {settings.SEARCH_MAX_PAGE}")
    if request.ef_search is not None and not 1 <= request.ef_search <= 1000:
        raise QueryError("ef_search must be between 1 and 1000")
    if request.sort not in SORTS:
        raise QueryError(f"unknown sort {request.sort!r}; use {', '.join(SORTS)}")
    unknown = set(request.facets) - set(FACETS)
    if unknown:
        raise QueryError(f"unknown facet {sorted(unknown)[0]!r}; use {', '.join(FACETS)}")
    if request.min_relevance is not None and not 0.0 <= request.min_relevance <= 1.0:
        raise QueryError("min_relevance must be between 0 and 1")
    request.filters.validate()


# A text with passages may fill several of the rows an index scan returns; this many rows per item
# wanted are read first (more when the scan ran out of distinct items before `limit`).
PASSAGE_FANOUT = 3


def vector_ranking(space: EmbeddingSpace, vector: np.ndarray, filters: Filters, limit: int, *,
                   exact: bool = False, exclude_ids=(), ef_search: int | None = None) -> tuple[list, bool]:
    """The `limit` nearest items as (item id, distance), best first; and whether the scan was exact.

    A text item is as near as its nearest vector: its passages' or its own (search.passages), so a
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
    with_passages = (not filters.modalities or Modality.TEXT in filters.modalities) and passages.has_passages(space)
    fanout = PASSAGE_FANOUT if with_passages else 1
    while True:
        rows, scanned = _nearest_rows(space, vector, where, params, limit, fanout, exact=exact,
                                      with_passages=with_passages, ef_search=ef_search)
        # Passages crowded the rows read: read more, unless the scan already saw everything it could.
        if not with_passages or len(rows) >= limit or scanned < limit * fanout or fanout >= 64:
            return rows, exact
        fanout *= 4


def _nearest_rows(space, vector, where, params, limit, fanout, *, exact, with_passages, ef_search):
    distance = knn.distance_sql(space, "e")
    # "+ 0" hides the ORDER BY from the index, which forces the exact scan when asked for.
    order = f"{distance} + 0" if exact else distance
    # Both match the space's partial index (search.spaces.index_sql).
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
    return passages.best_segments(space, vector, item_ids)


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
    passages.forget()


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


def search(request: SearchRequest) -> SearchPage:
    """Search one space (`request.space`), or, when none is named and several are configured, every space
    that can embed the whole query, fused into one list by calibrated relevance."""
    _check_paging(request)
    validate_parts(request.parts)
    if request.space is None and len(settings.SEARCH_SPACES) > 1:
        return _fused_search(request)
    return _search_in_space(request)


def _search_in_space(request: SearchRequest) -> SearchPage:
    space = resolve_space(request.space)
    timings: dict[str, float] = {}
    offset = (request.page - 1) * request.k
    # One extra result tells whether a next page exists.
    window = offset + request.k + 1
    text = " ".join(p.text for p in request.parts if p.text is not None and p.weight > 0)
    if request.mode != "vector" and not text:
        raise QueryError(f"{request.mode} search needs a text part to match words against")

    _check_item_parts(request)
    metrics.SEARCHES.labels(mode=request.mode).inc()
    started = time.perf_counter()
    vector = query_vector(space, request.parts) if request.mode != "lexical" else None
    timings["encode_ms"] = (time.perf_counter() - started) * 1000

    started = time.perf_counter()
    exact = request.exact
    # The relevant set is looked for among this many candidates per ranking: enough to sort and count
    # it when asked to, and always enough for the page.
    wants_set = request.sort != "relevance" or bool(request.facets)
    depth = max(window, settings.SEARCH_MAX_RELEVANT if wants_set else settings.SEARCH_RELEVANT_DEPTH)
    vector_ranks: dict[int, tuple[int, float]] = {}
    vector_scores: dict[int, float] = {}
    lexical_ranks: dict[int, tuple[int, float]] = {}
    if vector is not None:
        options = {"exact": request.exact, "exclude_ids": request.exclude_ids, "ef_search": request.ef_search}
        targets = request.filters.modalities or space.modalities
        if request.balance_modalities and len(targets) > 1:
            ranking, exact = cross_modal_ranking(space, vector, request.filters, depth, **options)
        else:
            plain, exact = vector_ranking(space, vector, request.filters, depth, **options)
            ranking = [(item_id, d, 1.0 - d) for item_id, d in plain]
        vector_ranks = {item_id: (rank, d) for rank, (item_id, d, _) in enumerate(ranking, start=1)}
        vector_scores = {item_id: score for item_id, _, score in ranking}
    if request.mode != "vector":
        ranking = lexical_ranking(text, request.filters, max(FUSION_DEPTH, depth), request.exclude_ids)
        lexical_ranks = {item_id: (rank, score) for rank, (item_id, score) in enumerate(ranking, start=1)}

    candidates = set(vector_ranks) | set(lexical_ranks)
    # Candidates with the fields that judge, order and count them (a hundred of them per search, and a
    # document's text may be a million characters); the items shown are read whole below.
    items = _read_items(candidates, CANDIDATE_FIELDS)
    # An item deleted between ranking and fetching simply drops out.
    # A text ranked by its best passage is judged knowing how many it has (search.calibration.z_score).
    passage_counts = passages.counts(space, [i for i in vector_ranks if i in items and items[i].modality ==
                                             Modality.TEXT]) if vector_ranks and passages.has_passages(space) else {}
    relevance = _relevances(space, request, vector_ranks, lexical_ranks, items, passage_counts)
    if request.mode == "vector":
        # Ranked by the score (each modality against its own baseline); relevance decides what is kept.
        ordered = [(item_id, score) for item_id, score in vector_scores.items() if item_id in items]
    elif request.mode == "lexical":
        ordered = [(item_id, score) for item_id, (_, score) in lexical_ranks.items() if item_id in items]
    else:
        fused: dict[int, float] = {}
        for ranks in (vector_ranks, lexical_ranks):
            for item_id, (rank, _) in ranks.items():
                fused[item_id] = fused.get(item_id, 0.0) + 1.0 / (RRF_K + rank)
        ordered = sorted(((i, f) for i, f in fused.items() if i in items), key=lambda pair: (-pair[1], pair[0]))
    cutoff = settings.SEARCH_MIN_RELEVANCE if request.min_relevance is None else request.min_relevance
    relevant = [pair for pair in ordered if relevance[pair[0]] >= cutoff]
    weak = [pair for pair in ordered if relevance[pair[0]] < cutoff]
    if (request.sort == "relevance" and request.balance_modalities
            and len(request.filters.modalities or space.modalities) > 1):
        relevant = _texts_not_crowding(relevant, items)
    relevant = _pinned_first(relevant, vector_ranks, lexical_ranks, request, items)
    if request.sort != "relevance":
        relevant = _sorted_by_field(relevant, items, request.sort)
    listed = relevant + (weak if request.include_weak else [])
    page_ids = listed[offset:offset + request.k]
    moments = {}
    if vector is not None:
        audio_ids = [i for i, _ in page_ids if items[i].modality == Modality.AUDIO]
        moments = audio_moments(space, vector, audio_ids)
    timings["sql_ms"] = (time.perf_counter() - started) * 1000

    weak_ids = {item_id for item_id, _ in weak}
    shown_ids = [item_id for item_id, _ in page_ids] + ([item_id for item_id, _ in weak[:SUGGESTIONS]]
                                                       if not relevant else [])
    fresh = _read_items(shown_ids, _shown_columns())
    gone = set(shown_ids) - set(fresh)
    if gone:
        # Deleted since ranking: such an item drops out here too rather than be shown half-loaded.
        page_ids = [pair for pair in page_ids if pair[0] not in gone]
        weak = [pair for pair in weak if pair[0] not in gone]
        relevant = [pair for pair in relevant if pair[0] not in gone]
    items.update(fresh)

    def hit(position: int, item_id: int, score: float) -> Hit:
        item = items[item_id]
        vr, lr = vector_ranks.get(item_id), lexical_ranks.get(item_id)
        moment = moments.get(item_id)
        if moment is None and item.modality == Modality.AUDIO and item.duration:
            moment = (0.0, float(item.duration))
        return Hit(item=item, score=round(float(score), 6), rank=position,
                   distance=round(vr[1], 6) if vr else None,
                   similarity=round(1.0 - vr[1], 6) if vr else None, vector_rank=vr[0] if vr else None,
                   lexical_rank=lr[0] if lr else None, moment=moment, relevance=round(relevance[item_id], 4),
                   weak=item_id in weak_ids, space=space.name, passages=passage_counts.get(item_id, 0))

    hits = [hit(position, item_id, score) for position, (item_id, score) in enumerate(page_ids, start=offset + 1)]
    suggestions = [hit(n, item_id, score) for n, (item_id, score) in enumerate(weak[:SUGGESTIONS], start=1)] \
        if not relevant else []
    started = time.perf_counter()
    shown = {h.item.pk: h.item for h in hits + suggestions}
    found = passages.for_hits(list(shown.values()), space=space, vector=vector, words=text,
                              lexical_ids=set(lexical_ranks))
    for h in hits + suggestions:
        h.passage = found.get(h.item.pk)
    timings["passages_ms"] = (time.perf_counter() - started) * 1000
    return SearchPage(hits=hits, page=request.page, k=request.k, has_more=len(listed) > offset + request.k,
                      space=space.name, mode=request.mode, exact=exact, timings=timings, min_relevance=cutoff,
                      sort=request.sort, total_relevant=len(relevant), weak_count=len(weak),
                      facets=_facets([items[i] for i, _ in relevant], request.facets), suggestions=suggestions,
                      matched_words=any(item_id in lexical_ranks for item_id, _ in listed))


def _part_modalities(request: SearchRequest) -> set[str]:
    """What a space must embed to take every part of the query (item and vector parts are checked apart)."""
    needed = set()
    for part in request.parts:
        if part.text is not None:
            needed.add(Modality.TEXT)
        elif part.data is not None:
            mime = formats.sniff(part.data[:64])
            if mime:
                needed.add(formats.BY_MIME[mime].modality)
    return needed


def eligible_spaces(request: SearchRequest) -> list[str]:
    """The configured spaces that can embed every part of the query and hold items of the wanted modalities."""
    needed = _part_modalities(request)
    wanted = set(request.filters.modalities) or set(Modality.values)
    item_ids = {part.item_id for part in request.parts if part.item_id is not None}
    vector_dims = {len(part.vector) for part in request.parts if part.vector is not None}
    names = []
    for name in settings.SEARCH_SPACES:
        try:
            encoder = spaces.get_encoder(name)
            if not all(encoder.can_embed(modality) for modality in needed):
                continue
            space = resolve_space(name)
        except (QueryError, EncoderError, spaces.SpaceIdentityMismatch):
            continue  # a space that cannot be used right now does not take part
        if vector_dims and vector_dims != {space.dimension}:
            continue
        if item_ids and Embedding.objects.filter(space=space, item_id__in=item_ids,
                                                 segment_start__isnull=True).count() < len(item_ids):
            continue
        if not any(calibrate.modality_counts(space).get(modality) for modality in wanted & set(space.modalities)):
            continue
        names.append(name)
    return names


def _fused_search(request: SearchRequest) -> SearchPage:
    names = eligible_spaces(request)
    if not names:
        raise QueryError("no configured space can embed every part of this query and holds items of the kinds "
                         "asked for; name one with `space`")
    if len(names) == 1:
        return _search_in_space(replace(request, space=names[0]))
    offset = (request.page - 1) * request.k
    window = offset + request.k + 1
    wants_set = request.sort != "relevance" or bool(request.facets)
    # Each space lists the same candidates whatever the page, so pages of the fused list stay consistent.
    depth = max(window, settings.SEARCH_MAX_RELEVANT if wants_set else settings.SEARCH_RELEVANT_DEPTH)
    pages = [_search_in_space(replace(request, space=name, page=1, k=depth, sort="relevance", facets=[],
                                      include_weak=True)) for name in names]
    best: dict[int, Hit] = {}
    for page in pages:
        for hit in page.hits:
            kept = best.get(hit.item.pk)
            if kept is None or (hit.relevance or 0) > (kept.relevance or 0):
                best[hit.item.pk] = hit
    # Calibrated relevance is what makes scores of different spaces comparable.
    ordered = sorted(best.values(), key=lambda hit: (-(hit.relevance or 0), hit.item.pk))
    relevant = [hit for hit in ordered if not hit.weak]
    weak = [hit for hit in ordered if hit.weak]
    if request.sort != "relevance":
        items = {hit.item.pk: hit.item for hit in relevant}
        by_id = {hit.item.pk: hit for hit in relevant}
        relevant = [by_id[i] for i, _ in _sorted_by_field([(h.item.pk, 0) for h in relevant], items, request.sort)]
    listed = relevant + (weak if request.include_weak else [])
    hits = [replace(hit, rank=position) for position, hit in
            enumerate(listed[offset:offset + request.k], start=offset + 1)]
    timings: dict[str, float] = {}
    for page in pages:
        for key, value in page.timings.items():
            timings[key] = timings.get(key, 0.0) + value
    cutoff = pages[0].min_relevance
    return SearchPage(
        hits=hits, page=request.page, k=request.k, has_more=len(listed) > offset + request.k,
        space="+".join(names), mode=request.mode, exact=all(page.exact for page in pages), timings=timings,
        min_relevance=cutoff, sort=request.sort, total_relevant=len(relevant), weak_count=len(weak),
        facets=_facets([hit.item for hit in relevant], request.facets),
        suggestions=[replace(hit, rank=n) for n, hit in enumerate(weak[:SUGGESTIONS], start=1)] if not relevant
        else [],
        matched_words=any(page.matched_words for page in pages),
    )


def query_modality(request: SearchRequest, items_by_id: dict | None = None) -> str | None:
    """The modality a query mostly is (its heaviest positive part), for calibration; None for raw vectors."""
    best, best_weight = None, 0.0
    item_modalities = dict(Item.objects.filter(pk__in=[p.item_id for p in request.parts if p.item_id])
                           .values_list("pk", "modality")) if any(p.item_id for p in request.parts) else {}
    for part in request.parts:
        if part.weight <= best_weight:
            continue
        if part.text is not None:
            modality = Modality.TEXT
        elif part.data is not None:
            mime = formats.sniff(part.data[:64])
            modality = formats.BY_MIME[mime].modality if mime else None
        elif part.item_id is not None:
            modality = item_modalities.get(part.item_id)
        else:
            modality = None
        best, best_weight = modality, part.weight
    return best


# What relevance, balancing, pinning, sorting and facets read of every candidate (see the functions below).
CANDIDATE_FIELDS = ("id", "modality", "title", "tags", "collection", "created_at", "taken_at", "pinned")


def _shown_columns() -> tuple[str, ...]:
    """Every column of an item but its search document (the full-text index's input, never shown)."""
    return tuple(f.column for f in Item._meta.concrete_fields if f.name != "search_document")


def _read_items(ids, columns) -> dict[int, Item]:
    """Items by id, with `columns` read and the rest deferred, in one hand-written statement: the ORM
    compiles a queryset anew on each call, which cost more than running it (twice per search)."""
    if not ids:
        return {}
    quote = connection.ops.quote_name
    sql = f"SELECT {', '.join(map(quote, columns))} FROM search_item WHERE id = ANY(%s)"
    return {item.pk: item for item in Item.objects.raw(sql, [list(ids)])}


def _relevances(space, request, vector_ranks, lexical_ranks, items, passage_counts) -> dict[int, float]:
    """Calibrated relevance of every candidate: from its similarity for the query->item modality pair, and
    at least 0.5 + for a full-text match (words that match are relevant by definition)."""
    calibration = calibrate.current(space) if vector_ranks else {}
    modality = query_modality(request)
    out = {}
    for item_id, item in items.items():
        value = 0.0
        if item_id in vector_ranks:
            value = calibrate.relevance(calibration, modality or item.modality, item.modality,
                                        1.0 - vector_ranks[item_id][1], passages=passage_counts.get(item_id, 0))
        if item_id in lexical_ranks:
            rank = lexical_ranks[item_id][1]
            value = max(value, 0.5 + 0.5 * rank / (rank + 0.1))
        out[item_id] = value
    return out


def _sorted_by_field(pairs, items, sort: str):
    fields = SORTS[sort]

    def key(pair):
        item = items[pair[0]]
        values = []
        for name in fields:
            descending = name.startswith("-")
            name = name.lstrip("-")
            value = item.title.lower() if name == "title_lower" else getattr(item, name)
            # Items without the field (a photo with no capture date) go last either way.
            missing = value is None
            if isinstance(value, datetime):
                value = value.timestamp()
            if descending and not missing:
                value = -value if not isinstance(value, str) else value
            values.append((missing, value if not missing else 0))
        return values

    if sort == "title":
        return sorted(pairs, key=lambda pair: (items[pair[0]].title.lower() or "\uffff", pair[0]))
    return sorted(pairs, key=key)


def _facets(items: list[Item], names: list[str]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for name in names:
        counts: dict[str, int] = {}
        for item in items:
            values = item.tags if name == "tags" else [getattr(item, name)]
            for value in values:
                if value:
                    counts[value] = counts.get(value, 0) + 1
        out[name] = dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
    return out


def _check_item_parts(request: SearchRequest) -> None:
    """Items named as query parts must be ones the viewer may read; a hidden one is answered exactly as
    a missing one, so ids cannot be probed."""
    wanted = {part.item_id for part in request.parts if part.item_id is not None}
    if not wanted:
        return
    found = set(access.visible(Item.objects.filter(pk__in=wanted), request.viewer).values_list("pk", flat=True))
    for item_id in sorted(wanted - found):
        raise QueryError(f"there is no item {item_id}")


def _texts_not_crowding(pairs: list, items: dict) -> list:
    """In a list over several modalities, a text neither leads nor follows another text while pictures
    and sounds remain: a caption restating a text query ("a high beeping tone") is always nearer to it
    than the sound it describes, and five captions first hid the sounds (issue 12, item 6). Otherwise
    the order is kept."""
    texts = [pair for pair in pairs if items[pair[0]].modality == Modality.TEXT]
    others = [pair for pair in pairs if items[pair[0]].modality != Modality.TEXT]
    mixed, rank = [], {pair[0]: n for n, pair in enumerate(pairs)}
    while texts or others:
        text_next = texts and (not others or rank[texts[0][0]] < rank[others[0][0]])
        crowding = not mixed or items[mixed[-1][0]].modality == Modality.TEXT
        mixed.append(texts.pop(0) if text_next and not (crowding and others) else others.pop(0))
    return mixed


def _pinned_first(ordered, vector_ranks, lexical_ranks, request: SearchRequest, items: dict):
    """Move pinned items that are relevant enough to the front, keeping both groups' order.

    Done over the whole candidate list before paging, so pages stay consistent.
    """
    pinned = {item_id for item_id, _ in ordered if items[item_id].pinned}
    if not pinned:
        return ordered
    threshold = request.pin_min_similarity
    if threshold is None:
        threshold = settings.SEARCH_PIN_MIN_SIMILARITY

    def relevant(item_id: int) -> bool:
        if item_id in vector_ranks:
            return 1.0 - vector_ranks[item_id][1] >= threshold
        return item_id in lexical_ranks  # a full-text match is relevant by definition

    promoted = [pair for pair in ordered if pair[0] in pinned and relevant(pair[0])]
    chosen = {item_id for item_id, _ in promoted}
    return promoted + [pair for pair in ordered if pair[0] not in chosen]


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
