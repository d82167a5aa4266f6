"""The shared cache in PostgreSQL (search/storage/db_cache.py): Django's cache API in one statement a write, the
table made by migration 0010, and expired rows swept without anyone calling `set`."""

import time

import pytest
from django.core.cache import cache, caches
from django.db import connection
from django.test.utils import CaptureQueriesContext

from search.storage import db_cache

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _empty():
    cache.clear()


def test_the_cache_is_an_unlogged_table_made_by_migrate():
    with connection.cursor() as cursor:
        cursor.execute("SELECT relpersistence FROM pg_class WHERE relname = 'search_cache'")
        assert cursor.fetchone() == ("u",)
    assert isinstance(caches["default"], db_cache.PostgresCache)


def test_set_and_add_are_one_statement_each_and_keep_django_semantics():
    cache._next_sweep = time.monotonic() + 60  # no sweep due in this test
    with CaptureQueriesContext(connection) as captured:
        cache.set("k", {"a": [1, 2]}, 30)
    assert len(captured) == 1
    assert cache.get("k") == {"a": [1, 2]}
    with CaptureQueriesContext(connection) as captured:
        assert cache.add("k", "other") is False  # a live key stays
    assert len(captured) == 1 and cache.get("k") == {"a": [1, 2]}
    assert cache.add("new", "v", 30) is True and cache.get("new") == "v"
    cache.set("gone", 1, -1)  # already expired
    assert cache.get("gone") is None
    assert cache.add("gone", 2) is True and cache.get("gone") == 2
    assert cache.touch("k", 100) is True and cache.get("k") == {"a": [1, 2]}
    cache.set("forever", "x", None)
    assert cache.get("forever") == "x"
    cache.delete("k")
    assert cache.get("k") is None


def test_expired_rows_are_swept_at_most_once_a_minute_per_process():
    cache.set("old", 1, -1)
    cache._next_sweep = 0.0
    cache.hit("fresh", 60)
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM search_cache WHERE cache_key LIKE %s", ["%old"])
        assert cursor.fetchone()[0] == 0
    cache.set("old", 1, -1)
    with CaptureQueriesContext(connection) as captured:
        cache.hit("fresh", 60)  # the next sweep is a minute away: one statement
    assert len(captured) == 1


def test_past_max_entries_the_sweep_culls(monkeypatch):
    monkeypatch.setattr(caches["default"], "_max_entries", 5)
    cache._next_sweep = time.monotonic() + 60
    for n in range(12):
        cache.set(f"n{n}", n, 60)
    cache._next_sweep = 0.0
    cache.hit("x", 60)
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM search_cache")
        assert cursor.fetchone()[0] <= 10  # Django's cull: a third of the rows go
