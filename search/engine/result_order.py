"""From ranked candidates to the listed page: the items' columns, calibrated relevance, field sorts, facets,
texts kept from crowding other kinds out, and pinned items first."""

import math
from datetime import datetime

from django.conf import settings

from search.engine import calibration
from search.engine.rankers import related_similarity, vector_ranking
from search.engine.requests import SORTS, Filters, SearchRequest
from search.media import media_formats
from search.models import Item, Modality
from search.storage import knn
from search.storage.replicas import read_connection as connection


def shown_columns() -> tuple[str, ...]:
    """Every column of an item but its search document (the full-text index's input, never shown)."""
    return tuple(f.column for f in Item._meta.concrete_fields if f.name != "search_document")


def read_items(ids, columns) -> dict[int, Item]:
    """Items by id, with `columns` read and the rest deferred, in one hand-written statement: the ORM
    compiles a queryset anew on each call, which cost more than running it (twice per search)."""
    if not ids:
        return {}
    quote = connection.ops.quote_name
    sql = f"SELECT {', '.join(map(quote, columns))} FROM search_item WHERE id = ANY(%s)"
    return {item.pk: item for item in Item.objects.raw(sql, [list(ids)])}


def shown_items(wanted: dict[int, tuple], columns) -> tuple[dict[int, Item], dict[int, tuple[float, float]]]:
    """The items shown, whole, and for each the span of its segment (a text's passage, a recording's window, the
    words read from a picture) nearest to the query in the space that found it, in one statement.
    `wanted`: item id -> (that space, the query as that space embedded it, or None: no segment wanted)."""
    if not wanted:
        return {}, {}
    quote = connection.ops.quote_name
    by_space = {space.pk: (space, vector) for space, vector in wanted.values() if vector is not None}
    order, params = [], []
    for pk, (space, vector) in by_space.items():
        order.append(f"WHEN {int(pk)} THEN {knn.distance_sql(space, 'e')}")
        params.append(knn.vector_literal(vector))
    ids = list(wanted)
    spaces_of = [wanted[i][0].pk if wanted[i][0].pk in by_space and wanted[i][1] is not None else 0 for i in ids]
    segment = (f" LEFT JOIN LATERAL (SELECT e.segment_start, e.segment_end FROM search_embedding e"
               f" WHERE e.space_id = v.space_id AND e.item_id = v.item_id AND e.segment_start IS NOT NULL"
               f" ORDER BY CASE v.space_id {' '.join(order)} END, e.segment_start LIMIT 1) seg ON true"
               if order else " LEFT JOIN LATERAL (SELECT NULL::float8, NULL::float8) AS seg(segment_start, segment_end)"
                             " ON true")
    sql = (f"SELECT {', '.join('i.' + quote(c) for c in columns)}, seg.segment_start, seg.segment_end"
           f" FROM unnest(%s::bigint[], %s::bigint[]) AS v(item_id, space_id)"
           f" JOIN search_item i ON i.id = v.item_id{segment}")
    # What the ORM would convert (JSON columns arrive as text): the statement is written out, not compiled.
    fields = {field.column: field for field in Item._meta.concrete_fields}
    converters = [(n, fields[column].from_db_value) for n, column in enumerate(columns)
                  if hasattr(fields[column], "from_db_value")]
    items, segments = {}, {}
    with connection.cursor() as cursor:
        cursor.execute(sql, [ids, spaces_of, *params])
        for row in cursor.fetchall():
            values = list(row[:len(columns)])
            for n, convert in converters:
                values[n] = convert(values[n], None, connection)
            item = Item.from_db(connection.alias, columns, values)
            items[item.pk] = item
            if row[-2] is not None:
                segments[item.pk] = (float(row[-2]), float(row[-1]))
    return items, segments


def relevances(space, request, vector_ranks, lexical_ranks, items, passage_counts, vector=None) -> dict[int, float]:
    """Calibrated relevance of every candidate: judged against this query's own scores and the space's data
    (search.engine.calibration.judge), and at least 0.5 + for a full-text match (words that match are relevant
    by definition)."""
    fitted = calibration.current(space) if vector_ranks else {}
    modality = query_modality(request)
    judged = calibration.judge(
        space, fitted, vector, modality, is_example(request),
        # A picture or recording in a space that cannot take it is there by the words read from it: a text's vector.
        {item_id: (item.modality if item.modality in space.modalities else Modality.TEXT,
                   1.0 - vector_ranks[item_id][1], passage_counts.get(item_id, 0))
         for item_id, item in items.items() if item_id in vector_ranks},
        nearest_own=nearest_of_own_kind(space, request, vector, modality, items, vector_ranks),
    ) if vector_ranks else {}
    floor = related_similarity(space)
    out = {}
    for item_id in items:
        value = judged[item_id].relevance if item_id in judged else 0.0
        if floor is not None and item_id in vector_ranks:
            # Below what the model calls related, a match is weak however it stands out among unrelated items.
            value = min(value, _logistic((1.0 - vector_ranks[item_id][1] - floor) / FLOOR_WIDTH))
        if item_id in lexical_ranks:
            rank = lexical_ranks[item_id][1]
            value = max(value, 0.5 + 0.5 * rank / (rank + 0.1))
        out[item_id] = value
    return out


# How sharply relevance falls at a model's related_similarity: 0.5 there, 0.88 at 0.04 above it, 0.12 below.
FLOOR_WIDTH = 0.02


def _logistic(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, x))))


def nearest_of_own_kind(space, request: SearchRequest, vector, modality, items, vector_ranks) -> float | None:
    """For an example (a picture or a sound as query), the similarity of the stored item of its own modality
    nearest to it: from the candidates when they hold that modality, else one more look in the index. None for
    other queries, and when the space holds no such item."""
    if vector is None or not is_example(request) or modality not in space.modalities:
        return None
    own = [1.0 - vector_ranks[item_id][1] for item_id, item in items.items()
           if item_id in vector_ranks and item.modality == modality]
    if own:
        return max(own)
    ranking, _ = vector_ranking(space, vector, Filters(modalities=[modality]), 1, exclude_ids=request.exclude_ids)
    return 1.0 - ranking[0][1] if ranking else None


def is_example(request: SearchRequest) -> bool:
    """Whether the query is made of examples only (pictures, sounds, stored items; no text or raw vector):
    then it is judged as "find things like this one" (search.engine.calibration.judge)."""
    positive = [part for part in request.parts if part.weight > 0]
    return bool(positive) and all(part.data is not None or part.item_id is not None for part in positive)


def sorted_by_field(pairs, items, sort: str):
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


def facet_counts(items: list[Item], names: list[str]) -> dict[str, dict[str, int]]:
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


def texts_not_crowding(pairs: list, items: dict) -> list:
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


def pinned_first(ordered, vector_ranks, lexical_ranks, request: SearchRequest, items: dict):
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
            mime = media_formats.sniff(part.data[:64])
            modality = media_formats.BY_MIME[mime].modality if mime else None
        elif part.item_id is not None:
            modality = item_modalities.get(part.item_id)
        else:
            modality = None
        best, best_weight = modality, part.weight
    return best
