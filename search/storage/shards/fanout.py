"""A k-NN over the shards: each shard's nearest rows, found there by its own index with the filters applied there,
merged on the coordinator.

One arm per shard server (layout.vectors_table), not one per bucket partition: each server has one graph over all
its rows. A bucket being moved (search.storage.shards.move) has rows on two servers: each arm leaves out the buckets
under a move that the coordinator's `search_shard_bucket` gives another server, read in the same statement (an
InitPlan whose array postgres_fdw sends as a parameter). Left out, not asked for: with no move under way the array is
empty, so the shard's planner sees a condition every row passes.
`ORDER BY distance LIMIT k` on a partitioned table plans as a Merge Append of foreign scans that ship the ORDER BY
but not the LIMIT and read the shards one after another. A UNION ALL of one `(... ORDER BY distance LIMIT k)` per
partition in a MATERIALIZED common table expression plans as an Append of async foreign scans, each with its LIMIT
in the remote SQL: every shard searches at once and sends k rows; an ORDER BY ... LIMIT over it keeps the best k of
the k x shards (docs/scaling.md, "Sharded vectors"). The query vector goes to each shard as a parameter ($1).
"""

import contextlib
import re

from django.db import OperationalError

from search.models import EmbeddingSpace
from search.storage import knn, shards
from search.storage.shards import layout

# Filters.sql and the scans' own conditions name the item `i` and the vector row `e`; on a shard both are one row.
_ITEM_ID = re.compile(r"\bi\.id\b")
_ITEM_ALIAS = re.compile(r"\bi\.")


def answered_here(alias: str) -> str:
    """A shard's rows this shard answers for: all but those of buckets under a move that the coordinator's
    `search_shard_bucket` gives another server (its number the one parameter, %s). Read in the statement, as an
    InitPlan whose array postgres_fdw sends as a parameter: with no move under way, an empty array."""
    return (f"NOT {alias}.bucket = ANY(ARRAY(SELECT m.bucket FROM search_shard_move m"
            " JOIN search_shard_bucket b ON b.bucket = m.bucket WHERE m.phase <> 'done' AND b.server <> %s))")


def on_shard_row(where: str) -> str:
    """A WHERE fragment over search_item `i` and search_embedding `e`, rewritten for a shard's row `e`."""
    return _ITEM_ALIAS.sub("e.", _ITEM_ID.sub("e.item_id", where))


def nearest_sql(space: EmbeddingSpace, query: str, where: str, params: list, *, limit: int, exact: bool = False,
                with_passages: bool = False) -> tuple[str, list]:
    """The `limit` rows of `space` nearest to `query` (the query vector's SQL) under `where`, as (item_id,
    distance), from every shard: the drop-in for the one-server scan of search.engine.ranking_batch.VectorScan."""
    distance = knn.distance_to_sql(space, "e", query)
    # "+ 0" hides the ORDER BY from the index, as on one server: the shard scans exactly, the item breaking ties.
    order = f"{distance} + 0, e.item_id" if exact else distance
    vectors = "(e.segment_start IS NULL OR e.passage)" if with_passages else "e.segment_start IS NULL"
    # The filters behind "OR (SELECT false)": the coordinator cannot fold the InitPlan's false, so it estimates the
    # filters at half the rows or more; the shard gets false as a bound value, folds it away and plans on the filters
    # themselves with its own statistics. Why: postgres_fdw ships the ORDER BY (and so the LIMIT) only when it
    # estimates more rows than k; a filter it estimated under k (a rare tag, or correlated filters multiplied) was
    # shipped without them, and the shard sent every matching row with its vector for an exact sort here.
    where = f"({on_shard_row(where)} OR (SELECT false))"
    arms, arm_params = [], []
    for number in layout.servers():
        arms.append(f"(SELECT e.item_id, {distance} AS distance FROM {layout.vectors_table(number)} e"
                    f" WHERE e.space_id = %s AND {vectors} AND {where}"
                    f" AND {answered_here('e')}"
                    f" ORDER BY {order} LIMIT %s)")
        arm_params += [int(space.pk), *params, int(number), int(limit)]
    # The arms in a MATERIALIZED CTE of their own: an ORDER BY right over the UNION ALL plans as a Merge Append, which
    # runs no foreign scan asynchronously (measured: one shard after another). The outer ORDER BY ... LIMIT keeps
    # the scan what it is on one server, the best `limit` rows.
    sql = (f"WITH arms AS MATERIALIZED ({' UNION ALL '.join(arms)})"
           f" SELECT item_id, distance FROM arms ORDER BY distance, item_id LIMIT %s")
    return sql, [*arm_params, int(limit)]


def passage_counts_sql(item_ids_sql: str) -> tuple[str, list]:
    """How many passages each of the items `item_ids_sql` (an SQL array of ids) has in each space, counted on each
    shard server in one grouped query (shipped whole by postgres_fdw): rows (space_id, item_id, n). The one-server
    statement counts each candidate's passages with a correlated subquery, which here would be a round trip to a
    shard per text candidate."""
    arms, params = [], []
    for number in layout.servers():
        arms.append(f"(SELECT p.space_id, p.item_id, count(*) AS n FROM {layout.vectors_table(number)} p"
                    f" WHERE p.passage AND p.item_id = ANY({item_ids_sql})"
                    f" AND {answered_here('p')}"
                    f" GROUP BY p.space_id, p.item_id)")
        params.append(int(number))
    return " UNION ALL ".join(arms), params


def space_stats_sql(space: EmbeddingSpace) -> tuple[str, list]:
    """search.storage.space_stats' per-modality counts and mean item vector, computed on each shard server: one grouped
    query per shard, which postgres_fdw ships whole (the aggregate and its GROUP BY run there), giving one row per
    shard and modality: (modality, items, vectors, mean item vector as text). Read through the partitioned table with
    the coordinator's search_item, it pulled every vector of the space to the coordinator once a minute."""
    column = knn.column_sql(space, "e")
    arms, params = [], []
    for number in layout.servers():
        arms.append(f"(SELECT e.modality, count(*) FILTER (WHERE e.segment_start IS NULL) AS items,"
                    f" count(*) AS vectors, avg({column}) FILTER (WHERE e.segment_start IS NULL) AS centroid"
                    f" FROM {layout.vectors_table(number)} e"
                    f" WHERE e.space_id = %s AND (e.segment_start IS NULL OR e.passage) AND NOT e.hidden"
                    f" AND {answered_here('e')}"
                    f" GROUP BY e.modality)")
        params += [int(space.pk), int(number)]
    sql = (f"WITH arms AS MATERIALIZED ({' UNION ALL '.join(arms)})"
           " SELECT modality, items, vectors, centroid::text FROM arms")
    return sql, params


class ShardUnavailable(OperationalError):
    """A shard server did not answer: the search cannot be complete, so it fails (a 503 naming the shard) rather than
    answering from the other shards (docs/scaling.md: why not partial results)."""

    def __init__(self, shard: str, cause: str):
        super().__init__(f"shard {shard} is unavailable: {cause}")
        self.shard = shard
        # What the 503 says (search.runtime.guards reads it): names the shard, not its address or credentials.
        self.unavailable_message = (f"shard {shard} of the search index is unavailable right now; "
                                    "please try again shortly")


# postgres_fdw's words for a server it cannot reach (connection.c): "could not connect to server \"name\"", and a
# connection lost mid-statement.
_FDW_SERVER = re.compile(r'(?:could not connect to server|connection to server) "?(search_shard_\d+)"?')


def shard_named(exception: BaseException) -> str | None:
    match = _FDW_SERVER.search(str(exception))
    return match.group(1) if match else None


@contextlib.contextmanager
def naming_unavailable_shard():
    """Turns postgres_fdw's failure to reach a shard into ShardUnavailable; anything else passes unchanged."""
    try:
        yield
    except OperationalError as exc:
        if not shards.configured() or isinstance(exc, ShardUnavailable):
            raise
        shard = shard_named(exc)
        if shard is None:
            raise
        # Chained to psycopg's own error: its SQLSTATE (08001) is what marks an outage (search.runtime.guards).
        raise ShardUnavailable(shard, str(exc).splitlines()[0]) from (exc.__cause__ or exc)



def name_unavailable_shard(execute, sql, params, many, context):
    """A connection's execute wrapper (installed on every connection of a process with shards): whichever statement
    first reaches a stopped shard (a passage check, a page's segments, the search itself) fails naming it."""
    with naming_unavailable_shard():
        return execute(sql, params, many, context)
