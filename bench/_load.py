"""Shared by the benchmarks that load many vectors through the product and serve them over HTTP
(bench_million, bench_peer): the product's bulk load, the REST API under gunicorn, and a load generator of
keep-alive HTTP clients in threads that any JSON API can be measured with.

Import after `_django.setup()` for bulk_load (it uses the product's models); the rest needs no Django.
"""

import concurrent.futures
import http.client
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence

import _django
import _vectors


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def pct(values: Sequence[float], p: float) -> float:
    """The p-th percentile of sorted values (nearest rank)."""
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def bulk_load(space, vectors, *, collection: str, tags: Callable[[int], list[str]] | None = None):
    """One item per vector (COPY), the vectors by the product's binary COPY inside spaces.bulk_load, which builds
    the space's HNSW index once after the rows. Returns the Scratch (row -> item id), the seconds of each step
    (items, vectors, index) and whether bulk_load dropped and rebuilt the index (it keeps it live for a small load).
    """
    from django.db import connection, transaction

    from search.ingest.item_vectors import Vectors, write_vectors
    from search.storage import spaces

    timings = {}
    started = time.perf_counter()
    scratch = _vectors.load_items(vectors, collection=collection, tags=tags)
    timings["items"] = time.perf_counter() - started
    with spaces.bulk_load(space, rows=len(vectors)) as rebuilt:
        started = time.perf_counter()
        with transaction.atomic():
            write_vectors(space, ((int(i), Vectors(v)) for i, v in zip(scratch.item_ids, vectors, strict=True)))
        timings["vectors"] = time.perf_counter() - started
        with connection.cursor() as cursor:
            cursor.execute("VACUUM (ANALYZE) search_embedding")
        started = time.perf_counter()
    timings["index"] = time.perf_counter() - started
    scratch.space = space
    return scratch, timings, rebuilt


def start_api(env: dict, port: int, workers: int = 2) -> subprocess.Popen:
    """The product's API under gunicorn with `manage.py serve`'s configuration (search.runtime.gunicorn_conf: gthread,
    SEARCH_WEB_THREADS threads per worker), answering on 127.0.0.1:port once this returns."""
    # The server's log goes to a file, not a pipe nobody reads: a pipe fills up and stops the server mid-run.
    log = tempfile.TemporaryFile(mode="w+")
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--config", "python:search.runtime.gunicorn_conf",
         "--bind", f"127.0.0.1:{port}", "--workers", str(workers), "search.wsgi:application"],
        cwd=_django.ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log, text=True)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/api/spaces/")
            if conn.getresponse().status < 500:
                return process
        except OSError:
            time.sleep(0.5)
    process.kill()
    log.seek(0)
    raise RuntimeError("the API server did not come up: " + log.read()[-2000:])


def http_run(port: int, path: str, bodies: Sequence[str], clients: int, parse: Callable[[bytes], list],
             seconds: float | None = None) -> tuple[list, float]:
    """POST JSON bodies to 127.0.0.1:port/path from `clients` threads, each over one kept-alive HTTP/1.1 connection.

    Bodies are dealt round-robin: client c sends c, c + clients, ... once each, or, with `seconds`, over and over
    until that much time has passed. Returns one row per request, (body position, HTTP status or -1 for a broken
    connection, milliseconds, parse(body) of a 200 answer else []), and the wall time from the first request to
    the last answer.
    """
    deadline = None

    def client(number: int) -> list:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        out = []
        positions = range(number, len(bodies), clients)
        passes = 0
        while positions and (passes == 0 or (deadline is not None and time.perf_counter() < deadline)):
            for position in positions:
                if deadline is not None and time.perf_counter() >= deadline:
                    break
                started = time.perf_counter()
                try:
                    conn.request("POST", path, body=bodies[position], headers={"Content-Type": "application/json"})
                    response = conn.getresponse()
                    payload = response.read()
                    status = response.status
                except (OSError, http.client.HTTPException):
                    status, payload = -1, b""
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
                out.append((position, status, (time.perf_counter() - started) * 1000,
                            parse(payload) if status == 200 else []))
            passes += 1
        conn.close()
        return out

    started = time.perf_counter()
    if seconds is not None:
        deadline = started + seconds
    with concurrent.futures.ThreadPoolExecutor(max_workers=clients) as pool:
        rows = [row for rows in pool.map(client, range(clients)) for row in rows]
    return rows, time.perf_counter() - started
