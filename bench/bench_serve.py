"""The production stack (`manage.py serve`: gunicorn + a job worker) under 64 concurrent search clients, side by
side with a single in-process loop over the search service (the ceiling: no HTTP, no JSON, no other client).

served      64 threads, each with one kept-alive HTTP/1.1 connection, GET /api/search/?q=...&k=10 against
            `manage.py serve` with production settings (DJANGO_PRODUCTION=1, SEARCH_WEB_WORKERS workers x 4
            threads, throttles off for the run); every non-200 and every refused connection is an error
in-process  search(SearchRequest(parts=[QueryPart(text=...)], k=10)) in a loop in this process, one at a time
Both get the same text queries (synthetic-world phrases) over the same items: N synthetic vectors in the
default space plus nothing else; the models are warmed before timing.

Usage: python bench/bench_serve.py [--n 100000] [--clients 64] [--requests 15] [--quick]
"""

import argparse
import concurrent.futures
import http.client
import json
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _django  # noqa: E402
import _vectors  # noqa: E402

# One BLAS/OpenMP thread per process, here and in the served stack (the environment is inherited): on 2 cores,
# torch's default pools in several processes spin against each other.
_vectors.pin_threads(1)

COLLECTION = "bench-serve"


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _client(port: int, queries: list[str]) -> list[tuple[int, float]]:
    out = []
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    for query in queries:
        started = time.perf_counter()
        try:
            conn.request("GET", f"/api/search/?q={urllib.parse.quote_plus(query)}&k=10")
            response = conn.getresponse()
            response.read()
            out.append((response.status, time.perf_counter() - started))
        except OSError:
            out.append((-1, time.perf_counter() - started))
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    conn.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--requests", type=int, default=15, help="per client")
    parser.add_argument("--configs", default="2x4",
                        help="gunicorn WORKERSxTHREADS to serve with, one after the other, comma-separated "
                             "(e.g. 2x4,2x1,4x1: the choice of `manage.py serve`'s defaults is measured)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    parser.add_argument("--out", default=None, help="write the fragment here (default docs/benchmarks/serve.md)")
    args = parser.parse_args()
    if args.quick:
        args.n, args.clients, args.requests = 2000, 8, 3
    db_name = os.environ.get("SEARCH_DB_NAME", "bench_serve")
    os.environ["SEARCH_DB_NAME"] = db_name
    load_before = os.getloadavg()[0]
    media = _django.setup(db_name)

    import numpy as np
    from django.conf import settings
    from django.db import connection

    from encoders.demo import synth
    from search.engine.query_vectors import QueryPart
    from search.engine.requests import SearchRequest
    from search.engine.search_service import search
    from search.storage import spaces

    name = settings.SEARCH_DEFAULT_SPACE
    space = spaces.register(name, allow_identity_change=True)
    spaces.get_encoder(name).warmup()
    print(f"storing {args.n:,} vectors in space {name!r} ...", flush=True)
    base, _ = _vectors.clustered(args.n, space.dimension, n_queries=1, seed=5)
    spaces.drop_index(space)
    _vectors.load(space, base, collection=COLLECTION, modality=lambda i: ("image", "audio", "text")[i % 3])
    build_s, _, _ = _vectors.build_index(space, workers=1, vectors=args.n)
    print(f"index built in {build_s:.1f} s", flush=True)

    rng = np.random.default_rng(7)
    total = args.clients * args.requests
    queries = [synth.image_query(rng, list(synth.COLOURS)[rng.integers(8)], list(synth.SHAPES)[rng.integers(8)])
               if i % 2 else synth.audio_query(rng, synth.AUDIO_KINDS[rng.integers(5)], synth.PITCHES[rng.integers(3)])
               for i in range(total)]

    # The ceiling: the service alone, one search at a time, in this process.
    for query in queries[:5]:
        search(SearchRequest(parts=[QueryPart(text=query)], k=10))
    loop_ms = []
    started = time.perf_counter()
    for query in queries:
        t = time.perf_counter()
        search(SearchRequest(parts=[QueryPart(text=query)], k=10))
        loop_ms.append((time.perf_counter() - t) * 1000)
    loop_wall = time.perf_counter() - started
    connection.close()

    configs = [tuple(int(n) for n in config.split("x")) for config in args.configs.split(",")]
    rows = []
    for workers, threads in configs:
        served_wall, results, ready_s = _serve(args, db_name, media, connection, queries, workers, threads)
        served_ms = [seconds * 1000 for _, seconds in results]
        errors = sum(1 for code, _ in results if code != 200)
        rows.append([f"served: `manage.py serve`, {workers} gunicorn workers x {threads} threads, "
                     f"{args.clients} clients",
                     f"{total / served_wall:.1f}", f"{statistics.median(served_ms):.0f}",
                     f"{percentile(served_ms, 99):.0f}", f"{errors} of {total}"])
    rows.append(["in-process: a loop over the search service, 1 search at a time", f"{total / loop_wall:.1f}",
                 f"{statistics.median(loop_ms):.0f}", f"{percentile(loop_ms, 99):.0f}", "0"])
    text = "\n".join([
        "## The production stack under concurrent clients",
        "",
        f"`python bench/bench_serve.py --n {args.n} --clients {args.clients} --requests {args.requests} "
        f"--configs {args.configs}`: {args.n:,} items in the {name!r} space (synthetic vectors, HNSW), {total} text "
        "searches (k = 10, distinct queries: each is encoded) each way, measured one after the other in one run on "
        f"this machine. Each stack was healthy (every worker's models loaded) within {ready_s:.0f} s of its start.",
        "",
        _vectors.table(["path", "searches/s", "p50 ms", "p99 ms", "errors"], rows),
        "",
        "The served figure includes HTTP, JSON, the middleware and the clients themselves, all on the same "
        "CPUs as the server; the loop is one process doing nothing else. Load average (1 min) when the run "
        f"started: {load_before:.1f}, when it ended: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores.",
        "",
    ])
    path = _django.write_fragment("serve.md", text, args.out)
    print(text)
    print(f"wrote {path}")


def _serve(args, db_name, media, connection, queries, workers: int, threads: int):
    """Start `manage.py serve` with this many workers and threads, run the clients against it, stop it."""
    total = len(queries)
    port = _free_port()
    scratch = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    env = {**os.environ, "SEARCH_DB_NAME": db_name, "DJANGO_MEDIA_ROOT": str(media),
           "SEARCH_VAR_DIR": str(scratch / "var"), "SEARCH_PGDATA": connection.settings_dict["PGDATA"],
           "DJANGO_STATIC_ROOT": str(scratch / "static"), "DJANGO_PRODUCTION": "1",
           "DJANGO_SECRET_KEY": secrets.token_urlsafe(64), "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
           "DJANGO_SECURE_SSL_REDIRECT": "0", "SEARCH_THROTTLE_SEARCH": "none", "HOST": f"127.0.0.1:{port}",
           "SEARCH_WEB_THREADS": str(threads)}
    stack = subprocess.Popen([sys.executable, str(_django.ROOT / "manage.py"), "serve",
                              "--web-workers", str(workers), "--job-workers", "1"],
                             cwd=_django.ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        started = time.perf_counter()
        while True:
            if stack.poll() is not None:
                raise SystemExit(f"the stack exited with {stack.returncode}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
                    if json.loads(response.read())["status"] == "ok":
                        break
            except OSError:
                time.sleep(0.5)
        ready_s = time.perf_counter() - started
        # Warm each worker's connections and caches as a minute of traffic would.
        _client(port, queries[:10])
        started = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(max_workers=args.clients) as pool:
            chunks = [queries[c * args.requests:(c + 1) * args.requests] for c in range(args.clients)]
            results = [r for rs in pool.map(lambda chunk: _client(port, chunk), chunks) for r in rs]
        served_wall = time.perf_counter() - started
    finally:
        stack.send_signal(signal.SIGTERM)
        try:
            stack.wait(timeout=60)
        except subprocess.TimeoutExpired:
            stack.kill()

    assert len(results) == total
    return served_wall, results, ready_s


if __name__ == "__main__":
    main()
