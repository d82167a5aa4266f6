"""A burst of concurrent requests against a threaded server (as `make run` serves) leaves it answering:
connections come from Django's pool and go back to it, instead of one left open per request thread."""

import concurrent.futures
import http.client
import json
import urllib.error
import urllib.request
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.db import connection

from search.ingest.ingester import Ingester, IngestInput

CLIENTS = 150  # more than PostgreSQL's default max_connections (100)
REQUESTS_EACH = 4


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            response.read()
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return -1  # refused or reset: as bad as a 5xx for a client


def _keep_alive_client(base: str, n: int) -> list[int]:
    """One browser-like client: several requests over one kept-alive HTTP/1.1 connection, which keeps its
    server thread (and, without a pool, that thread's database connection) alive between requests."""
    parts = urlsplit(base)
    codes = []
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    try:
        for i in range(REQUESTS_EACH):
            try:
                conn.request("GET", f"/api/search/?q=colour+{n}+{i}" if i % 2 else "/api/items/")
                response = conn.getresponse()
                response.read()
                codes.append(response.status)
            except OSError:
                codes.append(-1)  # refused or reset: as bad as a 5xx for a client
                conn.close()
                conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    finally:
        conn.close()
    return codes


def _backends(dbname: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s", [dbname])
        return cursor.fetchone()[0]


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("fake_spaces")
def test_a_burst_of_hundreds_of_requests_leaves_the_server_answering(live_server, settings, output_dir):
    settings.SEARCH_THROTTLE_RATES = {"search": "1000000/min", "write": "1000000/min"}
    Ingester().ingest_many([IngestInput(text=f"a note about colour number {i}") for i in range(20)])
    dbname = connection.settings_dict["NAME"]
    codes = []
    for _ in range(2):  # a second burst finds the connections of the first returned, not leaked
        with concurrent.futures.ThreadPoolExecutor(max_workers=CLIENTS) as pool:
            for client_codes in pool.map(lambda n: _keep_alive_client(live_server.url, n), range(CLIENTS)):
                codes += client_codes
    pool_max = settings.DATABASES["default"]["OPTIONS"]["pool"]["max_size"]
    backends = _backends(dbname)
    after = _get(f"{live_server.url}/api/search/?q=colour")
    report = {"requests": len(codes), "ok": codes.count(200), "errors": len(codes) - codes.count(200),
              "backends_after": backends, "pool_max_size": pool_max}
    (output_dir / "burst.json").write_text(json.dumps(report, indent=1))
    assert codes.count(200) == len(codes), report
    # The server's own connections (the pool) plus this test's: never one per request thread.
    assert backends <= pool_max + 2, report
    assert after == 200


def test_the_pool_is_on_by_default_and_sized_below_the_servers_limit():
    pool = settings.DATABASES["default"]["OPTIONS"]["pool"]
    assert settings.DATABASES["default"]["CONN_MAX_AGE"] == 0
    assert pool["max_size"] * settings.DB_SERVER_PROCESSES + 5 <= 97  # PostgreSQL's default 100 - 3 reserved
