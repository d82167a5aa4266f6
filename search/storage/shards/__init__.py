"""Vectors sharded across PostgreSQL servers (DATABASE_SHARD_URLS, issue 30): PostgreSQL's own pieces, no extension
beyond postgres_fdw on the coordinator.

The coordinator (DATABASE_URL) keeps the whole schema as before. `migrate` adds `search_shard_vector`: a table
partitioned by hash of the item id whose partitions are foreign tables, one per shard server, each holding its
items' vectors with the item columns that filters read (`layout`). Triggers on the coordinator copy every write of
`search_embedding` and every change of those item columns to the shard that owns the item, so the write path is
unchanged. Searches read the shards: one `ORDER BY distance LIMIT k` per shard, run concurrently as async foreign
scans, merged on the coordinator (`fanout`). A shard that cannot be reached makes the search fail with
ShardUnavailable, a 503 that names it (`fanout.naming_unavailable_shard`).

With DATABASE_SHARD_URLS unset nothing here runs: no table, no trigger, no change to any statement.
"""

from django.conf import settings


def configured() -> bool:
    return bool(getattr(settings, "SEARCH_SHARDS", None))


def count() -> int:
    return len(getattr(settings, "SEARCH_SHARDS", None) or [])
