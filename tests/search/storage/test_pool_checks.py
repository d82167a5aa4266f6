"""The pool checks a connection before lending it only when it sat unused: none under traffic, and a connection
the server closed meanwhile is replaced, not handed to a request."""

import pytest
from django.db import connection

from search.storage import pool_checks as db_pool


class _Connection:
    autocommit = True

    def __init__(self, broken: bool = False):
        self.checks = 0
        self.broken = broken

    def execute(self, sql):
        self.checks += 1
        if self.broken:
            raise OSError("server closed the connection")


def test_a_connection_lent_a_moment_ago_is_lent_again_unchecked():
    conn = _Connection()
    db_pool.check_if_idle(conn)  # never lent: checked
    db_pool.check_if_idle(conn)
    db_pool.check_if_idle(conn)
    assert conn.checks == 1


def test_a_connection_idle_past_the_limit_is_checked_and_a_broken_one_refused(monkeypatch):
    conn = _Connection()
    db_pool.check_if_idle(conn)
    monkeypatch.setattr(db_pool, "CHECK_AFTER_SECONDS", 0.0)
    db_pool.check_if_idle(conn)
    assert conn.checks == 2
    conn.broken = True
    with pytest.raises(OSError):
        db_pool.check_if_idle(conn)


@pytest.mark.django_db(transaction=True)
def test_pooled_connections_the_server_closed_while_idle_are_replaced(monkeypatch):
    # A pool of its own: psycopg_pool waits (1, 2, 4 s...) after each broken connection it finds before the next, so a
    # pool an earlier test filled with 16 idle connections would time out here checking them one by one.
    connection.close_pool()
    assert connection.pool is not None
    name = connection.settings_dict["NAME"]
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    connection.close()  # back to the pool
    with connection._nodb_cursor() as cursor:  # a connection of its own, to the server's maintenance database
        cursor.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = %s", [name])
        assert cursor.fetchone()[0] >= 1
    monkeypatch.setattr(db_pool, "CHECK_AFTER_SECONDS", 0.0)  # as after a second idle
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)
