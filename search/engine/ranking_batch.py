"""Every ranking of a search in one statement: the nearest vectors of each space and target modality, the
words ranking, and the columns of every candidate, in one round trip.

A search asks several rankings: one per target modality of each space (each modality is ranked on its own
scale, search.engine.rankers.cross_modal_results), and full text in hybrid mode. Each was a statement of its
own, preceded by a planner estimate, followed by reading the candidates' columns and their passage counts:
13 to 20 statements for one search, most of a search's time spent waiting on them. Here each ranking is one
`MATERIALIZED` common table expression (so each keeps its own index scan and LIMIT), their top rows are put
together with `UNION ALL`, and the candidates' columns come back on the same rows. The index knobs go in the same
message (search.storage.knn.search_params_prefix), and each space's row is checked for change in it too
(search.storage.spaces.searchable keeps the rows between searches).

The index scans of one space and query vector that differ only in their modality are one walk of the index
(`_walks`, the SQL function search_nearest_walk): each modality's scan passed over the other modalities' vectors
on the same path through the graph, three walks of ~300 tuples for 100 of each of three modalities.
"""

from collections import namedtuple
from dataclasses import dataclass, field, replace

import numpy as np
import psycopg
from django.db import transaction

from search.engine.requests import Filters
from search.models import EmbeddingSpace, Modality
from search.storage import knn, shards, spaces
from search.storage.replicas import read_connection as connection
from search.storage.shards import fanout as shard_fanout

# What relevance, balancing, pinning, sorting, facets and the hits read of every candidate. The dates come last:
# they are read only for a search sorted by them (parsing two timestamps for each of a few hundred candidates was a
# good part of a search's Python time), and a row without them ends before them.
CANDIDATE_FIELDS = ("id", "modality", "title", "duration", "tags", "collection", "pinned", "taken_at", "created_at")
DATE_FIELDS = ("taken_at", "created_at")
assert CANDIDATE_FIELDS[-len(DATE_FIELDS):] == DATE_FIELDS


class Candidate(namedtuple("CandidateColumns", CANDIDATE_FIELDS, defaults=(None,) * len(DATE_FIELDS))):
    """A candidate's columns (CANDIDATE_FIELDS; the dates only when the search sorts by them). Candidates are a
    few hundred per search, and a model instance cost more to make than the statement that found it (an object
    with slots filled one by one still cost a millisecond a search: a tuple is made in one call); the items
    shown are read whole (search.engine.result_order.shown_items)."""

    __slots__ = ()

    @property
    def pk(self) -> int:
        return self.id

    def __repr__(self) -> str:
        return f"<Candidate {self.id} {self.modality}>"


@dataclass
class VectorScan:
    """One ranking by vector: the `limit` items of one space nearest to `vector` under `filters`."""

    space: EmbeddingSpace
    vector: np.ndarray
    filters: Filters
    limit: int
    exact: bool = False
    exclude_ids: tuple = ()
    ef_search: int | None = None
    # Whether text passages are ranked (a text is as near as its nearest passage), and how many rows per item
    # wanted are read: passages of one text may fill several of the rows an index scan returns.
    with_passages: bool = False
    fanout: int = 1
    # Left out: vectors on the space's "unknown" point (search.engine.rankers.meaningless_vectors_sql).
    extra_where: str = ""
    extra_params: list = field(default_factory=list)

    @property
    def read(self) -> int:
        return self.limit * self.fanout

    def knobs(self, default_ef: int) -> dict:
        return {"ef_search": max(self.ef_search or default_ef, min(self.read, 1000)),
                "max_scan_tuples": max(20000, self.read * 200)}

    def where_sql(self, filters: Filters | None = None) -> tuple[str, list]:
        """The scan's conditions on the item `i` and its vector `e` (under `filters` instead of its own, say a walk's
        several modalities), with their parameters."""
        where, params = (filters or self.filters).sql()
        if self.exclude_ids:
            where += " AND NOT (i.id = ANY(%s))"
            params.append(list(self.exclude_ids))
        return where + self.extra_where, params + list(self.extra_params)

    def nearest_sql(self, query: str) -> tuple[str, list]:
        """The scan as SQL, `query` being the query vector's SQL (see run)."""
        where, params = self.where_sql()
        if shards.configured():
            # Sharded vectors (DATABASE_SHARD_URLS): the same scan on every shard at once, merged.
            return shard_fanout.nearest_sql(self.space, query, where, params, limit=self.read, exact=self.exact,
                                            with_passages=self.with_passages)
        distance = knn.distance_to_sql(self.space, "e", query)
        # "+ 0" hides the ORDER BY from the index, which forces the exact scan when asked for; the item breaks ties,
        # so a page read shallow and the next read deeper cut a run of equal distances at the same place.
        order = f"{distance} + 0, e.item_id" if self.exact else distance
        # Both match the space's partial index (search.storage.spaces.index_sql).
        vectors = "(e.segment_start IS NULL OR e.passage)" if self.with_passages else "e.segment_start IS NULL"
        sql = (f"SELECT e.item_id, {distance} AS distance FROM search_embedding e"
               f" JOIN search_item i ON i.id = e.item_id"
               f" WHERE e.space_id = %s AND {vectors} AND {where} ORDER BY {order} LIMIT %s")
        return sql, [int(self.space.pk), *params, self.read]


@dataclass
class WordsScan:
    """The ranking by full text (PostgreSQL's English configuration) over title, text and words read from media."""

    text: str
    filters: Filters
    limit: int
    exclude_ids: tuple = ()


@dataclass
class Ranked:
    """What one scan found: (item id, distance or text rank) best first, and how many rows it read."""

    rows: list[tuple[int, float]]
    scanned: int = 0
    exact: bool = False


class SpaceChanged(Exception):
    """A space's row changed since it was kept (recalibrated, rebuilt, or gone with a rolled-back test): the
    search is run again on the fresh row."""


def run(vector_scans: list[VectorScan], words: WordsScan | None = None, *, default_ef: int, check: bool = False,
        dates: bool = True) -> tuple[list[Ranked], Ranked | None, dict[int, Candidate], dict[tuple[int, int], int]]:
    """Run every scan in one statement: each scan's ranking, the words ranking, every candidate's
    CANDIDATE_FIELDS, and for scans with passages how many passages each text candidate has
    ((space id, item id) -> count). With `check` (the search service, which runs again on a fresh row), raises
    SpaceChanged when a space's kept row is stale."""
    ctes, branches, params = [], [], []
    # Each query vector goes once as a literal (several scans of a space share it; its text is most of the
    # statement's bytes), referred to by a scalar subquery.
    queries: dict[tuple, str] = {}
    walks = _walks(vector_scans)
    walked = {n: (number, slot) for number, walk in enumerate(walks) for slot, n in enumerate(walk)}
    for n, scan in enumerate(vector_scans):
        key = (knn.sql_type(scan.space), id(scan.vector))
        if n not in walked and key not in queries:
            queries[key] = f"q{len(queries)}"
            ctes.append(f"{queries[key]} AS (SELECT %s::{knn.sql_type(scan.space)} AS v)")
            params.append(knn.vector_literal(scan.vector))
    for number, walk in enumerate(walks):
        sql, walk_params = _walk_sql([vector_scans[n] for n in walk])
        ctes.append(f"w{number} AS MATERIALIZED (SELECT * FROM search_nearest_walk({sql}))")
        params += walk_params
    for n, scan in enumerate(vector_scans):
        if n in walked:
            number, slot = walked[n]
            ctes.append(f"s{n} AS (SELECT item_id, distance FROM w{number} WHERE slot = {slot})")
        else:
            sql, scan_params = scan.nearest_sql(
                f"(SELECT v FROM {queries[(knn.sql_type(scan.space), id(scan.vector))]})")
            ctes.append(f"s{n} AS MATERIALIZED ({sql})")
            params += scan_params
        branches.append(
            f"(SELECT {n} AS scan, item_id, min(distance)::float8 AS score, (SELECT count(*) FROM s{n}) AS scanned,"
            f" {int(scan.space.pk)} AS space_id, {'true' if scan.with_passages else 'false'} AS counted"
            f" FROM s{n} GROUP BY item_id ORDER BY score, item_id LIMIT {int(scan.limit)})")
    if words is not None:
        where, words_params = words.filters.sql()
        if words.exclude_ids:
            where += " AND NOT (i.id = ANY(%s))"
            words_params.append(list(words.exclude_ids))
        # Its own scope: this `i` is not the outer query's.
        branches.append(
            "(SELECT -1 AS scan, i.id, ts_rank_cd(i.search_document, q)::float8 AS score, 0::bigint, 0, false"
            " FROM search_item i, websearch_to_tsquery('english', %s) q"
            f" WHERE i.search_document @@ q AND {where} ORDER BY score DESC, i.id LIMIT {int(words.limit)})")
        params += [words.text, *words_params]
    # Only rows kept between searches are checked; a row read for this call is as fresh as it gets.
    checks = sorted({int(scan.space.pk): scan.space for scan in vector_scans
                     if check and spaces.is_kept(scan.space)}.items())
    quote = connection.ops.quote_name
    fields = [name for name in CANDIDATE_FIELDS if dates or name not in DATE_FIELDS]
    columns = ", ".join(f"i.{quote(name)}" for name in fields)
    # The space rows' fingerprints ride along as one more row each (scan -2), so a kept row is checked for free.
    check_rows = "".join(
        f" UNION ALL SELECT -2, {pk}, 0::float8, 0::bigint, {pk}, false" for pk, _ in checks)
    candidates = (f"({' UNION ALL '.join(branches) or 'SELECT 0, 0, 0::float8, 0::bigint, 0, false WHERE false'}"
                  f"{check_rows}) AS r(scan, item_id, score, scanned, space_id, counted)")
    fingerprint = (f"CASE WHEN r.scan = -2 THEN (SELECT {spaces.FINGERPRINT_SQL} FROM search_embeddingspace s"
                   f" WHERE s.id = r.space_id) END AS fingerprint")
    if shards.configured() and any(scan.with_passages for scan in vector_scans):
        # On shards the candidates' passages are counted in one grouped query per shard, not one per candidate.
        counts_sql, counts_params = shard_fanout.passage_counts_sql("ARRAY(SELECT item_id FROM r WHERE counted)")
        ctes += [f"r AS MATERIALIZED (SELECT * FROM {candidates})", f"pc AS MATERIALIZED ({counts_sql})"]
        params += counts_params
        passages = ("coalesce((SELECT pc.n FROM pc WHERE pc.space_id = r.space_id AND pc.item_id = r.item_id), 0)")
        source = "r"
    else:
        passages = ("(SELECT count(*) FROM search_embedding p"
                    " WHERE p.space_id = r.space_id AND p.item_id = r.item_id AND p.passage)")
        source = candidates
    sql = ((f"WITH {', '.join(ctes)} " if ctes else "")
           + f"SELECT r.scan, r.item_id, r.score, r.scanned, r.space_id, {columns},"
           f" CASE WHEN r.counted AND i.modality = '{Modality.TEXT}' THEN {passages} ELSE 0 END AS passages,"
           f" {fingerprint} FROM {source} LEFT JOIN search_item i ON i.id = r.item_id AND r.scan <> -2")
    with shard_fanout.naming_unavailable_shard():
        rows = _execute(sql, params, vector_scans, default_ef)
    ranked = [Ranked([], 0, scan.exact) for scan in vector_scans]
    found_words = Ranked([]) if words is not None else None
    items: dict[int, Candidate] = {}
    counts: dict[tuple[int, int], int] = {}
    fingerprints = {}
    width = len(fields)
    for row in rows:
        scan, item_id, score, scanned, space_id = row[:5]
        if scan == -2:
            fingerprints[space_id] = row[-1]
            continue
        if row[5] is None:
            continue  # deleted between the scan and the join: it drops out
        if item_id not in items:
            items[item_id] = Candidate(*row[5:5 + width])
        if scan == -1:
            found_words.rows.append((item_id, float(score)))
            continue
        ranked[scan].rows.append((item_id, float(score)))
        ranked[scan].scanned = int(scanned)
        if row[5 + width]:
            counts[(space_id, item_id)] = int(row[5 + width])
    stale = [space.name for pk, space in checks if fingerprints.get(pk) != space.fingerprint]
    if stale:
        for name in stale:
            spaces.forget(name)
        raise SpaceChanged(", ".join(stale))
    for found in ranked:
        found.rows.sort(key=lambda pair: (pair[1], pair[0]))
    if found_words is not None:
        found_words.rows.sort(key=lambda pair: (-pair[1], pair[0]))
    return ranked, found_words, items, counts


def _walks(scans: list[VectorScan]) -> list[list[int]]:
    """Scans that one walk of the index answers (search_nearest_walk, migration 0013), as lists of positions:
    index scans of one space, from one query vector, under the same conditions but for their one modality each.
    Each modality's own scan passed over the others' vectors on the same path through the graph; one walk hands
    each modality the rows its scan would have read. Shards keep their scans: the walk is this server's."""
    if shards.configured():
        return []
    groups: list[list[int]] = []
    for n, scan in enumerate(scans):
        if scan.exact or len(scan.filters.modalities) != 1:
            continue
        for group in groups:
            first = scans[group[0]]
            if (first.space.pk == scan.space.pk and first.vector is scan.vector
                    and replace(first.filters, modalities=[]) == replace(scan.filters, modalities=[])
                    and first.exclude_ids == scan.exclude_ids and first.ef_search == scan.ef_search
                    and first.extra_where == scan.extra_where and first.extra_params == scan.extra_params
                    and scan.filters.modalities[0] not in {scans[m].filters.modalities[0] for m in group}):
                group.append(n)
                break
        else:
            groups.append([n])
    return [group for group in groups if len(group) > 1]


def _walk_sql(scans: list[VectorScan]) -> tuple[str, list]:
    """The arguments of search_nearest_walk for these scans (see _walks), as SQL with parameters: the walk's query
    goes as text, its values written in (it runs inside the function), the index's order and tuple budget its own."""
    first = scans[0]
    modalities = [scan.filters.modalities[0] for scan in scans]
    where, params = first.where_sql(replace(first.filters, modalities=modalities))
    distance = knn.distance_sql(first.space, "e")
    vectors = "(e.segment_start IS NULL OR e.passage)" if any(scan.with_passages for scan in scans) \
        else "e.segment_start IS NULL"
    budget = max(scan.knobs(0)["max_scan_tuples"] for scan in scans)
    query = (f"SELECT e.item_id, i.modality, e.passage, {distance}::float8 AS distance FROM search_embedding e"
             f" JOIN search_item i ON i.id = e.item_id WHERE e.space_id = %s AND {vectors} AND {where}"
             f" ORDER BY {distance} LIMIT %s")
    vector = knn.vector_literal(first.vector)
    connection.ensure_connection()
    written = psycopg.ClientCursor(connection.connection).mogrify(
        query, [vector, int(first.space.pk), *params, vector, budget])
    return "%s, %s::text[], %s::int[], %s::boolean[]", [written, modalities, [scan.read for scan in scans],
                              [scan.with_passages for scan in scans]]


def _execute(sql: str, params: list, scans: list[VectorScan], default_ef: int) -> list[tuple]:
    index_scans = [scan for scan in scans if not scan.exact]
    if not index_scans:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall()
    # One setting serves every index scan of the statement: the widest any of them needs.
    knobs = {"ef_search": max(scan.knobs(default_ef)["ef_search"] for scan in index_scans),
             "iterative": "relaxed_order",
             "max_scan_tuples": max(scan.knobs(default_ef)["max_scan_tuples"] for scan in index_scans)}
    if connection.settings_dict.get("OPTIONS", {}).get("server_side_binding"):
        # Server-side binding sends one statement per message: the knobs first, in a transaction.
        with transaction.atomic(using=connection.alias):
            knn.set_local_search_params(**knobs)
            with connection.cursor() as cursor:
                cursor.execute(sql, params)
                return cursor.fetchall()
    prefix, prefix_params = knn.search_params_prefix(**knobs)
    with connection.cursor() as cursor:
        cursor.execute(prefix + sql, prefix_params + params)
        cursor.nextset()
        return cursor.fetchall()
