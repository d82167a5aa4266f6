"""The connection pool's health check, sent only to a connection that has not been used for a while.

Django's pool (CONN_HEALTH_CHECKS on) has psycopg check a connection each time it lends one: an empty statement, one
round trip to PostgreSQL before every request's own. The embedded server's backend (search.storage.pgembedded) makes
its pool with this check instead. A connection lent a moment ago was
working a moment ago; one that sat idle may have been closed by a restart, a failover or a firewall meanwhile, so
only those are checked. Under traffic every connection is back within milliseconds and nothing is sent; a connection
broken while busy fails its request with a 503 (search.runtime.guards) and is discarded, as before.
"""

import time

from psycopg_pool import ConnectionPool

# A connection lent this long ago or longer is checked before it is lent again.
CHECK_AFTER_SECONDS = 1.0


def check_if_idle(conn) -> None:
    """The pool's `check` callback: raise if an idle connection no longer works (the pool then replaces it)."""
    now = time.monotonic()
    if now - getattr(conn, "_search_lent_at", -CHECK_AFTER_SECONDS) >= CHECK_AFTER_SECONDS:
        ConnectionPool.check_connection(conn)
    conn._search_lent_at = now
