"""Vector storage: half precision by default, full precision per space, inline rows, the migration
that converts existing spaces, and the embedded server's tuning."""

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

import encoders
from search.engine.query_vectors import QueryPart
from search.engine.rankers import vector_ranking
from search.engine.requests import Filters, SearchRequest
from search.engine.search_service import search
from search.ingest.item_vectors import Vectors, write_vectors
from search.models import Embedding, EmbeddingSpace, Item, Precision
from search.storage import embedded_server, knn, spaces
from tests.conftest import ROOT

pytestmark = pytest.mark.django_db
DIM = 32


@pytest.fixture
def full_and_half(settings):
    configured = {
        "half": {"ENCODER": "encoders.fake.FakeSpace", "OPTIONS": {"dim": DIM}},
        "full": {"ENCODER": "encoders.fake.FakeSpace", "OPTIONS": {"dim": DIM}, "PRECISION": "full"},
    }
    original = settings.SEARCH_SPACES
    settings.SEARCH_SPACES, settings.SEARCH_DEFAULT_SPACE = configured, "half"
    encoders.configure(configured)
    yield spaces.register("half"), spaces.register("full")
    encoders.configure(original)


def unit_vectors(n, seed=0):
    vectors = np.random.default_rng(seed).normal(size=(n, DIM)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def load(space, vectors):
    items = Item.objects.bulk_create(
        Item(modality="image", title=f"{space.name}{i}", sha256=f"{space.name}-{i:06d}".ljust(64, "0"),
             embedding_status="done") for i in range(len(vectors)))
    write_vectors(space, [(item.pk, Vectors(v)) for item, v in zip(items, vectors, strict=True)])
    return items


def index_definition(space):
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexdef FROM pg_indexes WHERE indexname = %s", [space.index_name])
        return cursor.fetchone()[0]


def test_columns_are_stored_inline():
    with connection.cursor() as cursor:
        cursor.execute("SELECT attname, format_type(atttypid, atttypmod), attstorage FROM pg_attribute"
                       " WHERE attrelid = 'search_embedding'::regclass AND attname IN ('vector', 'vector_full')")
        columns = {name: (kind, storage) for name, kind, storage in cursor.fetchall()}
    # 'm' = MAIN: kept in the row; never moved out of line unless a row would not fit a page.
    assert columns == {"vector": ("halfvec", "m"), "vector_full": ("vector", "m")}


def test_each_space_is_indexed_at_its_precision(full_and_half):
    half, full = full_and_half
    assert (half.precision, full.precision) == (Precision.HALF, Precision.FULL)
    assert f"(vector)::halfvec({DIM})) halfvec_cosine_ops" in index_definition(half)
    assert f"(vector_full)::vector({DIM})) vector_cosine_ops" in index_definition(full)


def test_a_full_precision_space_ranks_by_exact_float32_distances(full_and_half):
    half, full = full_and_half
    vectors = unit_vectors(50)
    for space in (half, full):
        load(space, vectors)
    query = unit_vectors(1, seed=9)[0]
    expected = 1.0 - vectors.astype(np.float64) @ query
    for space, tolerance in ((full, 1e-6), (half, 2e-3)):
        ranking, _ = vector_ranking(space, query, Filters(), 50, exact=True)
        got = np.array([d for _, d in ranking])
        assert np.allclose(np.sort(got), np.sort(expected), atol=tolerance), space.name
    stored = Embedding.objects.filter(space=full).values_list("vector", "vector_full").first()
    assert stored[0].dtype == np.float32 and np.allclose(stored[0], stored[1], atol=1e-3)


def test_the_service_searches_either_precision(full_and_half):
    half, full = full_and_half
    vectors = unit_vectors(30, seed=3)
    for space in (half, full):
        load(space, vectors)
        page = search(SearchRequest(parts=[QueryPart(vector=list(vectors[7]))], space=space.name, k=3,
                                    min_relevance=0.0))
        assert page.hits[0].item.title == f"{space.name}7"


def test_changing_a_space_precision_converts_its_vectors(full_and_half, settings):
    half, _ = full_and_half
    load(half, unit_vectors(20, seed=4))
    settings.SEARCH_SPACES = {**settings.SEARCH_SPACES, "half": {**settings.SEARCH_SPACES["half"], "PRECISION": "full"}}
    converted = spaces.register("half")
    assert converted.precision == Precision.FULL
    assert Embedding.objects.filter(space=converted, vector_full__isnull=True).count() == 0
    assert "vector_cosine_ops" in index_definition(converted)
    settings.SEARCH_SPACES = {**settings.SEARCH_SPACES, "half": {**settings.SEARCH_SPACES["half"], "PRECISION": "half"}}
    back = spaces.register("half")
    assert back.precision == Precision.HALF and "halfvec_cosine_ops" in index_definition(back)
    assert Embedding.objects.filter(space=back, vector_full__isnull=False).count() == 0


def test_a_bulk_load_builds_the_index_after_the_rows(full_and_half, monkeypatch):
    half, _ = full_and_half
    monkeypatch.setattr(spaces, "BULK_LOAD_MIN_ROWS", 10)
    with spaces.bulk_load(half, rows=40) as rebuilt:
        assert rebuilt and not spaces.index_exists(half)
        load(half, unit_vectors(40, seed=5))
    assert spaces.index_exists(half)
    with spaces.bulk_load(half, rows=10) as rebuilt:  # a small addition to a larger space keeps the index live
        assert not rebuilt and spaces.index_exists(half)


def test_nothing_builds_the_index_in_the_middle_of_a_bulk_load(full_and_half, monkeypatch):
    half, _ = full_and_half
    monkeypatch.setattr(spaces, "BULK_LOAD_MIN_ROWS", 10)
    with spaces.bulk_load(half, rows=40):
        load(half, unit_vectors(40, seed=6))
        spaces.register("half")  # a search arriving during the load
        assert not spaces.index_exists(half)
    assert spaces.index_exists(half)


def test_the_index_build_gets_the_memory_its_graph_needs():
    half = EmbeddingSpace(name="h", dimension=512, precision=Precision.HALF)
    full = EmbeddingSpace(name="f", dimension=512, precision=Precision.FULL)
    assert knn.bytes_per_vector(half) == 8 + 2 * 512 and knn.bytes_per_vector(full) == 8 + 4 * 512
    # a million 512-d halfvecs at m 16: the vectors (1 GB) and their neighbour lists
    assert 1200 < spaces.build_memory_mb(half, 1_000_000) < 2500 < spaces.build_memory_mb(full, 1_000_000)


@pytest.mark.django_db(transaction=True)
def test_the_migration_converts_existing_spaces():
    executor = MigrationExecutor(connection)
    executor.migrate([("search", "0004_jobs")])
    try:
        with connection.cursor() as cursor:
            cursor.execute("INSERT INTO search_item (modality, title, text, media, preview, mime_type, byte_size,"
                           " sha256, tags, collection, metadata, hidden, pinned, embedding_status, embedding_error,"
                           " created_at, updated_at) VALUES ('text', 'old', 'old', '', '', '', 0, %s, '{}', '',"
                           " '{}', false, false, 'done', '', now(), now()) RETURNING id", ["o" * 64])
            item_id = cursor.fetchone()[0]
            cursor.execute("INSERT INTO search_embeddingspace (name, identity, dimension, metric, modalities,"
                           " calibration, created_at) VALUES ('old', 'x', 3, 'cosine', '{text}', '{}', now())"
                           " RETURNING id")
            space_id = cursor.fetchone()[0]
            cursor.execute("INSERT INTO search_embedding (item_id, space_id, vector) VALUES (%s, %s, '[0.6,0.8,0]')",
                           [item_id, space_id])
            cursor.execute(f"CREATE INDEX embedding_hnsw_space_{space_id} ON search_embedding USING hnsw"
                           f" ((vector::vector(3)) vector_cosine_ops) WHERE space_id = {space_id}")
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes("search"))
    space = EmbeddingSpace.objects.get(name="old")
    assert space.precision == Precision.HALF
    assert not spaces.index_exists(space)  # the old float32 index is gone; registering builds the new one
    spaces.ensure_index(space)
    assert "halfvec_cosine_ops" in index_definition(space)
    assert np.allclose(Embedding.objects.get(space=space).vector, [0.6, 0.8, 0], atol=1e-3)


def test_server_settings_follow_the_machine_and_the_overrides():
    derived = embedded_server.server_settings(memory=24 * 2**30, cores=2)
    assert derived["shared_buffers"] == "6144MB" and derived["effective_cache_size"] == "18432MB"
    assert derived["maintenance_work_mem"] == "3072MB" and derived["max_parallel_maintenance_workers"] == "1"
    small = embedded_server.server_settings(memory=512 * 2**20, cores=1)
    assert small["shared_buffers"] == "128MB" and small["max_parallel_maintenance_workers"] == "0"
    tuned = embedded_server.server_settings({"shared_buffers": "1GB", "maintenance_work_mem": ""})
    assert tuned["shared_buffers"] == "1GB"


@pytest.mark.slow
def test_a_fresh_embedded_server_runs_with_the_tuning():
    # Not under pytest's tmp_path: another pytest run starting resets /tmp/pytest-of-<user> to 0700, and the
    # server (running as pgserver's own user when the tests run as root) could no longer reach its folder.
    tmp_path = Path(tempfile.mkdtemp(prefix="tune", dir="/tmp"))
    code = ("import django, os; os.environ['DJANGO_SETTINGS_MODULE'] = 'search.settings'; django.setup()\n"
            "from django.db import connection\n"
            "with connection.cursor() as c:\n"
            "    for name in ('shared_buffers', 'maintenance_work_mem', 'max_parallel_maintenance_workers'):\n"
            "        c.execute('SHOW ' + name); print(name, c.fetchone()[0])\n")
    env = {**os.environ, "SEARCH_VAR_DIR": str(tmp_path / "var"), "SEARCH_PGDATA": str(tmp_path / "var" / "pgdata"),
           "SEARCH_PG_MAINTENANCE_WORK_MEM": "200MB", "DJANGO_DB_POOL": "0",
           "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    try:
        out = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True,
                             timeout=120, check=True).stdout
    finally:
        embedded_server.stop(tmp_path / "var" / "pgdata")
        shutil.rmtree(tmp_path, ignore_errors=True)
    shown = dict(line.split(" ", 1) for line in out.strip().splitlines())
    assert shown["maintenance_work_mem"] == "200MB"
    derived = embedded_server.server_settings()
    assert shown["shared_buffers"] == derived["shared_buffers"]
    assert shown["max_parallel_maintenance_workers"] == derived["max_parallel_maintenance_workers"]
