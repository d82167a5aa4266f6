"""What a search asks for and what it answers: the request, its filters, hits and pages, and their checks."""

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
from django.conf import settings

from search.engine import extracted_matches, passage_matches
from search.engine.query_vectors import QueryError, QueryPart
from search.models import Item, Modality

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
    # Rank several target modalities on a common scale (see rankers.cross_modal_results); off = raw cosine.
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
    relevance: float | None = None  # calibrated, in [0, 1] (search.engine.calibration)
    weak: bool = False  # below the cutoff, shown only on request
    space: str = ""  # the space whose vectors matched it
    passage: "passage_matches.Passage | None" = None  # the part of a text (or long caption) that matched
    passages: int = 0  # how many passages the item has (a long text), for calibration
    # Where it matched: "caption", "text" (a document's), "text_in_picture" or "speech"; None: by its picture or
    # sound alone. `words`: the words read from inside it that matched (search.engine.extracted_matches).
    matched_in: str | None = None
    words: "extracted_matches.WordsFound | None" = None


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
    # The query as this space embedded it (None for words alone): a fused search finds the shown hits' passages
    # and moments with it, for those hits only.
    vector: np.ndarray | None = field(default=None, repr=False, compare=False)


def validate_request(request: SearchRequest) -> None:
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
