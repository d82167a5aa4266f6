"""The embedded PostgreSQL is started on demand and shared by processes running side by side."""

import os
import signal
import subprocess
import sys
import time

import pytest

from search.storage import embedded_server
from tests.conftest import ROOT

# Each child opens a connection, runs a query, optionally lingers, then exits.
CHILD = """
import os, sys, time, django
os.environ["DJANGO_SETTINGS_MODULE"] = "search.settings"
django.setup()
from django.db import connection
with connection.cursor() as cursor:
    cursor.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector' UNION ALL SELECT 'none'")
    print("connected", flush=True)
    time.sleep(float(sys.argv[1]))
    cursor.execute("SELECT 1")
    print("still connected", flush=True)
"""


@pytest.fixture
def private_db(tmp_path):
    env = {
        **os.environ,
        "SEARCH_VAR_DIR": str(tmp_path / "var"),
        "SEARCH_PGDATA": str(tmp_path / "var" / "pgdata"),
        "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
    }
    yield env, tmp_path / "var" / "pgdata"
    embedded_server.stop(tmp_path / "var" / "pgdata")


def child(env, linger: float):
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(linger)], env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_line(process, expected: str, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if expected in line:
            return
        if process.poll() is not None:
            break
    raise AssertionError(f"child never printed {expected!r}: {process.stderr.read()}")


def test_processes_share_the_server_and_the_last_one_out_stops_it(private_db):
    env, pgdata = private_db
    long_lived = child(env, linger=6)
    wait_for_line(long_lived, "connected")
    short_lived = child(env, linger=0)
    assert short_lived.wait(60) == 0, short_lived.stderr.read()
    # The short process left, but the long one still holds the server.
    assert embedded_server.status(pgdata)["running"]
    assert long_lived.wait(60) == 0, long_lived.stderr.read()
    assert "still connected" in long_lived.stdout.read()
    assert not embedded_server.status(pgdata)["running"]


def test_a_killed_process_does_not_keep_the_server_up_forever(private_db):
    env, pgdata = private_db
    victim = child(env, linger=60)
    wait_for_line(victim, "connected")
    victim.send_signal(signal.SIGKILL)
    victim.wait(10)
    assert embedded_server.status(pgdata)["running"]
    follower = child(env, linger=0)
    assert follower.wait(60) == 0, follower.stderr.read()
    assert not embedded_server.status(pgdata)["running"]
