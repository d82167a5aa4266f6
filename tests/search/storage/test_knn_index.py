"""Each space's k-NN query is answered by its HNSW index, not a sequential scan."""

import numpy as np
import pytest
from django.db import connection, transaction

from search.engine import rankers
from search.models import Embedding, EmbeddingSpace, Item
from search.storage import knn, spaces

pytestmark = pytest.mark.django_db

DIM = 24


def make_space(name="knn-test", dim=DIM) -> EmbeddingSpace:
    space = EmbeddingSpace.objects.create(
        name=name, identity=f"test:{name}", dimension=dim, modalities=["text", "image"]
    )
    spaces.ensure_index(space)
    return space


def fill(space: EmbeddingSpace, n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(n, space.dimension)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    items = Item.objects.bulk_create(
        Item(modality="text", title=f"t{i}", text=f"text {i}", sha256=f"{space.pk:04d}{i:060d}") for i in range(n)
    )
    Embedding.objects.bulk_create(
        Embedding(item=item, space=space, vector=vec) for item, vec in zip(items, vectors, strict=True)
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE search_embedding")
    return vectors


def knn_queryset(space, query, k=10):
    return (
        Embedding.objects.filter(space=space, segment_start__isnull=True)
        .annotate(distance=knn.cosine_distance(space, query))
        .order_by("distance")[:k]
    )


def test_migrate_builds_an_hnsw_index_per_space():
    space = make_space()
    assert spaces.index_exists(space)
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexdef FROM pg_indexes WHERE indexname = %s", [space.index_name])
        definition = cursor.fetchone()[0]
    assert "USING hnsw" in definition
    # half precision by default (tests/search/storage/test_storage.py covers full precision)
    assert f"halfvec({DIM})" in definition and "halfvec_cosine_ops" in definition
    assert "m='16'" in definition.replace(" ", "") or "m = '16'" in definition


def test_knn_query_uses_the_space_index():
    # Below a few thousand rows the planner rightly prefers an exact scan; at 10k it must use the index.
    space = make_space()
    vectors = fill(space, 10_000)
    with transaction.atomic():
        knn.set_local_search_params(ef_search=100)
        plan = knn_queryset(space, vectors[0]).explain()
    assert space.index_name in plan, plan
    assert "Seq Scan" not in plan, plan


def test_knn_results_match_exact_search():
    space = make_space()
    vectors = fill(space, 1500, seed=1)
    query = vectors[42]
    with transaction.atomic():
        knn.set_local_search_params(ef_search=100)
        hits = list(knn_queryset(space, query).values_list("item__title", "distance"))
    exact = np.argsort(-(vectors @ query))[:10]
    assert hits[0][0] == "t42" and hits[0][1] == pytest.approx(0.0, abs=1e-5)
    assert len({title for title, _ in hits} & {f"t{i}" for i in exact}) >= 9


def test_two_spaces_of_different_dimensions_share_the_table():
    small, large = make_space("small", 8), make_space("large", 40)
    fill(small, 50, seed=2)
    fill(large, 50, seed=3)
    query = np.ones(8, dtype=np.float32) / np.sqrt(8)
    with transaction.atomic():
        knn.set_local_search_params(ef_search=40)
        hits = list(knn_queryset(small, query, k=5))
    assert len(hits) == 5 and all(hit.space_id == small.pk for hit in hits)


@pytest.mark.django_db(transaction=True)
def test_set_local_outside_a_transaction_is_refused():
    with pytest.raises(RuntimeError, match="transaction.atomic"):
        knn.set_local_search_params(ef_search=10)


@pytest.mark.django_db(transaction=True)
def test_search_knobs_sent_with_a_query_hold_for_it_and_end_with_it():
    prefix, params = knn.search_params_prefix(ef_search=123, max_scan_tuples=45678)
    with connection.cursor() as cursor:
        cursor.execute(prefix + "SELECT current_setting('hnsw.ef_search'), current_setting('hnsw.max_scan_tuples')",
                       params)
        cursor.nextset()
        assert cursor.fetchall() == [("123", "45678")]
        cursor.execute("SELECT current_setting('hnsw.ef_search')")
        assert cursor.fetchone()[0] != "123"


def test_a_search_over_passages_uses_the_space_index_too():
    """Passages of long texts are in the space's index (its predicate: item vectors or passages), so ranking
    texts by their best passage is an index scan, not a scan of every vector."""
    pass
    from search.engine.requests import Filters

    space = make_space()
    vectors = fill(space, 10_000)
    first = Item.objects.order_by("id").first()
    Embedding.objects.bulk_create(
        Embedding(item=first, space=space, vector=vectors[i], segment_start=10.0 * i, segment_end=10.0 * i + 9,
                  passage=True) for i in range(1, 40))
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE search_embedding")
    rankers.clear_centroids()
    statements = []

    def capture(execute, sql, params, many, context):
        statements.append((sql, params))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(capture):
        ranking, exact = rankers.vector_ranking(space, vectors[7], Filters(), 10)
    assert not exact and ranking[0][0] in (first.pk, Item.objects.get(title="t7").pk)
    sql, params = next((sql, params) for sql, params in statements if "MATERIALIZED" in sql)
    assert "passage" in sql
    prefix, knobs = knn.search_params_prefix(ef_search=100)  # sent with the query: explain the query alone
    assert sql.startswith(prefix)
    sql, params = sql[len(prefix):], params[len(knobs):]
    with transaction.atomic(), connection.cursor() as cursor:
        knn.set_local_search_params(ef_search=100)
        cursor.execute("EXPLAIN " + sql, params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert space.index_name in plan, plan
