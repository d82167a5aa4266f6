"""Search end to end on 100,000 vectors: the API, the search service, and the same k-NN statements bare, in one
run, so the cost of each layer is a ratio.

bare        psycopg: the k-NN statements one service search sends (captured from it, one per target modality:
            the service ranks each modality on its own scale), with a vector encoded beforehand; ef_search and
            iterative scan set once per session
service     search(SearchRequest(parts=[QueryPart(text=...)])) as the API calls it: encoding the text (the text
            cache is cleared before each query), per target modality a count of the filtered rows, and the k-NN
            statement with its index knobs in the same message, pinned items, loading the hits;
            page.timings gives encode_ms and sql_ms
one list    the same with balance_modalities=False: one k-NN statement over every modality, raw cosine order
api         GET /api/search/?q=...&k=10 through Django's test client: URL routing, middleware, DRF parsing and
            validation, the service, and serialising the page to JSON
The paths are interleaved query by query, so drift on a shared machine hits them alike. The vectors are
clustered synthetic ones in the space's dimension (half images, 30% sounds, 20% texts), stored in the
space's own tables next to its real items.

Usage: python bench/bench_search.py [--n 100000] [--queries 300] [--space demo] [--fake-encoder] [--quick]
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _vectors  # noqa: E402

_vectors.pin_threads(1)

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import _django  # noqa: E402

K = 10
FAKE_SPACE = "bench-fake"
COLLECTION = "bench-search"


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def modality_of(i: int) -> str:
    return "image" if i % 10 < 5 else ("audio" if i % 10 < 8 else "text")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--space", default=None, help="the space to search (default: the default space)")
    parser.add_argument(
        "--fake-encoder",
        action="store_true",
        help="search a space of the model-free fake encoder (dim 128), e.g. before the demo weights exist; "
        "encoding then costs next to nothing",
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run for the test suite")
    parser.add_argument("--out", default=None, help="write the fragment here (default docs/benchmarks/search.md)")
    args = parser.parse_args()
    if args.quick:
        args.n, args.queries = 3000, 30
    if args.fake_encoder:
        os.environ["SEARCH_SPACES_JSON"] = json.dumps(
            {FAKE_SPACE: {"ENCODER": "encoders.fake.FakeSpace", "OPTIONS": {"dim": 128}}}
        )
        os.environ["SEARCH_DEFAULT_SPACE"] = FAKE_SPACE
    _django.setup()

    import numpy as np
    from django.conf import settings
    from django.test import Client

    from encoders.demo import synth
    from search.engine import rankers
    from search.engine.query_vectors import QueryPart, text_cache
    from search.engine.requests import SearchRequest
    from search.engine.search_service import search
    from search.storage import spaces

    space_name = args.space or settings.SEARCH_DEFAULT_SPACE
    # The bench database outlives model changes; its copy of the space simply follows the configured model.
    space = spaces.register(space_name, allow_identity_change=True)
    encoder = spaces.get_encoder(space_name)
    encoder.warmup()
    _vectors.drop_items(COLLECTION)

    print(f"storing {args.n:,} vectors of dimension {space.dimension} in space {space_name!r} ...", flush=True)
    base, _ = _vectors.clustered(args.n, space.dimension, n_queries=1, seed=3)
    spaces.drop_index(space)  # a bulk load into a live HNSW index inserts one vector at a time
    _vectors.load(space, base, collection=COLLECTION, modality=modality_of)
    build_s, index_bytes, _ = _vectors.build_index(space, workers=1, vectors=args.n)
    total_vectors = space.embeddings.filter(segment_start__isnull=True).count()
    print(f"index built in {build_s:.1f} s", flush=True)

    rng = np.random.default_rng(4)
    texts = []
    for i in range(args.queries):
        if i % 3 == 2:
            kind, pitch = synth.AUDIO_KINDS[rng.integers(5)], synth.PITCHES[rng.integers(3)]
            texts.append(synth.audio_query(rng, kind, pitch))
        else:
            colour, shape = list(synth.COLOURS)[rng.integers(8)], list(synth.SHAPES)[rng.integers(8)]
            texts.append(synth.image_query(rng, colour, shape))
    vectors = encoder.encode_texts(texts)

    # What one search sends: every statement, and the k-NN ones with their parameters to replay bare.
    rankers.clear_centroids()
    search(SearchRequest(parts=[QueryPart(vector=vectors[0].tolist())], k=K))  # fills the centroid cache
    sent = _vectors.capture(lambda: search(SearchRequest(parts=[QueryPart(vector=vectors[0].tolist())], k=K)))
    first = _vectors.literal(vectors[0])
    sent = [(sql, params, [i for i, p in enumerate(params) if p == first]) for sql, params in sent]
    replay = [(*_vectors.without_knobs(sql, params), slots) for sql, params, slots in sent
              if _vectors.statement_kind(sql) == "k-NN"]
    replay = [(sql, params, [i for i, p in enumerate(params) if p == first]) for sql, params, _ in replay]

    # The centroid each modality is scored against is recomputed when its cache entry expires.
    centroid_ms = []
    for modality in sorted(space.modalities):
        rankers.clear_centroids()
        started = time.perf_counter()
        rankers.modality_centroid(space, modality)
        centroid_ms.append((time.perf_counter() - started) * 1000)

    bare = _vectors.connect().cursor()
    bare.execute(f"SET hnsw.ef_search = {max(settings.SEARCH_HNSW_EF_SEARCH, K + 1)}")
    bare.execute("SET hnsw.iterative_scan = relaxed_order")
    bare.execute("SET hnsw.max_scan_tuples = 20000")
    settings.SEARCH_THROTTLE_RATES = {**settings.SEARCH_THROTTLE_RATES, "search": "1000000/min"}
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    client = Client()

    def run_bare(i: int) -> dict:
        started = time.perf_counter()
        text = _vectors.literal(vectors[i])
        for sql, params, slots in replay:
            args_ = list(params)
            for slot in slots:
                args_[slot] = text
            bare.execute(sql, args_)
            bare.fetchall()
        total = (time.perf_counter() - started) * 1000
        return {"total": total, "sql": total}

    def service(balance: bool):
        def run(i: int) -> dict:
            text_cache.clear()
            started = time.perf_counter()
            page = search(SearchRequest(parts=[QueryPart(text=texts[i])], k=K, balance_modalities=balance))
            total = (time.perf_counter() - started) * 1000
            return {"total": total, "encode": page.timings["encode_ms"], "sql": page.timings["sql_ms"],
                    "found": [hit.item.pk for hit in page.hits]}

        return run

    def run_api(i: int) -> dict:
        text_cache.clear()
        started = time.perf_counter()
        response = client.get("/api/search/", {"q": texts[i], "k": K})
        total = (time.perf_counter() - started) * 1000
        assert response.status_code == 200, response.content[:300]
        body = response.json()
        return {"total": total, "encode": body["timings"]["encode_ms"], "sql": body["timings"]["sql_ms"],
                "found": [hit["id"] for hit in body["results"]]}

    paths = {
        "bare k-NN SQL (psycopg)": run_bare,
        "service: search()": service(True),
        "service, one list (balance_modalities=False)": service(False),
        "API: GET /api/search/": run_api,
    }
    samples = {name: [] for name in paths}
    for warm in range(min(10, args.queries)):
        for run in paths.values():
            run(warm)
    for i in range(args.queries):
        for name, run in paths.items():
            samples[name].append(run(i))
    # The service's SQL time by kind of statement: each statement of one search replayed bare, per query.
    by_kind: dict[str, list[float]] = {}
    with _vectors.connect() as conn:
        cursor = conn.cursor()
        for i in range(min(100, args.queries)):
            text = _vectors.literal(vectors[i])
            spent: dict[str, float] = {}
            for sql, params, slots in sent:
                args_ = list(params)
                for slot in slots:
                    args_[slot] = text
                started = time.perf_counter()
                cursor.execute(sql, args_)
                if cursor.description:
                    cursor.fetchall()
                kind = _vectors.statement_kind(sql)
                spent[kind] = spent.get(kind, 0.0) + (time.perf_counter() - started) * 1000
            for kind, ms in spent.items():
                by_kind.setdefault(kind, []).append(ms)
    kinds = [_vectors.statement_kind(sql) for sql, _, _ in sent]

    same = np.mean([a["found"] == b["found"] for a, b in
                    zip(samples["service: search()"], samples["API: GET /api/search/"], strict=True)])

    bare_p50 = statistics.median(s["total"] for s in samples["bare k-NN SQL (psycopg)"])
    table_rows, shares = [], []
    for name, runs in samples.items():
        totals = [s["total"] for s in runs]
        encode = [s.get("encode", 0.0) for s in runs]
        sql = [s["sql"] for s in runs]
        other = [s["total"] - s.get("encode", 0.0) - s["sql"] for s in runs]
        p50 = statistics.median(totals)
        table_rows.append([name, f"{p50:.2f}", f"{percentile(totals, 99):.2f}", f"{statistics.median(encode):.2f}",
                           f"{statistics.median(sql):.2f}", f"{statistics.median(other):.2f}",
                           f"{p50 / bare_p50:.1f}x"])
        mean_total = statistics.fmean(totals)
        shares.append([name, f"{statistics.fmean(encode) / mean_total:.0%}",
                       f"{statistics.fmean(sql) / mean_total:.0%}", f"{statistics.fmean(other) / mean_total:.0%}"])
    service_sql = statistics.median(s["sql"] for s in samples["service: search()"])
    encoder_note = ("the fake encoder (no model: encoding is nearly free here)" if args.fake_encoder
                    else f"the `{space_name}` model")

    report = "\n".join([
        "## Search end to end",
        "",
        f"Machine: {_django.machine()}; {_vectors.server_versions()}.",
        "",
        f"Space `{space_name}`, dimension {space.dimension}, {total_vectors:,} vectors ({args.n:,} clustered "
        "synthetic ones, half images, 30% sounds, 20% texts, plus the space's own items), HNSW index "
        f"({index_bytes / 2**20:,.0f} MiB) built in {build_s:.1f} s. {args.queries} distinct text queries encoded "
        f"by {encoder_note}, k = {K}, no filter, one client. The paths run interleaved, query by query; the text "
        "cache is cleared before each service and API query so every one pays for encoding. The API goes "
        "through Django's test client (no socket). \"bare\" replays the k-NN statements a service search sends "
        f"({len(replay)}: every target modality's ranking in one statement, search.engine.ranking_batch) with psycopg.",
        "",
        _vectors.table(["path", "p50 ms", "p99 ms", "encode p50", "SQL p50", "rest p50", "p50 / bare"], table_rows),
        "",
        "The service's SQL by kind of statement (each statement of one search replayed bare with psycopg, "
        "summed per search, median over queries):",
        "",
        _vectors.table(
            ["statement", "per search", "ms per search, p50"],
            [[kind, str(kinds.count(kind)), f"{statistics.median(ms):.2f}"] for kind, ms in by_kind.items()],
        ),
        "",
        "Where the time goes (share of the mean):",
        "",
        _vectors.table(["path", "encoding", "SQL", "the rest (Python: validation, hits, serialisation)"], shares),
        "",
        f"- The service's SQL time ({service_sql:.2f} ms p50) is {service_sql / bare_p50:.1f}x the bare k-NN "
        f"statements ({bare_p50:.2f} ms). One search sends {len(sent)} statements: per target modality the "
        f"planner's row estimate for the modality filter (EXPLAIN, to choose an exact scan below "
        f"{settings.SEARCH_EXACT_BELOW:,} rows) and the k-NN statement, its index knobs sent in the same "
        "message; then the pinned check and loading the hits (table above).",
        f"- Every {settings.SEARCH_CENTROID_TTL} s one query also recomputes the modality centroids the scores are "
        f"calibrated against: {sum(centroid_ms):.0f} ms for {len(centroid_ms)} modalities over "
        f"{total_vectors:,} vectors (an average over every vector of the modality), which lands in the p99.",
        f"- The service and the API returned the same top {K} for {same:.0%} of the queries.",
        "",
    ])
    print(report)
    if args.out or not args.quick:
        print(f"wrote {_django.write_fragment('search.md', report, args.out)}")
    bare.connection.close()
    _vectors.drop_items(COLLECTION, space)
    rankers.clear_centroids()


if __name__ == "__main__":
    main()
