"""Shared by the vector benchmarks (ann, filtered, search): clustered synthetic vectors and their exact
neighbours, scratch spaces in the product's own tables, the product's k-NN SQL, and timed query loops.

Import it after `_django.setup()` (it uses the product's models), and import this module's `pin_threads`
first thing, before numpy, so every client computes on one core.
"""

import hashlib
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field


def pin_threads(threads: int = 1) -> None:
    """One BLAS/OpenMP thread per client (set before numpy or faiss are imported)."""
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(threads)


# --------------------------------------------------------------------------- data


def clustered(n: int, dim: int, *, n_queries: int, seed: int = 0, latent: int = 32):
    """Unit vectors from a Gaussian mixture in a `latent`-dimensional subspace, projected to `dim`, plus noise.

    Real embeddings have a low intrinsic dimension and cluster by topic; uniform random vectors in 512
    dimensions have neither and make every index look worse than it is in use. Queries come from the same
    mixture but are not in the base set.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    n_clusters = max(8, round(n**0.5 / 2))
    centres = rng.normal(0, 2.0, (n_clusters, latent))
    spreads = rng.uniform(0.6, 1.4, n_clusters)
    projection = rng.normal(0, 1 / latent**0.5, (latent, dim))

    def draw(count: int) -> np.ndarray:
        out = np.empty((count, dim), dtype=np.float32)
        for start in range(0, count, 50_000):
            size = min(50_000, count - start)
            which = rng.integers(n_clusters, size=size)
            points = centres[which] + rng.normal(0, 1, (size, latent)) * spreads[which, None]
            # Noise off the subspace at 30% of the signal's per-dimension spread (centres 2.0, points ~1.0).
            block = points @ projection + rng.normal(0, 0.3 * (2.0**2 + 1.0) ** 0.5, (size, dim))
            out[start : start + size] = block / np.linalg.norm(block, axis=1, keepdims=True)
        return out

    return draw(n), draw(n_queries)


def exact_neighbours(base, queries, k: int, mask=None):
    """Row indices of each query's k nearest base vectors by cosine (inner product of unit vectors), best first."""
    import numpy as np

    candidates = np.arange(len(base)) if mask is None else np.flatnonzero(mask)
    subset = base[candidates]
    k = min(k, len(candidates))
    out = np.empty((len(queries), k), dtype=np.int64)
    for start in range(0, len(queries), 256):
        sims = queries[start : start + 256] @ subset.T
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        order = np.take_along_axis(sims, top, axis=1).argsort(axis=1)[:, ::-1]
        out[start : start + 256] = candidates[np.take_along_axis(top, order, axis=1)]
    return out


def recall(found: Sequence[Sequence[int]], truth, k: int) -> float:
    """Mean share of each query's true top k that was found in its first k results."""
    total = 0.0
    for row, wanted in zip(found, truth, strict=True):
        wanted = set(int(x) for x in wanted[:k])
        total += len(wanted.intersection(int(x) for x in list(row)[:k])) / len(wanted) if wanted else 1.0
    return total / len(truth)


def literal(vector) -> str:
    """The text form the service sends (search.storage.knn.vector_literal)."""
    from search.storage.knn import vector_literal

    return vector_literal(vector)


# --------------------------------------------------------------------------- the product's tables


MIME = {"image": "image/png", "audio": "audio/wav", "text": "text/plain"}


@dataclass
class Scratch:
    """Synthetic items and vectors in a scratch space of the product's own tables."""

    space: object  # search.models.EmbeddingSpace
    collection: str
    item_ids: object = None  # numpy array: row index -> item id
    index_of: dict = field(default_factory=dict)  # item id -> row index

    def rows(self, item_ids) -> list[int]:
        return [self.index_of[i] for i in item_ids]


def scratch_space(name: str, dim: int, precision: str = "half"):
    """A fresh EmbeddingSpace row for synthetic vectors (anything left by an earlier run is removed)."""
    from search.models import EmbeddingSpace

    drop_scratch(name)
    return EmbeddingSpace.objects.create(
        name=name, identity=f"bench:synthetic:{dim}", dimension=dim, modalities=["image"], precision=precision
    )


def drop_scratch(name: str) -> None:
    """Delete a scratch space, its index and vectors, and its items (those in the collection of the same name)."""
    from django.db import connection

    from search.models import EmbeddingSpace
    from search.storage import spaces

    space = EmbeddingSpace.objects.filter(name=name).first()
    if space is not None:
        spaces.drop_index(space)
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM search_embedding WHERE space_id = %s", [space.pk])
            cursor.execute("DELETE FROM search_embeddingspace WHERE id = %s", [space.pk])
    drop_items(name)


def drop_items(collection: str, space=None) -> None:
    """Delete the synthetic items of a collection and their vectors (raw SQL: an ORM cascade over 100k rows crawls),
    and vacuum, so the next benchmark finds the tables as it would without this one.

    With `space` (a real space the items were added to), its index is rebuilt over what is left: vacuuming 100k
    deleted vectors out of an HNSW graph takes longer than building the graph again, and until then every insert
    into the space walks the dead part of the graph.
    """
    from django.db import connection

    from search.storage import spaces

    if space is not None:
        spaces.drop_index(space)
    with connection.cursor() as cursor:
        cursor.execute(
            "DELETE FROM search_embedding WHERE item_id IN (SELECT id FROM search_item WHERE collection = %s)",
            [collection],
        )
        cursor.execute("DELETE FROM search_item WHERE collection = %s", [collection])
        cursor.execute("VACUUM (ANALYZE) search_embedding, search_item")
    if space is not None:
        spaces.ensure_index(space)


def load_items(vectors, *, collection: str, tags: Callable[[int], list[str]] | None = None,
               modality: Callable[[int], str] | None = None) -> Scratch:
    """Store one synthetic item per vector (COPY), in one transaction; the vectors are left to the caller."""
    import numpy as np
    from django.db import connection, transaction

    prefix = hashlib.sha256(collection.encode()).hexdigest()[:16]
    columns = (
        "modality, title, text, media, preview, mime_type, byte_size, sha256, tags, collection, metadata, "
        "hidden, pinned, embedding_status, embedding_error, created_at, updated_at"
    )
    with transaction.atomic():
        connection.ensure_connection()
        with connection.cursor() as cursor:
            with cursor.cursor.copy(f"COPY search_item ({columns}) FROM STDIN") as copy:
                for i in range(len(vectors)):
                    copy.write_row(
                        [
                            kind := (modality(i) if modality else "image"),
                            f"synthetic {i}",
                            "",
                            "",
                            "",
                            MIME[kind],
                            0,
                            f"{prefix}{i:048x}",
                            tags(i) if tags else [],
                            collection,
                            "{}",
                            False,
                            False,
                            "done",
                            "",
                            "2024-01-01T00:00:00Z",
                            "2024-01-01T00:00:00Z",
                        ]
                    )
            cursor.execute("SELECT id FROM search_item WHERE collection = %s ORDER BY id", [collection])
            ids = np.array([row[0] for row in cursor.fetchall()], dtype=np.int64)
    assert len(ids) == len(vectors)
    return Scratch(space=None, collection=collection, item_ids=ids, index_of={int(i): n for n, i in enumerate(ids)})


def load(space, vectors, *, collection: str, tags: Callable[[int], list[str]] | None = None,
         modality: Callable[[int], str] | None = None) -> Scratch:
    """Store one item per vector (COPY) and its vector (the product's binary COPY,
    search.ingest.item_vectors.write_vectors)."""
    from django.db import connection, transaction

    from search.ingest.item_vectors import Vectors, write_vectors

    scratch = load_items(vectors, collection=collection, tags=tags, modality=modality)
    scratch.space = space
    with transaction.atomic():
        write_vectors(space, ((int(item_id), Vectors(vector))
                              for item_id, vector in zip(scratch.item_ids, vectors, strict=True)))
    with connection.cursor() as cursor:
        # As autovacuum would leave them in use: hint bits set, visibility map and statistics up to date.
        cursor.execute("VACUUM (ANALYZE) search_item, search_embedding")
    return scratch


def build_index(space, *, workers: int, vectors: int) -> tuple[float, int, list[str]]:
    """Build the space's HNSW index the product's way (spaces.ensure_index): seconds taken, size in bytes, and
    the server's notices: whether it built serially or in parallel, and pgvector's when the graph outgrew
    maintenance_work_mem and the build went on on disk.

    Parallel build: `workers` maintenance workers besides the leader, and enough maintenance_work_mem for the
    whole graph in memory.
    """
    from django.db import connection

    from search.storage import spaces

    spaces.drop_index(space)
    memory_mb = max(256, int(vectors * (space.dimension * 4 + 600) * 2 / 2**20) + 64)
    notices: list[str] = []
    connection.ensure_connection()
    raw = connection.connection

    def keep(diagnostic) -> None:
        message = diagnostic.message_primary or ""
        if diagnostic.severity_nonlocalized != "DEBUG" or message.startswith("building index"):
            notices.append(message)

    raw.add_notice_handler(keep)
    try:
        with connection.cursor() as cursor:
            cursor.execute(f"SET maintenance_work_mem = '{memory_mb}MB'")
            cursor.execute(f"SET max_parallel_maintenance_workers = {int(workers)}")
            # A space that is a small part of the shared table looks small to the planner, and a
            # heap under min_parallel_table_scan_size (8MB) is indexed serially whatever the worker setting.
            cursor.execute("SET min_parallel_table_scan_size = 0")
            # DEBUG1 makes the server say whether it built serially or with how many workers.
            cursor.execute("SET client_min_messages = debug1")
            started = time.perf_counter()
            spaces.ensure_index(space)
            seconds = time.perf_counter() - started
            for name in ("maintenance_work_mem", "max_parallel_maintenance_workers", "min_parallel_table_scan_size",
                         "client_min_messages"):
                cursor.execute(f"RESET {name}")
            cursor.execute("SELECT pg_relation_size(%s::regclass)", [space.index_name])
            size = cursor.fetchone()[0]
    finally:
        raw.remove_notice_handler(keep)
    return seconds, size, notices


def shared_buffers() -> str:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW shared_buffers")
        return cursor.fetchone()[0]


@dataclass
class ProductSQL:
    """The exact statement the search service sends for one k-NN query, with its vector swapped per query."""

    sql: str
    params: list
    vector_slots: list[int]

    def args(self, vector_literal: str) -> list:
        params = list(self.params)
        for slot in self.vector_slots:
            params[slot] = vector_literal
        return params


def capture(run: Callable[[], object]) -> list[tuple[str, list]]:
    """Every statement, with its parameters, that Django sends while run() runs."""
    from django.db import connection

    captured = []

    def spy(execute, sql, params, many, context):
        captured.append((sql, list(params or [])))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(spy):
        run()
    return captured


def statement_kind(sql: str) -> str:
    """What a statement of the search service is for (see searching.vector_ranking and search)."""
    if "MATERIALIZED" in sql:
        # Every ranking and the candidates' fields in one statement (search.engine.ranking_batch), with the index
        # knobs in the same message (knn.search_params_prefix).
        return "k-NN"
    if sql.startswith("SELECT count(*)"):
        return "count of the filtered rows"
    if "set_config" in sql:
        return "SET LOCAL of the index knobs"
    if "search_embeddingspace" in sql or "pg_indexes" in sql:
        return "looking up the space (spaces.register)"
    if sql.startswith("SELECT avg(") or "FILTER (WHERE e.segment_start IS NULL)" in sql:
        return "the space's statistics (kept for a minute)"
    if "DISTINCT ON (item_id)" in sql:
        return "audio moments"
    if 'WHERE ("search_item"."pinned"' in sql:
        return "pinned check"
    if "search_item" in sql:
        return "loading the hits"
    return "other"


def without_knobs(sql: str, params: list) -> tuple[str, list]:
    """The k-NN statement alone: the service sends its HNSW knobs in the same message (knn.search_params_prefix),
    and a benchmark sets its own."""
    from search.storage import knn

    prefix, knobs = knn.search_params_prefix(ef_search=1)
    return (sql[len(prefix):], list(params)[len(knobs):]) if sql.startswith(prefix) else (sql, params)


def product_sql(space, vector, filters=None, *, limit: int = 10, exact: bool = False) -> ProductSQL:
    """Capture the k-NN statement of searching.vector_ranking (HNSW or exact) instead of restating it here."""
    from django.test.utils import override_settings

    from search.engine.rankers import vector_ranking
    from search.engine.requests import Filters

    # SEARCH_EXACT_BELOW=0: take the path asked for, not the service's own choice for small filters.
    with override_settings(SEARCH_EXACT_BELOW=0):
        statements = capture(lambda: vector_ranking(space, vector, filters or Filters(), limit, exact=exact))
    [(sql, params)] = [without_knobs(sql, params) for sql, params in statements if "MATERIALIZED" in sql]
    text = literal(vector)
    # The statement answers every ranking of a search at once (search.engine.ranking_batch: a row per candidate,
    # tagged with its scan, in no order); a benchmark reads one ranking's item ids, best first.
    sql = f"SELECT item_id FROM ({sql}) AS product WHERE scan >= 0 ORDER BY scan, score, item_id"
    return ProductSQL(sql, params, [i for i, p in enumerate(params) if p == text])


def precheck_sql(space, vector, filters) -> tuple[str, list] | None:
    """The row estimate vector_ranking asks the planner for on a filtered query (then keeps it for a while), to
    choose an exact scan for a selective filter."""
    from search.engine import rankers
    from search.engine.rankers import vector_ranking

    rankers.clear_centroids()  # the estimate is kept per filter: ask it again
    statements = capture(lambda: vector_ranking(space, vector, filters, 10))
    counts = [(sql, params) for sql, params in statements if sql.startswith("EXPLAIN")]
    return counts[0] if counts else None


def connect(client_binding: bool = True):
    """A psycopg connection to the bench database; client-side binding by default, as Django's own cursors use."""
    import psycopg
    from django.db import connection

    params = connection.get_connection_params()
    keep = {key: params[key] for key in ("dbname", "user", "host", "port", "password") if params.get(key)}
    if client_binding:
        keep["cursor_factory"] = psycopg.ClientCursor
    return psycopg.connect(**keep, autocommit=True)


# --------------------------------------------------------------------------- timing


@dataclass
class Run:
    results: list  # per query, in query order
    latencies_ms: list[float]
    seconds: float

    @property
    def qps(self) -> float:
        return len(self.results) / self.seconds

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies_ms)

    @property
    def p99(self) -> float:
        return self.percentile(99)


def run_clients(make_client: Callable[[], Callable], inputs: Sequence, clients: int = 1, warmup: int = 5) -> Run:
    """Answer every input with `clients` threads, each with its own client from make_client() (a function of one
    input). Queries are dealt round-robin; the clock runs from a common start to the last answer."""
    workers = [make_client() for _ in range(clients)]
    for ask in workers:
        for item in inputs[:warmup]:
            ask(item)
    results: list = [None] * len(inputs)
    latencies: list = [0.0] * len(inputs)
    barrier = threading.Barrier(clients + 1)
    errors = []

    def work(number: int, ask: Callable) -> None:
        barrier.wait()
        try:
            for position in range(number, len(inputs), clients):
                started = time.perf_counter()
                results[position] = ask(inputs[position])
                latencies[position] = (time.perf_counter() - started) * 1000
        except BaseException as exc:  # re-raised in the caller
            errors.append(exc)
        finally:
            if "django.db" in sys.modules:  # a thread's Django connection goes back to the pool when it ends
                sys.modules["django.db"].connections.close_all()

    threads = [threading.Thread(target=work, args=(n, ask)) for n, ask in enumerate(workers)]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    if errors:
        raise errors[0]
    return Run(results, latencies, seconds)


def round_trip_ms(samples: int = 200) -> float:
    """Median time of `SELECT 1` on a fresh psycopg connection: the floor under any one SQL query."""
    with connect() as conn:
        cursor = conn.cursor()
        times = []
        for _ in range(samples):
            started = time.perf_counter()
            cursor.execute("SELECT 1")
            cursor.fetchall()
            times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def server_versions() -> str:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        postgres = cursor.fetchone()[0].split()[0]
        cursor.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        pgvector = cursor.fetchone()[0]
        cursor.execute("SHOW shared_buffers")
        buffers = cursor.fetchone()[0]
    return f"PostgreSQL {postgres}, pgvector {pgvector}, shared_buffers {buffers}"


def table(header: list[str], rows: list[list], left: int = 1) -> str:
    """A Markdown table; the first `left` columns left-aligned (labels), the others right-aligned (figures)."""
    align = ["---"] * left + ["---:"] * (len(header) - left)
    out = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    out += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(out)
