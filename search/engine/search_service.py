"""The search service: every search in the product (web UI, admin, REST API) runs here.

Modes: `vector` ranks by cosine distance in one space (HNSW with pgvector iterative index
scans, so filtered queries still return k results; an exact scan when the filter leaves
few rows or when asked); `lexical` ranks by PostgreSQL full text over title and text;
`hybrid` fuses both rankings by reciprocal rank fusion. Hidden items never appear.
"""

import time
from dataclasses import dataclass, replace

import numpy as np
from django.conf import settings

from encoders.base import EncoderError
from search.engine import access, calibration, extracted_matches, passage_matches, ranking_batch
from search.engine.query_vectors import QueryError, embed_text_in_spaces, query_vector, validate_parts
from search.engine.rankers import (
    FUSION_DEPTH,
    RRF_K,
    CrossModalPlan,
    carries_no_meaning,
    cross_modal_plan,
    cross_modal_results,
    scan_rows,
    vector_scan,
)
from search.engine.ranking_batch import CANDIDATE_FIELDS, VectorScan, WordsScan
from search.engine.requests import Hit, SearchPage, SearchRequest, validate_request
from search.engine.result_order import (
    facet_counts,
    pinned_first,
    read_items,
    relevances,
    shown_columns,
    shown_items,
    sorted_by_field,
    texts_not_crowding,
)
from search.media import media_formats
from search.models import Embedding, EmbeddingSpace, Item, Modality
from search.runtime import metrics
from search.storage import spaces

SUGGESTIONS = 3


def resolve_space(name: str | None, *, kept: bool = False) -> EmbeddingSpace:
    """A configured space's row; with `kept`, the row kept between searches (search.storage.spaces.searchable:
    a search checks it for change in its own statement)."""
    name = name or settings.SEARCH_DEFAULT_SPACE
    if name not in settings.SEARCH_SPACES:
        raise QueryError(f"unknown space {name!r}; available: {', '.join(settings.SEARCH_SPACES)}")
    try:
        return spaces.searchable(name) if kept else spaces.register(name)
    except spaces.SpaceIdentityMismatch as exc:
        raise QueryError(f"the space {name!r} is being rebuilt for a new model and cannot be searched yet") from exc


def search(request: SearchRequest) -> SearchPage:
    """Search one space (`request.space`), or, when none is named and several are configured, every space
    that can embed the whole query, fused into one list by calibrated relevance."""
    validate_request(request)
    validate_parts(request.parts)
    for _ in range(2):
        try:
            return _search(request)
        except ranking_batch.SpaceChanged:
            # A kept space row went stale (recalibrated, rebuilt): run again on fresh ones.
            spaces.forget()
    return _search(request)


def _search(request: SearchRequest) -> SearchPage:
    if request.space is None and len(settings.SEARCH_SPACES) > 1:
        return _fused_search(request)
    return _search_in_space(request)


@dataclass
class _Plan:
    """One space's part of a search: its query vector and the scans that rank for it."""

    request: SearchRequest
    space: EmbeddingSpace
    vector: np.ndarray | None
    text: str
    depth: int
    timings: dict[str, float]
    cross: CrossModalPlan | None = None
    plain: VectorScan | None = None
    words: WordsScan | None = None

    @property
    def scans(self) -> list[VectorScan]:
        return self.cross.scans if self.cross else [self.plain] if self.plain else []


def read_depth(request: SearchRequest) -> int:
    """How many candidates each ranking reads, which also sets the index's ef_search (ranking_batch.VectorScan.knobs):
    the relevant set is looked for among SEARCH_RELEVANT_DEPTH of them (SEARCH_MAX_RELEVANT when it is sorted by a
    field or counted into facets), and always enough for the page. A vector search without a relevance cutoff
    (min_relevance 0: every candidate is relevant) reads what the index searches anyway, its ef_search (the
    request's or SEARCH_HNSW_EF_SEARCH) up to SEARCH_RELEVANT_DEPTH, or the pages up to the one asked for plus one
    result (whether a next page exists) where that is more: a million-item search at k = 10 and ef_search 40 reads
    40 rows at ef_search 40, not a hundred at a hundred. Reading fewer rows than the index searched would save little
    and would cut runs of equal distances, and the index's near misses, at a place that moves with the page; reading
    more than the relevant depth at a wide ef_search (600 rows at 600) cost more in Python than the index's search
    (bench_million's API). A hybrid search reads the
    full depth whatever its cutoff: an item's place in the vector ranking below the page still counts in the fused
    rank (a keyword match ranked 16th by vector).

    With a cutoff, reading a page's worth first and deeper only when needed was tried: with a modality filter, the
    index's relaxed-order scan returned another top for LIMIT 4 than for LIMIT 100 (a test of the same queries
    both ways disagreed on 1 to 4 of 7), so such a search reads the full depth.
    """
    window = (request.page - 1) * request.k + request.k + 1
    if request.sort != "relevance" or request.facets:
        return max(window, settings.SEARCH_MAX_RELEVANT)
    if _cutoff(request) <= 0 and request.mode == "vector":
        return max(window, min(request.ef_search or settings.SEARCH_HNSW_EF_SEARCH, settings.SEARCH_RELEVANT_DEPTH))
    return max(window, settings.SEARCH_RELEVANT_DEPTH)


def _cutoff(request: SearchRequest) -> float:
    return settings.SEARCH_MIN_RELEVANCE if request.min_relevance is None else request.min_relevance


def _plan(request: SearchRequest, space: EmbeddingSpace) -> _Plan:
    text = " ".join(p.text for p in request.parts if p.text is not None and p.weight > 0)
    if request.mode != "vector" and not text:
        raise QueryError(f"{request.mode} search needs a text part to match words against")
    _check_item_parts(request)
    metrics.SEARCHES.labels(mode=request.mode).inc()
    started = time.perf_counter()
    vector = query_vector(space, request.parts) if request.mode != "lexical" else None
    timings = {"encode_ms": (time.perf_counter() - started) * 1000}
    depth = read_depth(request)
    plan = _Plan(request, space, vector, text, depth, timings)
    # A query this space's model has no meaning for (ordinary prose in the demo model) gets no vector matches
    # here: they would be its "unknown" point's neighbours, not answers. Other spaces and its words still answer.
    if vector is not None and not carries_no_meaning(space, vector):
        options = {"exact": request.exact, "exclude_ids": request.exclude_ids, "ef_search": request.ef_search}
        targets = request.filters.modalities or space.modalities
        if request.balance_modalities and len(targets) > 1:
            plan.cross = cross_modal_plan(space, vector, request.filters, depth, **options)
        else:
            plan.plain = vector_scan(space, vector, request.filters, depth, **options)
    if request.mode != "vector":
        plan.words = WordsScan(text, request.filters, max(FUSION_DEPTH, depth), tuple(request.exclude_ids))
    return plan


def _run(plans: list[_Plan], *, sort: str) -> tuple[list[list[ranking_batch.Ranked]],
                                                   list[ranking_batch.Ranked | None], dict, dict[tuple[int, int], int]]:
    """Every plan's scans in one statement (search.engine.ranking_batch). The words ranking is the same for
    every space of a fused search: asked once. `sort`: the search's order (a date order reads the dates)."""
    started = time.perf_counter()
    scans = [scan for plan in plans for scan in plan.scans]
    words = next((plan.words for plan in plans if plan.words is not None), None)
    found, found_words, items, counts = ranking_batch.run(scans, words, default_ef=settings.SEARCH_HNSW_EF_SEARCH,
                                                          check=True, dates=sort != "relevance")
    per_plan, at = [], 0
    for plan in plans:
        per_plan.append(found[at:at + len(plan.scans)])
        at += len(plan.scans)
        plan.timings["sql_ms"] = (time.perf_counter() - started) * 1000 / len(plans)
    return per_plan, [found_words if plan.words is not None else None for plan in plans], items, counts


def _search_in_space(request: SearchRequest, *, space: EmbeddingSpace | None = None) -> SearchPage:
    plan = _plan(request, space or resolve_space(request.space, kept=True))
    [found], [words], items, counts = _run([plan], sort=request.sort)
    return _page(plan, found, words, items, counts, details=True)


def _page(plan: _Plan, found: list[ranking_batch.Ranked], found_words: ranking_batch.Ranked | None,
          candidates: dict[int, Item], counts: dict[tuple[int, int], int], *, details: bool) -> SearchPage:
    """One space's page from its rankings. Without `details` (a fused search's candidates, a hundred per space),
    the items are not read whole and the hits' matched passages and audio moments are left for the caller to
    find for the few it shows (`_add_details`)."""
    request, space, vector, text = plan.request, plan.space, plan.vector, plan.text
    timings = plan.timings
    started = time.perf_counter()
    offset = (request.page - 1) * request.k
    exact = request.exact
    scanned = [scan_rows(scan, ranked) for scan, ranked in zip(plan.scans, found, strict=True)]
    if plan.cross is not None:
        ranking, exact = cross_modal_results(plan.cross, scanned)
    elif plan.plain is not None:
        ranking = [(item_id, d, 1.0 - d) for item_id, d in scanned[0]]
        exact = plan.plain.exact
    else:
        ranking = []
    vector_ranks = {item_id: (rank, d) for rank, (item_id, d, _) in enumerate(ranking, start=1)}
    vector_scores = {item_id: score for item_id, _, score in ranking}
    lexical_ranks = {item_id: (rank, score) for rank, (item_id, score) in
                     enumerate(found_words.rows if found_words else [], start=1)}
    wanted = set(vector_ranks) | set(lexical_ranks)
    # A passage re-read (scan_rows) may bring candidates the statement did not: read those too.
    missing = wanted - set(candidates)
    if missing:
        candidates.update(read_items(missing, CANDIDATE_FIELDS))
    # An item deleted between ranking and fetching simply drops out.
    items = {item_id: candidates[item_id] for item_id in wanted if item_id in candidates}
    # A text ranked by its best passage is judged knowing how many it has (search.engine.calibration.z_score).
    passage_counts = {item_id: counts[(space.pk, item_id)] for item_id in vector_ranks
                      if (space.pk, item_id) in counts}
    relevance = relevances(space, request, vector_ranks, lexical_ranks, items, passage_counts, vector)
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
    cutoff = _cutoff(request)
    relevant = [pair for pair in ordered if relevance[pair[0]] >= cutoff]
    weak = [pair for pair in ordered if relevance[pair[0]] < cutoff]
    if (request.sort == "relevance" and request.balance_modalities
            and len(request.filters.modalities or space.modalities) > 1):
        relevant = texts_not_crowding(relevant, items)
    relevant = pinned_first(relevant, vector_ranks, lexical_ranks, request, items)
    if request.sort != "relevance":
        relevant = sorted_by_field(relevant, items, request.sort)
    listed = relevant + (weak if request.include_weak else [])
    page_ids = listed[offset:offset + request.k]
    timings["rank_ms"] = (time.perf_counter() - started) * 1000

    weak_ids = {item_id for item_id, _ in weak}
    shown_ids = [item_id for item_id, _ in page_ids] + ([item_id for item_id, _ in weak[:SUGGESTIONS]]
                                                       if not relevant else [])
    # Without details the caller reads whole only the few items it shows (a fused search's candidates are a hundred).
    segments: dict[int, tuple[float, float]] = {}
    if details:
        fresh, segments = shown_items({item_id: (space, vector) for item_id in shown_ids}, shown_columns())
    else:
        fresh = {item_id: items[item_id] for item_id in shown_ids}
    # A recording's moment nearest to the query (a text space has none: it reads a recording's words).
    moments = {item_id: segment for item_id, segment in segments.items()
               if fresh[item_id].modality == Modality.AUDIO and Modality.AUDIO in space.modalities}
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
    if details:
        started = time.perf_counter()
        _add_details(hits + suggestions, space, vector, text, set(lexical_ranks), segments)
        timings["passages_ms"] = (time.perf_counter() - started) * 1000
    return SearchPage(hits=hits, page=request.page, k=request.k, has_more=len(listed) > offset + request.k,
                      space=space.name, mode=request.mode, exact=exact, timings=timings, min_relevance=cutoff,
                      sort=request.sort, total_relevant=len(relevant), weak_count=len(weak),
                      facets=facet_counts([items[i] for i, _ in relevant], request.facets), suggestions=suggestions,
                      matched_words=any(item_id in lexical_ranks for item_id, _ in listed), vector=vector)


def _add_details(hits: list[Hit], space: EmbeddingSpace, vector, words: str, lexical_ids: set[int],
                 segments: dict[int, tuple[float, float]], moments: bool = False, deferred: list | None = None) -> None:
    """Where each hit matched: the passage of a text (and the query's words in it), the words found in a picture or
    a recording; with `moments`, the moment of each audio hit that matched best (a one-space page sets those
    itself). `segments`: each hit's nearest segment in this space (search.engine.result_order.shown_items)."""
    shown = {h.item.pk: h.item for h in hits}
    found = passage_matches.for_hits(list(shown.values()), space=space, vector=vector, words=words,
                                     lexical_ids=lexical_ids, segments=segments, deferred=deferred)
    audio = moments and vector is not None and Modality.AUDIO in space.modalities
    for h in hits:
        h.passage = found.get(h.item.pk)
        if audio and h.item.modality == Modality.AUDIO and h.item.pk in segments:
            h.moment = segments[h.item.pk]
    extracted_matches.annotate(hits, space=space, vector=vector, words=words, lexical_ids=lexical_ids,
                               segments=segments)


def _part_modalities(request: SearchRequest) -> set[str]:
    """What a space must embed to take every part of the query (item and vector parts are checked apart)."""
    needed = set()
    for part in request.parts:
        if part.text is not None:
            needed.add(Modality.TEXT)
        elif part.data is not None:
            mime = media_formats.sniff(part.data[:64])
            if mime:
                needed.add(media_formats.BY_MIME[mime].modality)
    return needed


def eligible_spaces(request: SearchRequest, *, require_items: bool = True) -> list[str]:
    """The configured spaces that can embed every part of the query and hold items of the wanted modalities
    (with `require_items=False`, whether or not they hold any yet)."""
    return [space.name for space in _eligible(request, require_items=require_items)]


def _eligible(request: SearchRequest, *, require_items: bool = True) -> list[EmbeddingSpace]:
    needed = _part_modalities(request)
    wanted = set(request.filters.modalities) or set(Modality.values)
    item_ids = {part.item_id for part in request.parts if part.item_id is not None}
    vector_dims = {len(part.vector) for part in request.parts if part.vector is not None}
    usable: list[EmbeddingSpace] = []
    for name in settings.SEARCH_SPACES:
        try:
            encoder = spaces.get_encoder(name)
            if not all(encoder.can_embed(modality) for modality in needed):
                continue
            space = resolve_space(name, kept=True)
        except (QueryError, EncoderError, spaces.SpaceIdentityMismatch):
            continue  # a space that cannot be used right now does not take part
        if vector_dims and vector_dims != {space.dimension}:
            continue
        takes_part = _holds(space, item_ids, wanted, require_items)
        if not takes_part and spaces.is_kept(space) and not spaces.recently_found_empty(name):
            # A kept row that seems to hold nothing may be one whose space was made anew (a restored database, a
            # test's flush): ask again with the row read now. Its check in the search's statement would come too
            # late: a space left out is never searched. Read now and still empty, it is kept, and not read again
            # for a few seconds (a space that holds nothing yet cost every search two statements).
            spaces.forget(name)
            space = resolve_space(name, kept=True)
            takes_part = _holds(space, item_ids, wanted, require_items)
            if not takes_part:
                spaces.found_empty(name)
        if takes_part:
            usable.append(space)
    return usable


def _holds(space: EmbeddingSpace, item_ids: set[int], wanted: set[str], require_items: bool) -> bool:
    """Whether the space has a vector of every item named in the query and, with `require_items`, items of the
    wanted kinds (a text space also holds pictures and recordings by their words)."""
    if item_ids and Embedding.objects.filter(space=space, item_id__in=item_ids,
                                             segment_start__isnull=True).count() < len(item_ids):
        return False
    return not require_items or any(calibration.modality_counts(space).get(modality) for modality in wanted)


def _fused_search(request: SearchRequest) -> SearchPage:
    # Each space's row is read once for the whole search (it was read five times).
    chosen = _eligible(request)
    if not chosen:
        # Nothing stored yet where this query could look (a new database): an empty answer, not an error.
        chosen = _eligible(request, require_items=False)[:1]
    if not chosen:
        raise QueryError("no configured space can embed every part of this query; name one with `space`")
    if len(chosen) == 1:
        return _search_in_space(replace(request, space=chosen[0].name), space=chosen[0])
    names = [space.name for space in chosen]
    by_name = {space.name: space for space in chosen}
    offset = (request.page - 1) * request.k
    # Each space reads what one space's search would (read_depth): with a cutoff the same candidates whatever the page,
    # so pages of the fused list stay consistent.
    depth = read_depth(request)
    if request.mode != "lexical":
        for part in request.parts:
            if part.text is not None:  # each space's encoding at once (the plans then read them from the cache)
                embed_text_in_spaces(chosen, part.text)
    plans = [_plan(replace(request, space=name, page=1, k=depth, sort="relevance", facets=[], include_weak=True),
                   by_name[name]) for name in names]
    found, words, candidates, counts = _run(plans, sort=request.sort)
    pages = [_page(plan, plan_found, plan_words, candidates, counts, details=False)
             for plan, plan_found, plan_words in zip(plans, found, words, strict=True)]
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
    if request.sort == "relevance" and request.balance_modalities and len(
            request.filters.modalities or {m for space in chosen for m in space.modalities}) > 1:
        # As in one space: a caption restating the query does not lead the pictures and sounds it describes.
        by_id = {hit.item.pk: hit for hit in relevant}
        relevant = [by_id[item_id] for item_id, _ in texts_not_crowding(
            [(hit.item.pk, hit.relevance) for hit in relevant], {hit.item.pk: hit.item for hit in relevant})]
    if request.sort != "relevance":
        items = {hit.item.pk: hit.item for hit in relevant}
        by_id = {hit.item.pk: hit for hit in relevant}
        relevant = [by_id[i] for i, _ in sorted_by_field([(h.item.pk, 0) for h in relevant], items, request.sort)]
    listed = relevant + (weak if request.include_weak else [])
    hits = [replace(hit, rank=position) for position, hit in
            enumerate(listed[offset:offset + request.k], start=offset + 1)]
    timings: dict[str, float] = {}
    for page in pages:
        for key, value in page.timings.items():
            timings[key] = timings.get(key, 0.0) + value
    suggestions = [replace(hit, rank=n) for n, hit in enumerate(weak[:SUGGESTIONS], start=1)] if not relevant else []
    # The shown items whole, and their passages and moments, each by the space that found it: each space's page
    # left them out (reading and finding them for its hundred candidates cost more than the search).
    started = time.perf_counter()
    vectors = {page.space: page.vector for page in pages}
    whole, segments = shown_items({hit.item.pk: (by_name[hit.space], vectors[hit.space])
                                   for hit in hits + suggestions}, shown_columns())
    # An item deleted since ranking drops out rather than be shown half-loaded.
    hits = [replace(hit, item=whole[hit.item.pk]) for hit in hits if hit.item.pk in whole]
    suggestions = [replace(hit, item=whole[hit.item.pk]) for hit in suggestions if hit.item.pk in whole]
    words = " ".join(p.text for p in request.parts if p.text is not None and p.weight > 0)
    deferred: list = []  # every space's passages, marked in one statement
    for page in pages:
        shown = [hit for hit in hits + suggestions if hit.space == page.space]
        if shown:
            _add_details(shown, by_name[page.space], page.vector, words,
                         {hit.item.pk for hit in shown if hit.lexical_rank is not None},
                         {hit.item.pk: segments[hit.item.pk] for hit in shown if hit.item.pk in segments},
                         moments=True, deferred=deferred)
    passage_matches.mark_together(deferred, words)
    timings["passages_ms"] = timings.get("passages_ms", 0.0) + (time.perf_counter() - started) * 1000
    return SearchPage(
        hits=hits, page=request.page, k=request.k, has_more=len(listed) > offset + request.k,
        space="+".join(names), mode=request.mode, exact=all(page.exact for page in pages), timings=timings,
        min_relevance=pages[0].min_relevance, sort=request.sort, total_relevant=len(relevant), weak_count=len(weak),
        facets=facet_counts([hit.item for hit in relevant], request.facets), suggestions=suggestions,
        matched_words=any(page.matched_words for page in pages),
    )




def _check_item_parts(request: SearchRequest) -> None:
    """Items named as query parts must be ones the viewer may read; a hidden one is answered exactly as
    a missing one, so ids cannot be probed."""
    wanted = {part.item_id for part in request.parts if part.item_id is not None}
    if not wanted:
        return
    found = set(access.visible(Item.objects.filter(pk__in=wanted), request.viewer).values_list("pk", flat=True))
    for item_id in sorted(wanted - found):
        raise QueryError(f"there is no item {item_id}")
