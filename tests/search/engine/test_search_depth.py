"""How deep a search reads follows what it needs (issue 28): a vector search without a relevance cutoff reads the
index's ef_search rows, or the pages up to the one asked for (and one more result, for "is there a next page") where
that is more; with a cutoff the relevant depth. So a search at k = 10 and ef_search 40 does not pay for a hundred."""

import numpy as np
import pytest
from django.db import connection

from search.engine.query_vectors import QueryPart
from search.engine.requests import SearchRequest
from search.engine.search_service import search
from search.models import Embedding, Item
from search.storage import spaces

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fake_spaces")]
DIM = 32
ITEMS = 400


@pytest.fixture
def stored(settings):
    """400 pictures with random vectors, searched through the HNSW index (no exact scan at this size)."""
    settings.SEARCH_EXACT_BELOW = 0
    settings.SEARCH_HNSW_EF_SEARCH = 10  # the server's search width, below what the pages need
    space = spaces.register("fake")
    rng = np.random.default_rng(7)
    vectors = rng.normal(size=(ITEMS, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    items = Item.objects.bulk_create(Item(modality="image", title=f"p{n}", sha256=f"{n:064d}",
                                          embedding_status="done") for n in range(ITEMS))
    Embedding.objects.bulk_create(Embedding(item=item, space=space, vector=vector)
                                  for item, vector in zip(items, vectors, strict=True))
    return [item.pk for item in items], vectors


def searched(query, **options):
    """The page, and the ef_search and row limit of the statement that ranked it."""
    sent = []

    def record(execute, sql, params, many, context):
        if "hnsw.ef_search" in sql and "<=>" in sql:
            sent.append(list(params))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        page = search(SearchRequest(parts=[QueryPart(vector=[float(x) for x in query])], space="fake", **options))
    assert len(sent) == 1, "one statement ranks the search"
    return page, int(sent[0][0]), sent[0][-1]


def test_without_a_cutoff_a_search_reads_its_pages_and_no_deeper(stored):
    ids, vectors = stored
    query = vectors[3] + 0.3 * vectors[5]
    exact = [ids[n] for n in np.argsort(-(vectors @ query))]
    shown = []
    for number in (1, 2, 3):
        page, ef, limit = searched(query, k=10, page=number, min_relevance=0.0)
        assert (ef, limit) == (10 * number + 1, 10 * number + 1)
        assert page.has_more
        shown += [hit.item.pk for hit in page.hits]
    assert shown[:2] == exact[:2]
    assert len(set(shown) & set(exact[:30])) >= 27  # recall@30 of the index at these depths
    assert len(set(shown)) == 30  # the pages do not repeat an item


def test_with_a_cutoff_a_search_reads_the_relevant_depth(stored, settings):
    _, vectors = stored
    page, ef, limit = searched(vectors[3], k=10, min_relevance=0.5)
    assert (ef, limit) == (settings.SEARCH_RELEVANT_DEPTH, settings.SEARCH_RELEVANT_DEPTH)
    # Sorted by a field or counted into facets: the whole relevant set, however shallow the page.
    _, ef, limit = searched(vectors[3], k=10, min_relevance=0.0, sort="newest")
    assert limit == settings.SEARCH_MAX_RELEVANT and ef == min(settings.SEARCH_MAX_RELEVANT, 1000)


def test_without_a_cutoff_a_search_reads_the_rows_its_index_search_found(stored, settings):
    _, vectors = stored
    page, ef, limit = searched(vectors[0], k=10, min_relevance=0.0, ef_search=40)
    assert (ef, limit) == (40, 40)
    # A wide search of the index, but no more rows than a search with a cutoff reads.
    _, ef, limit = searched(vectors[0], k=10, min_relevance=0.0, ef_search=300)
    assert (ef, limit) == (300, settings.SEARCH_RELEVANT_DEPTH)
    assert len(page.hits) == 10 and page.hits[0].item.title == "p0"


def test_the_last_page_without_a_cutoff_says_there_is_no_next_one(stored):
    _, vectors = stored
    page, _, limit = searched(vectors[0], k=100, page=4, min_relevance=0.0)
    assert limit == 401
    assert len(page.hits) == 100 and not page.has_more
