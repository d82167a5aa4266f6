"""Vectors sharded across PostgreSQL servers (DATABASE_SHARD_URLS, issue 30): PostgreSQL's own pieces, no extension
beyond postgres_fdw on the coordinator.

`migrate` makes the coordinator's `search_embedding` a table partitioned by hash of the item id into buckets, each a
foreign table on the shard server that owns it (`layout`): the vectors, with the item columns filters read, live on
the shards only, and every read and write of the table goes through the coordinator to the owning shard. Searches
read the shards: one `ORDER BY distance LIMIT k` per shard, run concurrently as async foreign scans, merged on the
coordinator (`fanout`). `manage.py add_shard` moves buckets to a new server, resumably (`move`). A shard that cannot
be reached makes the statement fail with ShardUnavailable, a 503 that names it (`fanout.naming_unavailable_shard`,
on every statement of a process with shards: any read of the vectors may be the first to reach the shard).

With DATABASE_SHARD_URLS unset nothing here runs: no table, no trigger, no change to any statement.
"""

from django.conf import settings
from django.db.backends.signals import connection_created


def configured() -> bool:
    return bool(getattr(settings, "SEARCH_SHARDS", None))


def count() -> int:
    return len(getattr(settings, "SEARCH_SHARDS", None) or [])


def _name_unavailable_shards(sender, connection, **kwargs):
    if configured():
        from search.storage.shards.fanout import name_unavailable_shard

        if name_unavailable_shard not in connection.execute_wrappers:
            connection.execute_wrappers.append(name_unavailable_shard)


connection_created.connect(_name_unavailable_shards, dispatch_uid="search.storage.shards")
