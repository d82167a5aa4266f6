"""The search service's ranking logic, on hand-made vectors so every expected order is known."""

from datetime import UTC

import numpy as np
import pytest
from django.db import connection

from search.engine.query_vectors import QueryError, QueryPart, text_cache
from search.engine.requests import Filters, SearchRequest
from search.engine.search_service import search
from search.engine.similar import more_like_this, near_duplicates
from search.models import Embedding, Item
from search.storage import spaces

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fake_spaces")]
DIM = 32


@pytest.fixture(autouse=True)
def _no_cutoff(settings):
    # These tests are about ranking: the nearest k, in order. The relevance cutoff, which leaves weak results
    # out by default, has its own tests (test_relevance.py).
    settings.SEARCH_MIN_RELEVANCE = 0.0


def unit(*pairs) -> np.ndarray:
    """A unit vector with the given (axis, value) components."""
    vector = np.zeros(DIM, dtype=np.float32)
    for axis, value in pairs:
        vector[axis] = value
    return vector / np.linalg.norm(vector)


_counter = iter(range(10**9))


def put(title, vector, modality="image", segments=(), **fields) -> Item:
    space = spaces.register("fake")
    item = Item.objects.create(modality=modality, title=title, sha256=f"{next(_counter):064d}",
                               embedding_status="done", **fields)
    Embedding.objects.create(item=item, space=space, vector=vector)
    for start, end, seg_vector in segments:
        Embedding.objects.create(item=item, space=space, vector=seg_vector, segment_start=start, segment_end=end)
    return item


def titles(page):
    return [hit.item.title for hit in page.hits]


def vsearch(vector, **kwargs):
    return search(SearchRequest(parts=[QueryPart(vector=list(vector))], **kwargs))


def test_results_come_in_order_of_cosine_similarity():
    put("near", unit((0, 1), (1, 0.1)))
    put("mid", unit((0, 1), (1, 1)))
    put("far", unit((1, 1)))
    page = vsearch(unit((0, 1)))
    assert titles(page) == ["near", "mid", "far"]
    assert page.hits[0].similarity == pytest.approx(1 - page.hits[0].distance)
    assert page.hits[0].similarity > page.hits[1].similarity > page.hits[2].similarity
    assert page.hits[0].score > page.hits[1].score > page.hits[2].score
    assert [hit.rank for hit in page.hits] == [1, 2, 3]


def test_a_mixed_list_ranks_each_modality_against_its_own_baseline():
    # Texts all sit close to the query (the modality gap); one image stands out among images.
    for i in range(6):
        put(f"text {i}", unit((0, 1), (1, 0.3), (i + 5, 0.2)), modality="text")
    put("standout image", unit((0, 1), (2, 1.0)), modality="image")
    for i in range(5):
        put(f"plain image {i}", unit((2, 1), (i + 12, 1.0)), modality="image")
    q = unit((0, 1), (1, 0.3))
    raw = vsearch(q, k=3, balance_modalities=False)
    balanced = vsearch(q, k=3)
    assert [h.item.modality for h in raw.hits] == ["text", "text", "text"]
    assert "standout image" in titles(balanced)
    assert balanced.hits[0].item.title == "standout image"
    only_images = vsearch(q, k=3, filters=Filters(modalities=["image"]))
    assert titles(only_images)[0] == "standout image"


def test_weighted_and_negative_parts_change_the_ranking():
    put("red circle", unit((0, 1), (1, 1)))
    put("red square", unit((0, 1), (2, 1)))
    put("blue circle", unit((3, 1), (1, 1)))
    red, circle = list(unit((0, 1))), list(unit((1, 1)))
    both = search(SearchRequest(parts=[QueryPart(vector=red), QueryPart(vector=circle)]))
    assert titles(both)[0] == "red circle"
    red_not_circle = search(SearchRequest(parts=[QueryPart(vector=red), QueryPart(vector=circle, weight=-0.5)]))
    assert titles(red_not_circle)[0] == "red square"
    assert titles(red_not_circle)[-1] == "blue circle"


def test_each_filter_narrows_and_hidden_items_never_appear():
    put("a", unit((0, 1)), modality="image", tags=["red", "shape"], collection="c1", metadata={"lang": "en"})
    put("b", unit((0, 1), (1, 0.2)), modality="audio", tags=["red"], collection="c2", metadata={"lang": "fr"})
    put("c", unit((0, 1), (1, 0.4)), modality="text", tags=["blue"], collection="c1")
    put("secret", unit((0, 1)), modality="image", hidden=True, tags=["red"])
    q = unit((0, 1))
    assert titles(vsearch(q)) == ["a", "b", "c"]
    assert titles(vsearch(q, filters=Filters(modalities=["audio", "text"]))) == ["b", "c"]
    assert titles(vsearch(q, filters=Filters(tags=["red"]))) == ["a", "b"]
    assert titles(vsearch(q, filters=Filters(tags=["red", "shape"]))) == ["a"]
    assert titles(vsearch(q, filters=Filters(collection="c1"))) == ["a", "c"]
    assert titles(vsearch(q, filters=Filters(metadata={"lang": "fr"}))) == ["b"]
    Item.objects.filter(title="c").update(created_at="2020-01-01T00:00:00Z")
    from datetime import datetime

    cutoff = datetime(2021, 1, 1, tzinfo=UTC)
    assert titles(vsearch(q, filters=Filters(created_before=cutoff))) == ["c"]
    assert titles(vsearch(q, filters=Filters(created_after=cutoff))) == ["a", "b"]


@pytest.mark.parametrize("exact_below", [0, 5000], ids=["iterative-index-scan", "exact-path"])
def test_a_selective_filter_still_returns_k_results(settings, exact_below):
    settings.SEARCH_EXACT_BELOW = exact_below
    rng = np.random.default_rng(0)
    space = spaces.register("fake")
    vectors = rng.normal(size=(4000, DIM)).astype(np.float32)
    items = Item.objects.bulk_create(
        Item(modality="image", sha256=f"{i:064x}", title=f"i{i}", tags=["rare"] if i % 300 == 7 else ["common"])
        for i in range(len(vectors))
    )
    Embedding.objects.bulk_create(Embedding(item=it, space=space, vector=v) for it, v in zip(items, vectors,
                                                                                             strict=True))
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE search_embedding; ANALYZE search_item")
    page = vsearch(rng.normal(size=DIM), k=10, filters=Filters(tags=["rare"]))
    assert len(page.hits) == 10
    assert all("rare" in hit.item.tags for hit in page.hits)
    assert page.exact == (exact_below > 0)


def test_pages_have_no_repeats_and_no_gaps():
    rng = np.random.default_rng(1)
    for i in range(45):
        put(f"p{i}", rng.normal(size=DIM).astype(np.float32))
    q = rng.normal(size=DIM)
    everything = titles(vsearch(q, k=45, exact=True))
    pages = [vsearch(q, k=10, page=n) for n in range(1, 6)]
    assert sum((titles(p) for p in pages), []) == everything
    assert [p.has_more for p in pages] == [True, True, True, True, False]


def test_an_item_deleted_while_a_search_runs_drops_out_instead_of_failing(monkeypatch):
    # The race the soak test met once in CI: an item ranked, then deleted before its text was read.
    near = put("near", unit((0, 1), (1, 0.1)), modality="text", text="the near one")
    put("mid", unit((0, 1), (1, 1)), modality="text", text="the middle one")
    from search.engine import search_service

    original = search_service.relevances

    def deleting(*args, **kwargs):
        Item.objects.filter(pk=near.pk).delete()
        return original(*args, **kwargs)

    monkeypatch.setattr(search_service, "relevances", deleting)
    page = vsearch(unit((0, 1)))
    assert titles(page) == ["mid"]
    assert page.hits[0].passage.text == "the middle one"


def test_exact_and_index_agree_on_small_data():
    rng = np.random.default_rng(2)
    for i in range(200):
        put(f"x{i}", rng.normal(size=DIM).astype(np.float32))
    q = rng.normal(size=DIM)
    assert titles(vsearch(q, k=10)) == titles(vsearch(q, k=10, exact=True))


def test_hybrid_finds_an_exact_keyword_the_vector_ranking_misses():
    for i in range(15):
        put(f"look-alike {i}", unit((0, 1), (i + 2, 0.3)), modality="text", text="a red thing")
    put("Invoice ZX-4471", unit((5, 1)), modality="text", text="the zx-4471 invoice")
    text_part = QueryPart(text="zx-4471")
    # The fake encoder maps the text somewhere arbitrary; anchor the vector side with a vector part.
    anchor = QueryPart(vector=list(unit((0, 1))), weight=5)
    vector_only = search(SearchRequest(parts=[anchor, text_part], k=5))
    hybrid = search(SearchRequest(parts=[anchor, text_part], k=5, mode="hybrid"))
    lexical = search(SearchRequest(parts=[text_part], k=5, mode="lexical"))
    assert "Invoice ZX-4471" not in titles(vector_only)
    assert "Invoice ZX-4471" in titles(hybrid)
    hit = next(h for h in hybrid.hits if h.item.title == "Invoice ZX-4471")
    assert hit.lexical_rank == 1 and hit.vector_rank is not None
    assert titles(lexical) == ["Invoice ZX-4471"]


def test_pinned_items_lead_only_when_relevant_enough():
    put("best", unit((0, 1)))
    put("pinned, relevant", unit((0, 1), (1, 0.8)), pinned=True)
    put("pinned, off-topic", unit((0, -1), (2, 0.1)), pinned=True)
    put("ordinary", unit((0, 1), (1, 1.2)))
    page = vsearch(unit((0, 1)), pin_min_similarity=0.3)
    assert titles(page) == ["pinned, relevant", "best", "ordinary", "pinned, off-topic"]
    second = vsearch(unit((0, 1)), pin_min_similarity=0.3, k=2, page=2)
    assert titles(second) == ["ordinary", "pinned, off-topic"]


def test_more_like_this_excludes_the_item_itself():
    source = put("source", unit((0, 1)))
    put("twin", unit((0, 1), (1, 0.05)))
    put("other", unit((2, 1)))
    page = more_like_this(source.pk, k=5)
    assert titles(page) == ["twin", "other"]


def test_near_duplicates_are_within_the_threshold():
    source = put("photo", unit((0, 1)))
    put("photo resized", unit((0, 1), (1, 0.01)))
    put("different", unit((0, 1), (1, 1)))
    assert [hit.item.title for hit in near_duplicates(source.pk, threshold=0.01)] == ["photo resized"]


def test_audio_hits_point_at_the_best_matching_moment():
    put("song", unit((0, 1), (1, 1)), modality="audio", duration=30.0, segments=[
        (0.0, 10.0, unit((1, 1))), (10.0, 20.0, unit((0, 1))), (20.0, 30.0, unit((2, 1))),
    ])
    put("short clip", unit((0, 1), (3, 2)), modality="audio", duration=2.0)
    page = vsearch(unit((0, 1)))
    moments = {hit.item.title: hit.moment for hit in page.hits}
    assert moments == {"song": (10.0, 20.0), "short clip": (0.0, 2.0)}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"k": 0}, "k must be between 1 and 100"),
        ({"k": 101}, "k must be between 1 and 100"),
        ({"page": 0}, "page must be between"),
        ({"page": 51}, "page must be between"),
        ({"mode": "magic"}, "unknown mode"),
        ({"filters": Filters(modalities=["video"])}, "unknown modality"),
        ({"space": "nope"}, "unknown space"),
        ({"parts": []}, "the query is empty"),
        ({"parts": [QueryPart(vector=[1.0] * DIM, weight=-1)]}, "positive weight"),
        ({"parts": [QueryPart(vector=[1.0] * 3)]}, "must have 32 numbers"),
        ({"parts": [QueryPart(vector=[0.0] * DIM)]}, "finite and non-zero"),
        ({"parts": [QueryPart(item_id=999_999)]}, "there is no item 999999"),
        ({"parts": [QueryPart(vector=[1.0] * DIM)], "mode": "lexical"}, "needs a text part"),
        ({"parts": [QueryPart(text="   ")]}, "text part is empty"),
        ({"parts": [QueryPart(text="x" * 1001)]}, "limited to 1000 characters"),
        ({"parts": [QueryPart(text="a"), QueryPart(text="a", weight=-1)]}, "cancel each other out"),
        ({"parts": [QueryPart(data=b"not media")]}, "query file was refused"),
    ],
)
def test_bad_queries_are_refused_with_a_clear_message(kwargs, message):
    request = {"parts": [QueryPart(vector=list(unit((0, 1))))]} | kwargs
    with pytest.raises(QueryError, match=message):
        search(SearchRequest(**request))


def test_repeated_text_queries_are_served_from_the_cache():
    put("t", unit((0, 1)), modality="text", text="hello")
    text_cache.clear()
    search(SearchRequest(parts=[QueryPart(text="hello world")]))
    search(SearchRequest(parts=[QueryPart(text="hello world")]))
    assert (text_cache.hits, text_cache.misses) == (1, 1)


@pytest.mark.parametrize("sort", ["relevance", "newest", "title", "taken_newest"])
def test_a_search_reads_a_fixed_number_of_statements_however_many_candidates(sort):
    """Candidates are read with the fields that judge, sort and count them; a field read lazily from each one
    would be a statement per candidate."""
    from django.test.utils import CaptureQueriesContext

    rng = np.random.default_rng(3)

    def statements():
        with CaptureQueriesContext(connection) as captured:
            page = vsearch(unit((0, 1)), k=5, sort=sort, facets=["modality", "collection", "tags"])
        assert page.hits
        return len(captured.captured_queries)

    for i in range(6):
        put(f"a{i}", rng.normal(size=DIM).astype(np.float32), tags=["x"], collection="c")
    statements()  # caches warm: the space's statistics and calibration (fitted to its data, which changes its row)
    statements()  # the space's row kept for the next searches
    few = statements()
    for i in range(40):
        put(f"b{i}", rng.normal(size=DIM).astype(np.float32), tags=["y"], collection=f"c{i % 3}")
    statements()  # the space's calibration follows its data once (its counts moved by more than a quarter) ...
    statements()  # ... and its row is kept again
    assert statements() == few
    # Issue 28: the rankings and every candidate's fields in one statement, the shown items whole with their
    # matched segments in a second.
    assert few == 2


def test_with_server_side_binding_the_knobs_go_first_in_a_transaction(monkeypatch, settings):
    """Server-side binding (a DATABASES option) sends one statement per message: the same answer, the
    knobs set in a transaction before the k-NN statement instead of in its message."""
    settings.SEARCH_EXACT_BELOW = 0  # index scans, which take the knobs (an exact scan needs none)
    rng = np.random.default_rng(8)
    for i in range(30):
        put(f"s{i}", rng.normal(size=DIM).astype(np.float32))
    query = rng.normal(size=DIM)
    together = titles(vsearch(query, k=10))
    monkeypatch.setitem(connection.settings_dict, "OPTIONS", {**connection.settings_dict["OPTIONS"],
                                                              "server_side_binding": True})
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        apart = titles(vsearch(query, k=10))
    assert apart == together
    sent = [q["sql"] for q in captured.captured_queries]
    knobs = next(i for i, sql in enumerate(sent) if "set_config" in sql)
    assert "MATERIALIZED" in sent[knobs + 1] and "MATERIALIZED" not in sent[knobs]
