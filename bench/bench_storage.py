"""Vector storage side by side: today's layout (a dimension-free `vector` column, out of line in TOAST above
~500 dimensions), full precision stored inline (a space with "PRECISION": "full"), and half precision
(`halfvec`, the default), on the same vectors in one run: recall@10 at equal ef_search, the exact path's speed,
index and table size, build time.

The product's k-NN statement is captured from searching.vector_ranking for each space; "today" runs the same
statement against a table with the old column (`vector`, the type's EXTERNAL storage) and the old index
expression (`vector::vector(dim)`, vector_cosine_ops).

Usage: python bench/bench_storage.py [--n 100000] [--dim 512] [--quick]
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _vectors  # noqa: E402

_vectors.pin_threads(1)

import argparse  # noqa: E402
import os  # noqa: E402
import time  # noqa: E402

import _django  # noqa: E402

K = 10
EF_SEARCH = [20, 40, 80, 120, 200]
LEGACY = "bench_legacy_embedding"
TARGET_DROP = 0.005


def legacy_table(space, item_ids, vectors, m: int, ef_construction: int) -> tuple[float, float, str]:
    """Today's layout, filled with the same rows: load seconds, index build seconds, index name."""
    import numpy as np
    from django.db import connection
    from pgvector.psycopg import register_vector

    index = f"{LEGACY}_hnsw"
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {LEGACY}")
        cursor.execute(f"CREATE TABLE {LEGACY} (id bigserial PRIMARY KEY, item_id bigint NOT NULL, "
                       "space_id bigint NOT NULL, vector vector NOT NULL, segment_start float8, segment_end float8)")
    connection.ensure_connection()
    register_vector(connection.connection)
    started = time.perf_counter()
    with connection.cursor() as cursor:
        with cursor.cursor.copy(f"COPY {LEGACY} (item_id, space_id, vector) FROM STDIN WITH (FORMAT BINARY)") as copy:
            copy.set_types(["int8", "int8", "vector"])
            for item_id, vector in zip(item_ids, vectors, strict=True):
                copy.write_row([int(item_id), space.pk, np.asarray(vector, dtype=np.float32)])
        cursor.execute(f"VACUUM (ANALYZE) {LEGACY}")
    load_s = time.perf_counter() - started
    dim = int(space.dimension)
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("SET min_parallel_table_scan_size = 0")
        cursor.execute(f"CREATE INDEX {index} ON {LEGACY} USING hnsw ((vector::vector({dim})) vector_cosine_ops) "
                       f"WITH (m = {m}, ef_construction = {ef_construction}) "
                       f"WHERE space_id = {int(space.pk)} AND segment_start IS NULL")
        cursor.execute("RESET min_parallel_table_scan_size")
    return load_s, time.perf_counter() - started, index


def table_bytes(space) -> int:
    """Heap + TOAST bytes the space's rows take in the product's table (copied alone into a table of the same
    layout and storage settings)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS bench_storage_copy")
        cursor.execute("CREATE TABLE bench_storage_copy (LIKE search_embedding INCLUDING STORAGE)")
        cursor.execute("INSERT INTO bench_storage_copy SELECT * FROM search_embedding WHERE space_id = %s", [space.pk])
        cursor.execute("VACUUM bench_storage_copy")
        cursor.execute("SELECT pg_table_size('bench_storage_copy')")
        size = cursor.fetchone()[0]
        cursor.execute("DROP TABLE bench_storage_copy")
    return size


def relation_bytes(name: str) -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_relation_size(%s::regclass)", [name])
        return cursor.fetchone()[0]


def drop_text(drops: list[float]) -> str:
    """drops: full - half recall at each ef_search."""
    if max(drops) <= 0:
        return (f"**none**, half was never below full (half - full from {-max(drops):+.4f} to "
                f"{-min(drops):+.4f}; two HNSW builds differ by that much on their own)")
    return f"at most **{max(drops):.4f}**"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--exact-queries", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=2, help="interleaved passes; the fastest is kept")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run for the test suite")
    parser.add_argument("--out", default=None, help="write the fragment here (default docs/benchmarks/storage.md)")
    args = parser.parse_args()
    if args.quick:
        args.n, args.dim, args.queries, args.exact_queries, args.rounds = 3000, 512, 40, 10, 1
    # A server of its own, started with the tuning the product derives from this machine.
    os.environ.setdefault("SEARCH_PGDATA", str(_django.ROOT / "var" / "bench-pgdata"))
    _django.setup("bench_storage" if not args.quick else "bench_smoke_storage")
    import numpy as np
    from django.conf import settings

    from search.engine.requests import Filters

    base, queries = _vectors.clustered(args.n, args.dim, n_queries=args.queries, seed=7)
    truth = _vectors.exact_neighbours(base, queries, K)
    literals = [_vectors.literal(q) for q in queries]
    m, efc = settings.SEARCH_HNSW_M, settings.SEARCH_HNSW_EF_CONSTRUCTION

    variants = {}
    for precision in ("full", "half"):
        name = f"bench-storage-{precision}"
        space = _vectors.scratch_space(name, args.dim, precision=precision)
        started = time.perf_counter()
        scratch = _vectors.load(space, base, collection=name)
        load_s = time.perf_counter() - started
        build_s, index_size, _ = _vectors.build_index(space, workers=1, vectors=args.n)
        print(f"[{precision}] load {load_s:.1f} s, build {build_s:.1f} s, index {index_size / 2**20:.1f} MiB",
              flush=True)
        variants[precision] = {
            "space": space, "scratch": scratch, "load_s": load_s, "build_s": build_s, "index": index_size,
            "table": table_bytes(space),
            "hnsw": _vectors.product_sql(space, queries[0], Filters(), limit=K),
            "exact": _vectors.product_sql(space, queries[0], Filters(), limit=K, exact=True),
        }
    full = variants["full"]
    load_s, build_s, legacy_index = legacy_table(full["space"], full["scratch"].item_ids, base, m, efc)
    print(f"[today] load {load_s:.1f} s, build {build_s:.1f} s", flush=True)

    def legacy(statement):
        # The ranking's scan only: the statement's passage count reads search_embedding (none here: never run).
        sql = statement.sql.replace("FROM search_embedding e ", f"FROM {LEGACY} e ").replace(
            "e.vector_full::vector(", "e.vector::vector(")
        return _vectors.ProductSQL(sql, statement.params, statement.vector_slots)

    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"SELECT pg_table_size('{LEGACY}')")
        legacy_table_size = cursor.fetchone()[0]
    variants = {
        "today: vector, out of line (TOAST)": {
            **full, "load_s": load_s, "build_s": build_s, "index": relation_bytes(legacy_index),
            "table": legacy_table_size, "hnsw": legacy(full["hnsw"]), "exact": legacy(full["exact"]),
        },
        "full precision, inline": full,
        "half precision, inline (default)": variants["half"],
    }

    def client(statement, scratch, ef: int):
        def make():
            conn = _vectors.connect()
            cursor = conn.cursor()
            cursor.execute(f"SET hnsw.ef_search = {int(ef)}")
            cursor.execute("SET hnsw.iterative_scan = off")

            def ask(position: int):
                cursor.execute(statement.sql, statement.args(literals[position]))
                return scratch.rows(row[0] for row in cursor.fetchall())

            return ask

        return make

    positions = list(range(len(queries)))
    recall_rows, exact_rows = {}, {}
    for ef in EF_SEARCH:
        best = {}
        for _ in range(args.rounds):
            for label, v in variants.items():
                run = _vectors.run_clients(client(v["hnsw"], v["scratch"], ef), positions)
                if label not in best or run.seconds < best[label].seconds:
                    best[label] = run
        for label, run in best.items():
            recall_rows[label, ef] = (_vectors.recall(run.results, truth, K), run.p50, run.qps)
            print(f"[{label}] ef {ef}: recall {recall_rows[label, ef][0]:.4f}, p50 {run.p50:.2f} ms", flush=True)
    few = positions[: args.exact_queries]
    best = {}
    for _ in range(args.rounds):
        for label, v in variants.items():
            run = _vectors.run_clients(client(v["exact"], v["scratch"], 40), few, warmup=2)
            if label not in best or run.seconds < best[label].seconds:
                best[label] = run
    for label, run in best.items():
        exact_rows[label] = (_vectors.recall(run.results, truth[few], K), run.p50, run.p99)
        print(f"[{label}] exact: p50 {run.p50:.1f} ms", flush=True)

    labels = list(variants)
    today, full_label, half_label = labels
    drops = [recall_rows[full_label, ef][0] - recall_rows[half_label, ef][0] for ef in EF_SEARCH]
    worst = max(drops)
    out = [
        "## Vector storage: half precision, inline",
        "",
        f"Machine: {_django.machine()}; {_vectors.server_versions()} (the embedded server's own tuning for this "
        "machine, see search/storage/embedded_server.py).",
        "",
        f"{args.n:,} clustered synthetic unit vectors of dimension {args.dim} ({len(queries)} held-out queries, "
        f"k = {K}, recall@10 against numpy's exact answer), stored three ways and queried with the statement "
        "`searching.vector_ranking` sends (captured from it), one client, HNSW m "
        f"{m}, ef_construction {efc}, iterative scan off; best of {args.rounds} interleaved passes.",
        "",
        _vectors.table(
            ["layout", "table MiB", "bytes/row", "index MiB", "load s", "index build s", "exact p50 ms",
             "exact p99 ms"],
            [[label, f"{v['table'] / 2**20:,.1f}", f"{v['table'] / args.n:,.0f}", f"{v['index'] / 2**20:,.1f}",
              f"{v['load_s']:.1f}", f"{v['build_s']:.1f}", f"{exact_rows[label][1]:.1f}",
              f"{exact_rows[label][2]:.1f}"] for label, v in variants.items()],
        ),
        "",
        "A full-precision space keeps its `halfvec` copy too (the column every reader can use), hence its table; "
        "its index and searches use only the float32 column.",
        "",
        "Recall@10 and latency at equal ef_search:",
        "",
        _vectors.table(
            ["ef_search", *[f"recall: {label}" for label in labels], "half - full", "p50 ms today / full / half"],
            [[ef, *[f"{recall_rows[label, ef][0]:.4f}" for label in labels],
              f"{recall_rows[half_label, ef][0] - recall_rows[full_label, ef][0]:+.4f}",
              " / ".join(f"{recall_rows[label, ef][1]:.2f}" for label in labels)] for ef in EF_SEARCH],
        ),
        "",
        "Targets:",
        "",
        f"- recall@10 drop of half against full precision at equal ef_search: {drop_text(drops)} "
        f"(target <= {TARGET_DROP}): **{'met' if worst <= TARGET_DROP else 'missed'}**.",
        f"- exact path: {exact_rows[today][1]:.1f} ms today, {exact_rows[half_label][1]:.1f} ms at half precision "
        f"= **{exact_rows[today][1] / exact_rows[half_label][1]:.1f}x** faster; index "
        f"{variants[today]['index'] / 2**20:,.1f} MiB -> {variants[half_label]['index'] / 2**20:,.1f} MiB "
        f"(**{variants[half_label]['index'] / variants[today]['index']:.2f}x**); table "
        f"{variants[today]['table'] / 2**20:,.1f} MiB -> {variants[half_label]['table'] / 2**20:,.1f} MiB.",
        "",
        f"Command: `.venv/bin/python bench/bench_storage.py --n {args.n} --dim {args.dim}`.",
        "",
    ]
    report = "\n".join(out)
    print(report)
    for precision in ("full", "half"):
        _vectors.drop_scratch(f"bench-storage-{precision}")
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {LEGACY}")
    if args.out or not args.quick:
        print(f"wrote {_django.write_fragment('storage.md', report, args.out)}")
    assert np.isfinite(worst)


if __name__ == "__main__":
    main()
