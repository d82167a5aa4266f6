"""The shared cache in the product's own PostgreSQL: Django's DatabaseCache, one statement a write, and a counter.

Django's DatabaseCache costs a `SELECT COUNT(*)` (to decide on culling), a `SELECT` and an `UPDATE` or `INSERT`
for every `set`; a throttle's `get` + `set` of its request history was five statements a search. Here a `set` or an
`add` is one `INSERT ... ON CONFLICT`, culling runs at most once a minute per process, and `hit` counts a request
in a fixed window with one statement (search/api/throttling.py). The table is made by migration 0010 (UNLOGGED:
cache writes skip the WAL, PostgreSQL empties it after a crash, and replicas cannot read it, which is why
search/storage/replicas/router.py sends every cache statement to the primary).

A counter is stored as Django stores an int (base64 of its pickle, protocol 0: `I<digits>\\n.`), so `get` of a
counted key reads the count like any cached value.
"""

import base64
import pickle
import time
from datetime import UTC, datetime

from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.cache.backends.db import DatabaseCache
from django.db import DEFAULT_DB_ALIAS, connections

# How often one process deletes expired rows (and culls past MAX_ENTRIES): counters are never `set`, so without it
# a window's row per client would only go when something else writes.
SWEEP_SECONDS = 60.0
_ONE = base64.b64encode(pickle.dumps(1, 0)).decode("ascii")


def _expiry(timestamp: float | None) -> datetime:
    if timestamp is None:
        return datetime.max.replace(tzinfo=UTC)
    return datetime.fromtimestamp(timestamp, tz=UTC).replace(microsecond=0)


class PostgresCache(DatabaseCache):
    def __init__(self, table, params):
        super().__init__(table, params)
        self._next_sweep = 0.0

    @property
    def _connection(self):
        # Always the primary: the table is UNLOGGED (absent on replicas) and a cache read must see the last write.
        return connections[DEFAULT_DB_ALIAS]

    def _base_set(self, mode, key, value, timeout=DEFAULT_TIMEOUT):
        if mode == "touch":
            return super()._base_set(mode, key, value, timeout)
        self._sweep_now_and_then()
        expires = _expiry(self.get_backend_timeout(timeout))
        encoded = base64.b64encode(pickle.dumps(value, self.pickle_protocol)).decode("latin1")
        table = self._connection.ops.quote_name(self._table)
        # An `add` replaces only an expired row; RETURNING says whether it wrote.
        condition = " WHERE c.expires < %s" if mode == "add" else ""
        with self._connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {table} AS c (cache_key, value, expires) VALUES (%s, %s, %s) "
                f"ON CONFLICT (cache_key) DO UPDATE SET value = EXCLUDED.value, expires = EXCLUDED.expires"
                f"{condition} RETURNING 1",
                [key, encoded, expires, *([_expiry(time.time())] if mode == "add" else [])],
            )
            return cursor.fetchone() is not None

    def hit(self, key: str, seconds: float, version=None) -> tuple[int, float]:
        """Count one request under `key` in a window of `seconds` that starts at the key's first request (and again
        at the first request after it ends); returns (requests in this window so far, when it ends as epoch
        seconds). One statement, atomic: concurrent requests on any node each get their own count."""
        self._sweep_now_and_then()
        key = self.make_and_validate_key(key, version=version)
        table = self._connection.ops.quote_name(self._table)
        # The caller's clock, as Django's DatabaseCache.get compares with it (now() would be the start of the
        # transaction, which in a long one is long past).
        now = time.time()
        ends, current = datetime.fromtimestamp(now + seconds, tz=UTC), datetime.fromtimestamp(now, tz=UTC)
        with self._connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {table} AS c (cache_key, value, expires) VALUES (%(key)s, %(one)s, %(ends)s) "
                "ON CONFLICT (cache_key) DO UPDATE SET "
                "value = CASE WHEN c.expires <= %(now)s THEN EXCLUDED.value ELSE encode(convert_to('I' || ("
                "  coalesce(substring(convert_from(decode(c.value, 'base64'), 'UTF8') FROM '^I([0-9]+)'), '0')::bigint"
                "  + 1)::text || E'\\n.', 'UTF8'), 'base64') END, "
                "expires = CASE WHEN c.expires <= %(now)s THEN EXCLUDED.expires ELSE c.expires END "
                "RETURNING value, expires",
                {"key": key, "one": _ONE, "ends": ends, "now": current},
            )
            value, expires = cursor.fetchone()
        return pickle.loads(base64.b64decode(value)), expires.timestamp()

    def _sweep_now_and_then(self) -> None:
        clock = time.monotonic()
        if clock < self._next_sweep:
            return
        self._next_sweep = clock + SWEEP_SECONDS
        table = self._connection.ops.quote_name(self._table)
        with self._connection.cursor() as cursor:
            cursor.execute(f"DELETE FROM {table} WHERE expires < %s", [datetime.now(UTC)])
            cursor.execute(f"SELECT count(*) FROM {table}")
            count = cursor.fetchone()[0]
            if count > self._max_entries:
                self._cull(DEFAULT_DB_ALIAS, cursor, datetime.now(UTC), count)
