"""Moving buckets between shard servers (`manage.py add_shard`), in steps that each commit, so a move killed at any
point is finished by running it again, and searches answer throughout.

The plan (`search_shard_move` on the coordinator, one row per bucket, made once and kept until done) takes buckets
from the fullest servers to the emptiest until every server holds BUCKETS / servers, give or take one. A bucket
moves from its source to its target in three phases:

- **copy**: a trigger on the bucket's partition logs the id of every row written to it from now on
  (`search_shard_move_log`), then the rows go to the target's table in batches of ascending id, the last id copied
  kept as the bucket's watermark in the same transaction (a batch copied twice is skipped by the target's key).
  Reads and writes still go to the source, and searches ask the source for the bucket (`search_shard_bucket`).
- **swap**, one coordinator transaction holding writes to the vectors back (readers go on until the partition is
  replaced, a few milliseconds): the logged rows are copied again, the bucket's partition is replaced by one on the
  target, and `search_shard_bucket` sends searches there: both on the coordinator, so they change together.
- **clean**: the source's copy of the bucket is deleted.

postgres_fdw commits each shard's part of a transaction just before the coordinator's (not two-phase). Each phase is
idempotent, so a crash between those commits is repaired by running the move again from the phase it recorded.
"""

import time
from collections.abc import Callable

from django.db import connection, transaction

from search.storage.shards import layout
from search.storage.shards.layout import BUCKETS, TABLE, bucket_name, rows_table

CLEAN_DELAY = 0.5  # seconds between a bucket's swap and the removal of the source's copy


class StepLimit(Exception):
    """The move stopped after the steps it was allowed (--max-steps): run it again to go on."""


def plan(held: dict[int, int], numbers: list[int]) -> list[tuple[int, int, int]]:
    """(bucket, source, target) moves that leave every server with BUCKETS // len(numbers) buckets or one more, moving
    as few as that takes: from the fullest server to the emptiest, one bucket at a time."""
    per = {number: sorted(b for b, server in held.items() if server == number) for number in numbers}
    moves = []
    while True:
        giver = max(numbers, key=lambda n: (len(per[n]), -n))
        taker = min(numbers, key=lambda n: (len(per[n]), n))
        if len(per[giver]) - len(per[taker]) <= 1:
            return moves
        bucket = per[giver].pop()
        per[taker].append(bucket)
        moves.append((bucket, giver, taker))


def pending() -> list[tuple[int, int, int, int, str]]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT bucket, source, target, watermark, phase FROM search_shard_move"
                       " WHERE phase <> 'done' ORDER BY bucket")
        return cursor.fetchall()


def start() -> int:
    """The plan, unless one is under way (kept as it was made: a rerun finishes the same move). Buckets planned."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("LOCK TABLE search_shard_move IN EXCLUSIVE MODE")  # one planner at a time
        cursor.execute("SELECT count(*) FROM search_shard_move WHERE phase <> 'done'")
        if cursor.fetchone()[0]:
            return 0
        moves = plan(layout.bucket_servers(cursor), layout.registered_servers(cursor))
        cursor.execute("DELETE FROM search_shard_move")
        for bucket, source, target in moves:
            cursor.execute("INSERT INTO search_shard_move (bucket, source, target) VALUES (%s, %s, %s)",
                           [bucket, source, target])
        return len(moves)


class Mover:
    """Runs the plan's phases; `step` is called after each committed step (a progress line; the step limit)."""

    def __init__(self, *, batch: int = 5000, settle: float = layout.SERVERS_TTL + 1,
                 step: Callable[[str], None] = lambda message: None, entries: list[dict] | None = None):
        # entries: every shard's DATABASES entry, the new one included (it may not be in DATABASE_SHARD_URLS yet).
        self.batch, self.settle, self.step, self.entries = batch, settle, step, entries
        self.settled = False

    def run(self) -> int:
        """Every pending bucket to its target; returns buckets finished now."""
        done = 0
        for bucket, source, target, watermark, phase in pending():
            if phase == "copy":
                self.copy(bucket, source, target, watermark)
                phase = "swap"
            if phase == "swap":
                self.swap(bucket, source, target)
                phase = "clean"
            if phase == "clean":
                self.clean(bucket, source)
            done += 1
        layout.analyze(self.entries)
        return done

    def copy(self, bucket: int, source: int, target: int, watermark: int) -> None:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_trigger WHERE tgname = 'search_shard_move_log'"
                           " AND tgrelid = %s::regclass", [bucket_name(bucket)])
            if cursor.fetchone() is None:
                # Committed before the first batch: every write after it is in the log.
                cursor.execute(f"CREATE TRIGGER search_shard_move_log AFTER INSERT OR UPDATE OR DELETE"
                               f" ON {bucket_name(bucket)} FOR EACH ROW"
                               f" EXECUTE FUNCTION search_shard_move_log({bucket})")
        names = ", ".join(layout.column_names())
        while True:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(
                    f"WITH batch AS MATERIALIZED (SELECT {names} FROM {bucket_name(bucket)} WHERE id > %s"
                    f" ORDER BY id LIMIT %s),"
                    f" copied AS (INSERT INTO {rows_table(target)} ({names}) SELECT {names} FROM batch"
                    f" ON CONFLICT DO NOTHING)"
                    f" SELECT max(id), count(*) FROM batch", [watermark, self.batch])
                last, count = cursor.fetchone()
                if not count:
                    cursor.execute("UPDATE search_shard_move SET phase = 'swap' WHERE bucket = %s", [bucket])
                    return
                watermark = last
                cursor.execute("UPDATE search_shard_move SET watermark = %s WHERE bucket = %s", [watermark, bucket])
            self.step(f"bucket {bucket}: {count} rows copied to shard {target} (up to id {watermark})")

    def swap(self, bucket: int, source: int, target: int) -> None:
        if not self.settled:
            # Every process's fan-out must ask the target before it answers for anything (layout.servers keeps the
            # list SERVERS_TTL seconds).
            time.sleep(self.settle)
            self.settled = True
        names = ", ".join(layout.column_names())
        with transaction.atomic(), connection.cursor() as cursor:
            # Writes wait (readers go on until the DETACH); the parent first, as every writer takes it first.
            cursor.execute(f"LOCK TABLE {TABLE} IN EXCLUSIVE MODE")
            if layout.bucket_servers(cursor).get(bucket) == source:
                cursor.execute("SELECT DISTINCT embedding_id FROM search_shard_move_log WHERE bucket = %s", [bucket])
                changed = [row[0] for row in cursor.fetchall()]
                if changed:
                    cursor.execute(f"DELETE FROM {rows_table(target)} WHERE id = ANY(%s)", [changed])
                    cursor.execute(f"INSERT INTO {rows_table(target)} ({names}) SELECT {names}"
                                   f" FROM {bucket_name(bucket)} WHERE id = ANY(%s)", [changed])
                cursor.execute(f"ALTER TABLE {TABLE} DETACH PARTITION {bucket_name(bucket)}")
                cursor.execute(f"DROP FOREIGN TABLE {bucket_name(bucket)}")  # and its move trigger
                layout.attach_bucket(cursor, bucket, target)
            cursor.execute("DELETE FROM search_shard_move_log WHERE bucket = %s", [bucket])
            cursor.execute("UPDATE search_shard_move SET phase = 'clean' WHERE bucket = %s", [bucket])
        self.step(f"bucket {bucket}: moved from shard {source} to shard {target}")

    def clean(self, bucket: int, source: int) -> None:
        # A search whose statement began before the swap may still ask the source for the bucket: let it finish.
        time.sleep(CLEAN_DELAY)
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(f"DELETE FROM {rows_table(source)} WHERE bucket = %s", [bucket])
            removed = cursor.rowcount
            cursor.execute("UPDATE search_shard_move SET phase = 'done' WHERE bucket = %s", [bucket])
        self.step(f"bucket {bucket}: {removed} rows removed from shard {source}")


def balance() -> dict[int, int]:
    """Buckets per shard server now."""
    with connection.cursor() as cursor:
        held = layout.bucket_servers(cursor)
        counts = dict.fromkeys(layout.registered_servers(cursor), 0)
    for server in held.values():
        counts[server] = counts.get(server, 0) + 1
    assert sum(counts.values()) == BUCKETS
    return counts
