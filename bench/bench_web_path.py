"""The web tier's own CPU per search request, in process: Django's WSGI handler called as gunicorn calls it (no
socket, no server), against the search service alone for the same query, interleaved request by request.

vec   POST /api/search/ {"parts": [{"vector": [...]}], "k": 10, "space": "peer"}: N x 512 clustered vectors in a
      FakeSpace image space (bench_peer's data and settings: relevance cutoff 0, throttles off)
text  GET /api/search/?q=...&k=10: N synthetic vectors in the default space (bench_serve's data), the demo model

Each mode keeps its database (bench_web_<mode> on the bench server, var/bench-pgdata) between runs, so two checkouts
can be compared side by side on the same rows: run it from each in turn with --root (a `git worktree` of the older
commit, say), alternating. --profile prints cProfile's cumulative table of the WSGI requests instead.

The access log is on, as in production (JSON lines to stderr: redirect them). CPU is this thread's (thread_time);
"web tier" is the mean of the whole request less the mean of the service alone.

Usage: python bench/bench_web_path.py vec|text [--root CHECKOUT] [--n 100000] [--requests 150] [--rounds 3]
                                        [--profile] [--quick]
"""

import argparse
import cProfile
import io
import json
import os
import pstats
import sys
import time
import urllib.parse
from pathlib import Path

BENCH = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["vec", "text"])
    parser.add_argument("--root", default=str(BENCH.parent), help="the checkout whose code serves (default: this one)")
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=150)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--quick", action="store_true", help="smoke run: 2,000 rows, 20 requests, 1 round")
    args = parser.parse_args()
    if args.quick:
        args.n, args.requests, args.rounds = 2_000, 20, 1
    root = Path(args.root).resolve()
    sys.path[:0] = [str(root), str(BENCH)]
    os.chdir(root)
    import _vectors

    _vectors.pin_threads(1)
    os.environ["SEARCH_PGDATA"] = str(BENCH.parent / "var" / "bench-pgdata")
    os.environ["SEARCH_DB_NAME"] = f"bench_web_{args.mode}{'_quick' if args.quick else ''}"
    os.environ.setdefault("DJANGO_MEDIA_ROOT", "/tmp/bench-web-media")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "search.settings")
    os.environ["SEARCH_THROTTLE_SEARCH"] = "none"
    os.environ["SEARCH_REQUEST_LOG_LEVEL"], os.environ["DJANGO_LOG_JSON"] = "INFO", "1"
    if args.mode == "vec":
        os.environ["SEARCH_SPACES_JSON"] = json.dumps(
            {"peer": {"ENCODER": "encoders.fake.FakeSpace", "OPTIONS": {"dim": 512, "modalities": ["image"]}}})
        os.environ["SEARCH_MIN_RELEVANCE"] = "0"
    import django

    django.setup()
    from django.core.handlers.wsgi import WSGIHandler
    from django.core.management import call_command
    from django.db import connection

    from search.engine.query_vectors import QueryPart
    from search.engine.requests import Filters, SearchRequest
    from search.engine.search_service import search
    from search.storage import spaces

    name = connection.settings_dict["NAME"]
    with connection._nodb_cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
        exists = cursor.fetchone() is not None
    call_command("migrate", verbosity=0)  # creates the database on first use
    if args.mode == "vec":
        space = spaces.register("peer")
        base, queries = _vectors.clustered(args.n, 512, n_queries=200, seed=23)
        if not exists:
            from _load import bulk_load

            bulk_load(space, base, collection="peer")
        requests = [("POST", "", json.dumps({"parts": [{"vector": [round(float(x), 6) for x in q]}], "k": 10,
                                              "space": "peer"}).encode()) for q in queries]
    else:
        import numpy as np
        from django.conf import settings

        from encoders.demo import synth

        space_name = settings.SEARCH_DEFAULT_SPACE
        space = spaces.register(space_name, allow_identity_change=True)
        spaces.get_encoder(space_name).warmup()
        if not exists:
            base, _ = _vectors.clustered(args.n, space.dimension, n_queries=1, seed=5)
            spaces.drop_index(space)
            _vectors.load(space, base, collection="bench-web", modality=lambda i: ("image", "audio", "text")[i % 3])
            _vectors.build_index(space, workers=1, vectors=args.n)
        rng = np.random.default_rng(7)
        colours, shapes = list(synth.COLOURS), list(synth.SHAPES)
        texts = [synth.image_query(rng, colours[rng.integers(8)], shapes[rng.integers(8)]) if i % 2
                 else synth.audio_query(rng, synth.AUDIO_KINDS[rng.integers(5)], synth.PITCHES[rng.integers(3)])
                 for i in range(200)]
        requests = [("GET", f"q={urllib.parse.quote_plus(text)}&k=10", b"") for text in texts]

    app = WSGIHandler()

    def call(request) -> None:
        method, query, body = request
        environ = {
            "REQUEST_METHOD": method, "PATH_INFO": "/api/search/", "QUERY_STRING": query, "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "8000", "HTTP_HOST": "127.0.0.1:8000", "REMOTE_ADDR": "127.0.0.1",
            "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.version": (1, 0), "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(body), "wsgi.errors": sys.stderr, "wsgi.multithread": True,
            "wsgi.multiprocess": True, "wsgi.run_once": False, "HTTP_CONNECTION": "keep-alive",
            "CONTENT_TYPE": "application/json" if body else "", "CONTENT_LENGTH": str(len(body)) if body else "",
        }
        status = []
        out = app(environ, lambda line, headers, exc_info=None: status.append(line))
        payload = b"".join(out)
        out.close()
        if not status[0].startswith("200"):
            raise SystemExit(f"{status[0]}: {payload[:300]!r}")

    def service(request) -> None:
        method, query, body = request
        if method == "POST":
            part = QueryPart(vector=json.loads(body)["parts"][0]["vector"])
            search(SearchRequest(parts=[part], filters=Filters(), space="peer", k=10))
        else:
            search(SearchRequest(parts=[QueryPart(text=urllib.parse.parse_qs(query)["q"][0])], filters=Filters(), k=10))

    for request in requests[:20]:
        call(request)
        service(request)
    chosen = requests[:args.requests]
    if args.profile:
        profile = cProfile.Profile()
        profile.enable()
        for request in chosen:
            call(request)
        profile.disable()
        pstats.Stats(profile, stream=sys.stdout).sort_stats("cumulative").print_stats(80)
        return
    whole, alone = [], []
    for _ in range(args.rounds):
        for request in chosen:
            started = time.thread_time()
            call(request)
            whole.append(time.thread_time() - started)
            started = time.thread_time()
            service(request)
            alone.append(time.thread_time() - started)

    def mean(values) -> float:
        return sum(values) / len(values) * 1000

    def p50(values) -> float:
        return sorted(values)[len(values) // 2] * 1000

    print(f"{args.mode} {root}: request (WSGI) CPU p50 {p50(whole):.2f} ms, mean {mean(whole):.2f}; service alone "
          f"p50 {p50(alone):.2f}, mean {mean(alone):.2f}; web tier {mean(whole) - mean(alone):.2f} ms "
          f"(load {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
