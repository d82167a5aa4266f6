"""A peer, side by side: the same vectors served by our REST API and by Chroma, at equal recall, under the same
concurrent clients.

Both engines get the same N x dim clustered unit vectors (bench/_vectors.py), the same held-out raw-vector
queries (k = 10, recall@10 against numpy's exact answer) and the same load generator (bench/_load.http_run:
`--clients` threads, each with one kept-alive HTTP/1.1 connection, JSON bodies built before the clock starts,
every answer parsed). HNSW m 16 and ef_construction 64 for both (pgvector's defaults; Chroma's max_neighbors
and ef_construction). Each engine serves on the same 2 CPUs as the clients, one engine at a time.

ours     the product's storage: one image space, the items and vectors loaded by spaces.bulk_load (binary COPY,
         then the HNSW index) into a database of its own on the bench server (var/bench-pgdata), as
         bench_million does; POST /api/search/ {"parts": [{"vector": [...]}], "k": 10, "space": "peer"} to gunicorn
         with `manage.py serve`'s configuration (search.runtime.gunicorn_conf, `--workers` workers x 4 threads: what
         bench_million measures its API with). ef_search is the server's SEARCH_HNSW_EF_SEARCH; the service never
         searches narrower than the candidates it reads: ranking without a relevance cutoff (SEARCH_MIN_RELEVANCE
         0, as here), the server's ef_search rows, or k + 1 where that is more.
chroma   chromadb (CHROMA_VERSION, from PyPI) in a virtualenv of its own (var/peers/chroma/venv, made on first use,
         never the project's), run as its own server (`chroma run`); the vectors go in through chromadb's HttpClient
         (a child process in that venv), the queries are POST /api/v2/.../collections/{id}/query
         {"query_embeddings": [[...]], "n_results": 10} with the client's default `include`. ef_search is the
         collection's hnsw ef_search, changed with modify and the server restarted (a running server keeps the
         value it loaded the index with).

For each engine the smallest ef_search of EF_SWEEP whose recall@10 over the API reaches 0.95 (one pass over the
queries, which also warms the server), then `--seconds` of `--clients` clients at that setting: q/s, p50, p99,
errors, recall, and the CPU each side spent per query.

Usage: python bench/bench_peer.py [--n 100000] [--dim 512] [--clients 16] [--seconds 60]
                                  [--engines ours,chroma] [--quick] [--out FILE]
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _vectors  # noqa: E402

_vectors.pin_threads(1)

import argparse  # noqa: E402
import http.client  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from abc import ABC, abstractmethod  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402

import _django  # noqa: E402
from _load import bulk_load, free_port, http_run, pct, start_api  # noqa: E402

K = 10
SPACE = "peer"
EF_SWEEP = [10, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512]
TARGET_RECALL = 0.95
# The sweep must clear the target by this much: a timed run over the same queries under load once came out
# 0.008 below its sweep (relaxed iterative scans under concurrency are not exactly repeatable), which would
# compare the engines below the recall the comparison promises.
RECALL_MARGIN = 0.01
HNSW_M, HNSW_EF_CONSTRUCTION = 16, 64
ENGINES = ("ours", "chroma")
CHROMA_VERSION = "1.5.9"
PEERS = _django.ROOT / "var" / "peers"  # the peers' virtualenvs and data (var/ is ignored by git)
CHROMA_COLLECTIONS = "/api/v2/tenants/default_tenant/databases/default_database/collections"
# Chroma's client and server report usage unless told not to; nothing outside this machine is reached here.
CHROMA_ENV = {"ANONYMIZED_TELEMETRY": "False"}

# Run in Chroma's own venv: the load as a Python user does it (HttpClient, add in the server's largest batches).
CHROMA_LOADER = """
import json, sys, time
import chromadb, numpy as np
port, path, name, m, ef_construction, ef_search = sys.argv[1:]
vectors = np.load(path)
client = chromadb.HttpClient(host="127.0.0.1", port=int(port))
collection = client.create_collection(name, embedding_function=None, configuration={"hnsw": {
    "space": "cosine", "max_neighbors": int(m), "ef_construction": int(ef_construction), "ef_search": int(ef_search)}})
batch = client.get_max_batch_size()
started = time.perf_counter()
for start in range(0, len(vectors), batch):
    stop = min(start + batch, len(vectors))
    collection.add(ids=[str(i) for i in range(start, stop)], embeddings=vectors[start:stop])
added = time.perf_counter() - started
print(json.dumps({"id": str(collection.id), "add_s": added, "count": collection.count(), "batch": batch}))
"""


# --------------------------------------------------------------------------- engines


def process_tree(pid: int) -> list[int]:
    import psutil

    try:
        root = psutil.Process(pid)
        return [root.pid, *(child.pid for child in root.children(recursive=True))]
    except psutil.NoSuchProcess:
        return []


def cpu_by_pid(pids) -> dict[int, float]:
    """CPU seconds (user + system) each process has spent so far."""
    import psutil

    out = {}
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
            out[pid] = times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return out


@dataclass
class Engine(ABC):
    """One system under test: its server is started for an ef_search, answers `bodies` at port/path."""

    name: str
    label: str
    bodies: list = field(default_factory=list)
    path: str = ""
    port: int = 0
    ef: int | None = None

    @abstractmethod
    def start(self, ef: int) -> None:
        ...

    @abstractmethod
    def stop(self) -> None:
        ...

    @abstractmethod
    def parse(self, payload: bytes) -> list[int]:
        """Row indices (into the base vectors) of an answer's hits, best first."""

    def used_ef(self, ef: int) -> int:
        return ef

    @abstractmethod
    def sides(self) -> dict[str, list[int]]:
        """The ids of the processes serving, by part (for the CPU each spends per query)."""


class Ours(Engine):
    def __init__(self, name: str, label: str, queries, index_of: dict, *, workers: int):
        super().__init__(name, label, path="/api/search/")
        self.bodies = [json.dumps({"parts": [{"vector": q}], "k": K, "space": SPACE}) for q in queries]
        self.index_of = index_of
        self.workers = workers
        self.server = None

    def parse(self, payload: bytes) -> list[int]:
        return [self.index_of.get(hit["id"], -1) for hit in json.loads(payload)["results"]]

    def used_ef(self, ef: int) -> int:
        # ranking_batch.VectorScan.knobs: ef_search = max(the server's, the rows the service reads).
        from django.test.utils import override_settings

        from search.engine.query_vectors import QueryPart
        from search.engine.requests import SearchRequest
        from search.engine.search_service import read_depth

        with override_settings(SEARCH_HNSW_EF_SEARCH=ef):
            depth = read_depth(SearchRequest(parts=[QueryPart(vector=[1.0])], k=K))
        return max(ef, min(depth, 1000))

    def start(self, ef: int) -> None:
        from django.db import connection

        self.stop()
        self.port = free_port()
        env = {**os.environ, "SEARCH_HNSW_EF_SEARCH": str(ef), "SEARCH_DB_NAME": connection.settings_dict["NAME"],
               "PYTHONPATH": str(_django.ROOT)}
        self.server = start_api(env, self.port, workers=self.workers)
        self.ef = ef

    def stop(self) -> None:
        if self.server is not None:
            self.server.terminate()
            self.server.wait(timeout=60)
            self.server = None

    def sides(self) -> dict[str, list[int]]:
        return {"web": process_tree(self.server.pid), "database": backends()}

    def statements(self, ef: int) -> int:
        """SQL statements (BEGIN and COMMIT included) one API search sends, run here through Django's test client
        with the server's settings."""
        from django.db import connection
        from django.test import Client
        from django.test.utils import CaptureQueriesContext, override_settings

        client = Client(HTTP_HOST="127.0.0.1")
        with override_settings(SEARCH_HNSW_EF_SEARCH=ef):
            client.post(self.path, self.bodies[0], content_type="application/json")  # caches warm, as in the server
            with CaptureQueriesContext(connection) as captured:
                response = client.post(self.path, self.bodies[1], content_type="application/json")
        return len(captured.captured_queries) if response.status_code == 200 else -1


class Chroma(Engine):
    def __init__(self, venv: Path, data: Path, queries):
        super().__init__("chroma", f"Chroma {CHROMA_VERSION}, `chroma run`")
        self.venv = venv
        self.data = data
        self.bodies = [json.dumps({"query_embeddings": [q], "n_results": K,
                                   "include": ["metadatas", "documents", "distances"]}) for q in queries]
        self.server = None
        self.log = None
        self.collection = None

    def parse(self, payload: bytes) -> list[int]:
        return [int(i) for i in json.loads(payload)["ids"][0]]

    def request(self, method: str, path: str, body=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)
        conn.request(method, path, body=json.dumps(body) if body is not None else None,
                     headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        payload = response.read()
        conn.close()
        if response.status >= 300:
            raise RuntimeError(f"Chroma answered {method} {path} with {response.status}: {payload[:500]!r}")
        return json.loads(payload) if payload else None

    def launch(self) -> None:
        self.port = free_port()
        self.log = open(self.data.parent / "server.log", "a")  # noqa: SIM115 (closed in stop)
        self.server = subprocess.Popen(
            [str(self.venv / "bin" / "chroma"), "run", "--path", str(self.data), "--host", "127.0.0.1",
             "--port", str(self.port)], env={**os.environ, **CHROMA_ENV}, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.server.poll() is not None:
                break
            try:
                self.request("GET", "/api/v2/heartbeat")
                return
            except OSError:
                time.sleep(0.3)
        raise RuntimeError(f"the Chroma server did not come up; see {self.data.parent / 'server.log'}")

    def load(self, base, ef: int) -> dict:
        """Create the collection and add the vectors with chromadb's own client; the seconds of the adds and of
        the first query after them, and the size of its folder."""
        shutil.rmtree(self.data, ignore_errors=True)
        self.data.mkdir(parents=True)
        self.launch()
        import numpy as np

        with tempfile.TemporaryDirectory(prefix="bench-peer-") as scratch:
            array = Path(scratch) / "base.npy"
            np.save(array, base)
            started = time.perf_counter()
            done = subprocess.run([str(self.venv / "bin" / "python"), "-c", CHROMA_LOADER, str(self.port), str(array),
                                   SPACE, str(HNSW_M), str(HNSW_EF_CONSTRUCTION), str(ef)],
                                  env={**os.environ, **CHROMA_ENV}, capture_output=True, text=True)
            total = time.perf_counter() - started
        if done.returncode:
            raise RuntimeError(f"loading Chroma failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
        figures = json.loads(done.stdout.strip().splitlines()[-1])
        self.collection = figures["id"]
        self.path = f"{CHROMA_COLLECTIONS}/{self.collection}/query"
        self.ef = ef
        started = time.perf_counter()
        self.request("POST", self.path, json.loads(self.bodies[0]))
        figures["first_query_s"] = time.perf_counter() - started
        figures["client_s"] = total
        return figures

    def start(self, ef: int) -> None:
        if self.server is None:
            self.launch()
        if ef != self.ef:
            self.request("PUT", f"{CHROMA_COLLECTIONS}/{self.collection}",
                         {"new_configuration": {"hnsw": {"ef_search": int(ef)}}})
            self.stop()
            self.launch()
            self.ef = ef

    def stop(self) -> None:
        if self.server is not None:
            self.server.terminate()
            try:
                self.server.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.server.kill()
                self.server.wait()
            self.server = None
        if self.log is not None:
            self.log.close()
            self.log = None

    def sides(self) -> dict[str, list[int]]:
        return {"server": process_tree(self.server.pid)}


def chroma_venv(peers: Path) -> tuple[Path | None, str]:
    """Chroma's own virtualenv with chromadb==CHROMA_VERSION, made if missing; (None, why) when it cannot be."""
    venv = peers / "chroma" / "venv"
    python = venv / "bin" / "python"

    def installed() -> str:
        return chroma_version(venv) if python.exists() else ""

    if installed() == CHROMA_VERSION:
        return venv, ""
    print(f"making Chroma's virtualenv {venv} (chromadb=={CHROMA_VERSION} from the package index) ...", flush=True)
    try:
        if not python.exists():
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True, text=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                        f"chromadb=={CHROMA_VERSION}"], check=True, capture_output=True, text=True, timeout=1800)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        detail = " ".join((getattr(exc, "stderr", "") or str(exc)).split())
        return None, f"pip could not install chromadb=={CHROMA_VERSION} into {venv}: {detail[-400:]}"
    return (venv, "") if installed() == CHROMA_VERSION else (None, "chromadb did not import after installing")


def chroma_version(venv: Path) -> str:
    found = subprocess.run([str(venv / "bin" / "python"), "-c",
                            "from importlib.metadata import version; print(version('chromadb'))"],
                           capture_output=True, text=True)
    return found.stdout.strip() if found.returncode == 0 else ""


# --------------------------------------------------------------------------- ours: storage and sizes


def backends() -> list[int]:
    """The server processes of the other connections to this database (the API's pool): other benchmarks may use
    the same server at the same time, so not the whole postmaster's tree."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pid FROM pg_stat_activity"
                       " WHERE datname = current_database() AND pid <> pg_backend_pid()")
        return [row[0] for row in cursor.fetchall()]


def load_ours(base) -> tuple[dict, dict, dict]:
    """The vectors into a fresh space through the product's storage; (row index by item id, seconds, bytes)."""
    from django.db import connection

    from search.storage import spaces

    space = spaces.register(SPACE)
    started = time.perf_counter()
    scratch, timings, rebuilt = bulk_load(space, base, collection=SPACE)
    timings["total"] = time.perf_counter() - started
    timings["rebuilt"] = rebuilt
    sizes = {}
    with connection.cursor() as cursor:
        for name, sql in {
            "vectors (search_embedding)": "SELECT pg_table_size('search_embedding')",
            "HNSW index": f"SELECT pg_relation_size('{space.index_name}')",
            "items (search_item) and their indexes": "SELECT pg_total_relation_size('search_item')",
            "other indexes of search_embedding":
                f"SELECT pg_indexes_size('search_embedding') - pg_relation_size('{space.index_name}')",
            "database": "SELECT pg_database_size(current_database())",
        }.items():
            cursor.execute(sql)
            sizes[name] = cursor.fetchone()[0]
    return scratch.index_of, timings, sizes


def folder_bytes(path: Path) -> int:
    return sum(file.stat().st_blocks * 512 for file in path.rglob("*") if file.is_file())


# --------------------------------------------------------------------------- measuring


@dataclass
class Outcome:
    engine: Engine
    sweep: list  # (ef asked, ef used, recall, q/s of the pass)
    ef: int
    recall: float
    requests: int
    errors: int
    seconds: float
    p50: float
    p99: float
    cpu_ms: dict  # side -> CPU milliseconds per request
    statements: int | None  # SQL statements per search (ours)
    load: tuple  # the machine's 1-minute load average when the timed run started and ended

    @property
    def qps(self) -> float:
        return (self.requests - self.errors) / self.seconds


def recall_of(rows, truth) -> float:
    ok = [row for row in rows if row[1] == 200]
    return _vectors.recall([row[3] for row in ok], truth[[row[0] for row in ok]], K) if ok else 0.0


def settle_and_time(engine: Engine, truth, clients: int, seconds: float) -> Outcome:
    """The smallest ef_search of the sweep that reaches the target recall (with a margin), then the timed run
    at it."""
    import psutil

    sweep = []
    try:
        for ef in EF_SWEEP:
            engine.start(ef)
            rows, wall = http_run(engine.port, engine.path, engine.bodies, clients, engine.parse)
            failed = sum(row[1] != 200 for row in rows)
            sweep.append((ef, engine.used_ef(ef), recall_of(rows, truth), len(rows) / wall))
            print(f"{engine.name}: ef_search {ef} (used {engine.used_ef(ef)}): recall@10 {sweep[-1][2]:.3f}, "
                  f"{sweep[-1][3]:,.0f} q/s, {failed} errors", flush=True)
            if failed == len(rows):
                raise RuntimeError(f"{engine.name}: every request failed")
            if sweep[-1][2] >= TARGET_RECALL + RECALL_MARGIN:
                break
        ef = sweep[-1][0]
        client = psutil.Process()
        before = {side: cpu_by_pid(pids) for side, pids in engine.sides().items()}
        client_before = sum(client.cpu_times()[:2])
        load_before = os.getloadavg()[0]
        rows, wall = http_run(engine.port, engine.path, engine.bodies, clients, engine.parse, seconds=seconds)
        load_after = os.getloadavg()[0]
        client_after = sum(client.cpu_times()[:2])
        after = {side: cpu_by_pid(pids) for side, pids in engine.sides().items()}
    finally:
        engine.stop()
    latencies = sorted(row[2] for row in rows)
    errors = sum(row[1] != 200 for row in rows)
    cpu_ms = {"clients": (client_after - client_before) * 1000 / len(rows)}
    for side, spent in after.items():
        cpu_ms[side] = sum(value - before[side].get(pid, 0.0) for pid, value in spent.items()) * 1000 / len(rows)
    statements = engine.statements(ef) if isinstance(engine, Ours) else None
    outcome = Outcome(engine, sweep, ef, recall_of(rows, truth), len(rows), errors, wall, pct(latencies, 50),
                      pct(latencies, 99), cpu_ms, statements, (load_before, load_after))
    print(f"{engine.name}: {outcome.qps:,.1f} q/s, p50 {outcome.p50:.1f} ms, p99 {outcome.p99:.1f} ms, "
          f"recall@10 {outcome.recall:.3f}, {errors} errors of {len(rows)}; CPU ms per query: "
          + ", ".join(f"{side} {value:.2f}" for side, value in cpu_ms.items()), flush=True)
    return outcome


# --------------------------------------------------------------------------- report


def report(args, outcomes: list[Outcome], builds: list, disks: list, versions: str, skipped: str) -> str:
    mib = 2**20
    by_name = {outcome.engine.name: outcome for outcome in outcomes}
    rows = []
    for outcome in outcomes:
        engine = outcome.engine
        used = engine.used_ef(outcome.ef)
        rows.append([engine.label, f"{outcome.ef}" + (f" ({used} used)" if used != outcome.ef else ""),
                     f"{outcome.recall:.3f}", f"{outcome.qps:,.1f}", f"{outcome.p50:.1f}", f"{outcome.p99:.1f}",
                     f"{outcome.errors} of {outcome.requests}"])
    lines = [
        "## Peer: Chroma",
        "",
        f"The same {args.n:,} x {args.dim} clustered unit vectors and {args.queries} held-out raw-vector queries "
        f"served by our REST API and by Chroma as its own server, one after the other on this machine; k = {K}, "
        f"recall@10 against numpy's exact answer; HNSW m {HNSW_M}, ef_construction {HNSW_EF_CONSTRUCTION} for both; "
        f"each at the smallest ef_search whose sweep reached recall@10 >= {TARGET_RECALL + RECALL_MARGIN:g} "
        f"(so that the timed run stays >= {TARGET_RECALL}), then **{args.clients} concurrent "
        f"clients** (threads, one kept-alive HTTP/1.1 connection each, the same JSON bodies for both) for "
        f"{args.seconds:g} s. Ours: gunicorn with `manage.py serve`'s configuration, {args.workers} workers x 4 "
        f"threads (as bench_million measures the API), POST /api/search/; Chroma: `chroma run`, POST "
        f".../collections/{{id}}/query.",
        "",
        f"Machine: {_django.machine()}; {versions}.",
        "",
        _vectors.table(["engine", "ef_search", "recall@10", "q/s", "p50 ms", "p99 ms", "errors"], rows),
        "",
    ]
    chroma = by_name.get("chroma")
    if "ours" in by_name and chroma:
        ours = by_name["ours"]
        lines.append(f"- {ours.engine.label} / Chroma: **{ours.qps / chroma.qps:.2f}x** the q/s (target >= 1.0x: "
                     f"{'met' if ours.qps >= chroma.qps else 'missed'}), p99 {ours.p99:.0f} vs "
                     f"{chroma.p99:.0f} ms.")
    if skipped:
        lines.append(f"- Chroma was not measured: {skipped}")
    cores = os.cpu_count() or 1

    def cost(o: Outcome) -> str:
        total = sum(o.cpu_ms.values())
        parts = ", ".join(f"{side} {value:.1f}" for side, value in o.cpu_ms.items())
        sql = f", {o.statements} SQL statements a search" if o.statements is not None else ""
        return f"{o.engine.label}: {total:.1f} ms a query ({parts}), at most {cores * 1000 / total:,.0f} q/s{sql}"

    if chroma and len(outcomes) > 1:
        lines += ["", f"Why: each engine shares the {cores} cores with its clients and runs out of CPU, not of workers "
                  "or connections, so q/s follows the CPU a query costs, summed over clients and server: "
                  + "; ".join(cost(o) for o in outcomes) + "."]
    sides = list(dict.fromkeys(side for outcome in outcomes for side in outcome.cpu_ms))
    lines += [
        "",
        "CPU per query during the timed runs (ms, user + system, summed over each side's processes: clients are the "
        "load generator's threads, web the gunicorn workers, database the PostgreSQL backends of the API's pool), "
        "and the machine's 1-minute load average as each run started and ended (other work shares these cores):",
        "",
        _vectors.table(["engine", *sides, "total", "load average"],
                       [[o.engine.label, *[f"{o.cpu_ms[side]:.2f}" if side in o.cpu_ms else "-" for side in sides],
                         f"{sum(o.cpu_ms.values()):.2f}", f"{o.load[0]:.1f} -> {o.load[1]:.1f}"] for o in outcomes]),
        "",
        "The ef_search sweeps (one pass over the queries each, which also warms the server):",
        "",
        _vectors.table(["engine", "ef_search", "used", "recall@10", f"q/s ({args.clients} clients)"],
                       [[o.engine.name, ef, used, f"{value:.3f}", f"{qps:,.0f}"]
                        for o in outcomes for ef, used, value, qps in o.sweep]),
        "",
        "Load and size:",
        "",
        _vectors.table(["engine", "load", "seconds", "vectors/s"],
                       [[name, what, f"{seconds:.1f}", f"{args.n / seconds:,.0f}" if what.startswith("end") else ""]
                        for name, what, seconds in builds], left=2),
        "",
        _vectors.table(["engine", "on disk", "MiB"],
                       [[name, what, f"{size / mib:,.1f}"] for name, what, size in disks], left=2),
        "",
        f"Command: `nice -n 10 .venv/bin/python bench/bench_peer.py --n {args.n} --dim {args.dim} --clients "
        f"{args.clients} --seconds {args.seconds:g} --engines {','.join(args.engines)}` (Chroma's virtualenv is made "
        f"under var/peers/chroma on first use).",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=60, help="length of each engine's timed run")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers for ours (x SEARCH_WEB_THREADS)")
    parser.add_argument("--engines", default=",".join(ENGINES), help=f"comma-separated subset of {', '.join(ENGINES)}")
    parser.add_argument("--peers", type=Path, default=PEERS, help="where the peers' virtualenvs and data live")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run for the test suite")
    parser.add_argument("--out", default=None, help="write the fragment here (default docs/benchmarks/peer.md)")
    args = parser.parse_args()
    args.engines = [name.strip() for name in args.engines.split(",") if name.strip()]
    unknown = set(args.engines) - set(ENGINES)
    if unknown or not args.engines:
        parser.error(f"unknown engine(s) {sorted(unknown)}; choose among {', '.join(ENGINES)}")
    if args.quick:
        args.n, args.queries, args.clients, args.seconds = 2000, 50, 2, 3

    skipped = ""
    venv = None
    if "chroma" in args.engines:
        venv, skipped = chroma_venv(args.peers)
        if venv is None:
            if not args.quick:
                sys.exit(f"Chroma cannot be measured: {skipped}")
            print(f"skipping Chroma: {skipped}", flush=True)
            args.engines.remove("chroma")

    os.environ.setdefault("SEARCH_PGDATA", str(_django.ROOT / "var" / "bench-pgdata"))
    os.environ["SEARCH_SPACES_JSON"] = json.dumps(
        {SPACE: {"ENCODER": "encoders.fake.FakeSpace", "OPTIONS": {"dim": args.dim, "modalities": ["image"]}}})
    os.environ["SEARCH_MIN_RELEVANCE"] = "0"  # rank only: every query returns k (relevance is not measured here)
    os.environ["SEARCH_THROTTLE_SEARCH"] = "none"
    os.environ["DJANGO_DB_POOL_MAX_SIZE"] = "8"
    os.environ["SEARCH_HNSW_M"], os.environ["SEARCH_HNSW_EF_CONSTRUCTION"] = str(HNSW_M), str(HNSW_EF_CONSTRUCTION)
    os.environ.setdefault("SEARCH_DB_NAME", "bench_smoke_peer" if args.quick else "bench_peer")
    ours_wanted = [name for name in args.engines if name.startswith("ours")]
    if ours_wanted:
        _django.setup(os.environ["SEARCH_DB_NAME"])

    print(f"generating {args.n:,} x {args.dim} ...", flush=True)
    base, queries = _vectors.clustered(args.n, args.dim, n_queries=args.queries, seed=23)
    truth = _vectors.exact_neighbours(base, queries, K)
    rounded = [[round(float(x), 6) for x in q] for q in queries]

    engines: list[Engine] = []
    builds, disks = [], []
    versions = []
    if ours_wanted:
        index_of, timings, sizes = load_ours(base)
        print(f"ours: loaded in {timings['total']:.1f} s (items {timings['items']:.1f}, vectors "
              f"{timings['vectors']:.1f}, index {timings['index']:.1f})", flush=True)
        vectors = "vectors (binary COPY" + (", index dropped)" if timings["rebuilt"] else ", index live)")
        builds += [("ours", "items (COPY)", timings["items"]),
                   ("ours", vectors, timings["vectors"]),
                   *([("ours", "HNSW index, built after the load", timings["index"])] if timings["rebuilt"] else []),
                   ("ours", "end to end (spaces.bulk_load)", timings["total"])]
        disks += [("ours", name, size) for name, size in sizes.items()]
        versions.append(_vectors.server_versions())
        import django
        import gunicorn

        versions.append(f"Django {django.__version__}, gunicorn {gunicorn.__version__}")
        for name in ours_wanted:
            engines.append(Ours(name, "ours, REST API", rounded, index_of, workers=args.workers))
    chroma = None
    if "chroma" in args.engines:
        data = (args.peers / "chroma" / "data") if not args.quick else \
            Path(tempfile.mkdtemp(prefix="bench-peer-chroma-")) / "data"
        chroma = Chroma(venv, data, rounded)
        versions.append(f"chromadb {chroma_version(venv)}")
        try:
            figures = chroma.load(base, EF_SWEEP[0])
        finally:
            chroma.stop()
        print(f"chroma: added in {figures['add_s']:.1f} s ({figures['count']:,} vectors, batches of "
              f"{figures['batch']}), first query after {figures['first_query_s']:.2f} s", flush=True)
        builds += [("chroma", f"add with chromadb's HttpClient (batches of {figures['batch']:,})", figures["add_s"]),
                   ("chroma", "first query after the adds", figures["first_query_s"]),
                   ("chroma", "end to end (client process, adds, first query)",
                    figures["client_s"] + figures["first_query_s"])]
        engines.append(chroma)

    outcomes = [settle_and_time(engine, truth, args.clients, args.seconds) for engine in engines]
    if chroma is not None:
        disks.append(("chroma", "the persistence folder (SQLite and HNSW files)", folder_bytes(chroma.data)))
        if args.quick:
            shutil.rmtree(chroma.data.parent, ignore_errors=True)
    text = report(args, outcomes, builds, disks, "; ".join(versions), skipped)
    print(text)
    if args.out or not args.quick:
        print(f"wrote {_django.write_fragment('peer.md', text, args.out)}")


if __name__ == "__main__":
    main()
