"""Is a replica fit to serve reads: does it answer, and how far behind the primary is it.

Each replica is checked at most every `SEARCH_REPLICA_CHECK_SECONDS` per process; one that
fails to answer stays out for `SEARCH_REPLICA_RETRY_SECONDS`.
"""

import logging
import threading
import time
from collections import deque

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections

logger = logging.getLogger(__name__)

# How far the replica has replayed, and how old its last replayed commit is (the fallback estimate).
REPLICA_SQL = (
    "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn() - '0/0'::pg_lsn,"
    " COALESCE(EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()), 0)"
)
PRIMARY_SQL = "SELECT pg_current_wal_lsn() - '0/0'::pg_lsn"
# The longest a process's first check waits to see the replica catch up (it holds up that request).
FIRST_CHECK_PATIENCE = 1.0

_lock = threading.Lock()
_state: dict[str, tuple[float, bool]] = {}  # alias -> (monotonic time the verdict expires, usable)
# The primary's WAL position as seen at each check: (monotonic time, lsn), oldest first.
_primary_positions: deque[tuple[float, float]] = deque(maxlen=256)


def lag_seconds(alias: str, patience: float = 0.0) -> float:
    """Seconds of the primary's writes the replica has yet to replay.

    The replica is as fresh as the newest primary position it has replayed, so each check notes
    the primary's position with the time, and the lag is the age of the newest noted position
    the replica has reached (0 if it has reached the current one). Without a note it has reached,
    the age of its last replayed commit is an upper bound, far too high while the primary writes
    WAL but no commits (checkpoints, standby snapshots). So when that bound exceeds `patience` and
    no note is older than `patience` (a process's first check, or a replica newly added), the
    replica gets up to `patience` seconds to replay the position just noted, and the time it took
    is its lag.
    """
    with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
        cursor.execute(PRIMARY_SQL)
        current = float(cursor.fetchone()[0])
    now = time.monotonic()
    in_recovery, replayed, commit_age = _replica_position(alias)
    with _lock:
        oldest = min((at for at, _ in _primary_positions), default=now)
        reached = [at for at, position in _primary_positions if position <= replayed]
        _primary_positions.append((now, current))
    if not in_recovery or replayed >= current:
        return 0.0
    if reached:
        return now - max(reached)
    if now - oldest >= patience or commit_age <= patience:
        # Behind a note at least `patience` old: that far behind at least, and the commit's age bounds it above.
        return max(commit_age, now - oldest)
    while (waited := time.monotonic() - now) < patience:
        time.sleep(0.02)
        if _replica_position(alias)[1] >= current:
            return time.monotonic() - now
    return max(commit_age, waited)


def _replica_position(alias: str) -> tuple[bool, float, float]:
    """Whether the alias is a replica, the WAL position it has replayed, and its last replayed commit's age."""
    with connections[alias].cursor() as cursor:
        cursor.execute(REPLICA_SQL)
        in_recovery, replayed, commit_age = cursor.fetchone()
    return bool(in_recovery), float(replayed or 0), float(commit_age)


def usable(alias: str) -> bool:
    now = time.monotonic()
    with _lock:
        expires, ok = _state.get(alias, (0.0, False))
    if now < expires:
        return ok
    try:
        lag = lag_seconds(alias, patience=min(settings.SEARCH_REPLICA_MAX_LAG, FIRST_CHECK_PATIENCE))
    except DatabaseError as exc:
        logger.warning("replica %s is down, reading from the primary: %s", alias, exc)
        _close(alias)
        mark_down(alias)
        return False
    ok = lag <= settings.SEARCH_REPLICA_MAX_LAG
    if not ok:
        logger.warning("replica %s is %.1f s behind, reading from the primary", alias, lag)
    with _lock:
        _state[alias] = (now + settings.SEARCH_REPLICA_CHECK_SECONDS, ok)
    return ok


def mark_down(alias: str) -> None:
    with _lock:
        _state[alias] = (time.monotonic() + settings.SEARCH_REPLICA_RETRY_SECONDS, False)


def forget() -> None:
    """Drop every verdict (tests, or after changing the replicas)."""
    with _lock:
        _state.clear()
        _primary_positions.clear()


def _close(alias: str) -> None:
    try:
        connections[alias].close()
    except DatabaseError:
        pass
