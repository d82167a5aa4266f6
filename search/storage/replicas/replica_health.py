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

_lock = threading.Lock()
_state: dict[str, tuple[float, bool]] = {}  # alias -> (monotonic time the verdict expires, usable)
# The primary's WAL position as seen at each check: (monotonic time, lsn), oldest first.
_primary_positions: deque[tuple[float, float]] = deque(maxlen=256)


def lag_seconds(alias: str) -> float:
    """Seconds of the primary's writes the replica has yet to replay.

    The replica is as fresh as the newest primary position it has replayed, so each check notes
    the primary's position with the time, and the lag is the age of the newest noted position
    the replica has reached (0 if it has reached the current one). Without an older note yet, the
    age of its last replayed commit stands in (an over-estimate while the primary writes no commits).
    """
    with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
        cursor.execute(PRIMARY_SQL)
        current = float(cursor.fetchone()[0])
    now = time.monotonic()
    with connections[alias].cursor() as cursor:
        cursor.execute(REPLICA_SQL)
        in_recovery, replayed, commit_age = cursor.fetchone()
    with _lock:
        reached = [at for at, position in _primary_positions if position <= float(replayed or 0)]
        _primary_positions.append((now, current))
    if not in_recovery or float(replayed or 0) >= current:
        return 0.0
    return now - max(reached) if reached else float(commit_age)


def usable(alias: str) -> bool:
    now = time.monotonic()
    with _lock:
        expires, ok = _state.get(alias, (0.0, False))
    if now < expires:
        return ok
    try:
        lag = lag_seconds(alias)
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
