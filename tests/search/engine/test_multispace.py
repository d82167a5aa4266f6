"""One query over several spaces: each space answers what it can embed, the lists are fused by calibrated
relevance, each item once, each hit naming its space (issue 19)."""

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

import encoders
from encoders.base import Modality
from encoders.fake import FakeSpace
from search.engine import calibration
from search.engine.query_vectors import QueryPart
from search.engine.requests import Filters, SearchRequest
from search.engine.search_service import search
from search.ingest.ingester import Ingester, IngestInput
from search.models import EmbeddingSpace
from tests.search.helpers import png_bytes, wav_bytes

pytestmark = pytest.mark.django_db


class PicturesFake(FakeSpace):
    def __init__(self, name, **options):
        super().__init__(name, **options)
        self.modalities = frozenset({Modality.TEXT, Modality.IMAGE})


class SoundsFake(FakeSpace):
    def __init__(self, name, **options):
        super().__init__(name, **options)
        self.modalities = frozenset({Modality.TEXT, Modality.AUDIO})


SPACES = {
    "pics": {"ENCODER": "tests.search.engine.test_multispace.PicturesFake", "OPTIONS": {"dim": 32}},
    "sounds": {"ENCODER": "tests.search.engine.test_multispace.SoundsFake", "OPTIONS": {"dim": 24}},
}


@pytest.fixture
def two_spaces(settings):
    original = settings.SEARCH_SPACES
    settings.SEARCH_SPACES = SPACES
    settings.SEARCH_DEFAULT_SPACE = "pics"
    encoders.configure(SPACES)
    cache.clear()
    calibration.clear_cache()
    texts = [IngestInput(text=f"a note about {word}", title=f"note {word}") for word in
             ("red", "blue", "green", "tone", "chord", "noise")]
    images = [IngestInput(data=png_bytes(colour=(30 * n, 200 - 20 * n, 60), seed=n), title=f"picture {n}")
              for n in range(6)]
    sounds = [IngestInput(data=wav_bytes(seconds=0.5, freq=220.0 * (n + 1)), title=f"sound {n}") for n in range(6)]
    Ingester().ingest_many(texts + images + sounds)
    for space in EmbeddingSpace.objects.all():
        calibration.calibrate(space)
    yield
    encoders.configure(original)


def test_one_query_runs_in_every_space_that_can_take_it_and_each_item_comes_once(two_spaces):
    page = search(SearchRequest(parts=[QueryPart(text="a note about red")], k=50, min_relevance=0.0))
    assert page.space == "pics+sounds"
    spaces_of = {hit.item.modality: {h.space for h in page.hits if h.item.modality == hit.item.modality}
                 for hit in page.hits}
    assert spaces_of["image"] == {"pics"} and spaces_of["audio"] == {"sounds"}
    ids = [hit.item.pk for hit in page.hits]
    assert len(ids) == len(set(ids)) == 18
    assert [hit.rank for hit in page.hits] == list(range(1, 19))
    # By relevance, except that a text neither leads nor follows another text while pictures and sounds remain, the
    # rule of one space's mixed lists (issue 12): the note restating the query, the most relevant, comes second.
    for kind in ("text", "image", "audio"):
        own = [hit.relevance for hit in page.hits if hit.item.modality == kind]
        assert own == sorted(own, reverse=True), kind
    assert page.hits[0].item.modality != "text" and page.hits[1].item.title == "note red"
    assert max(hit.relevance for hit in page.hits) == page.hits[1].relevance


def test_a_named_space_keeps_single_space_behaviour(two_spaces):
    page = search(SearchRequest(parts=[QueryPart(text="a note about red")], space="sounds", k=50, min_relevance=0))
    assert page.space == "sounds" and {hit.item.modality for hit in page.hits} == {"text", "audio"}


def test_a_query_part_only_one_space_can_embed_runs_there_alone(two_spaces):
    page = search(SearchRequest(parts=[QueryPart(data=png_bytes(seed=2))], k=50, min_relevance=0.0))
    assert page.space == "pics" and {hit.item.modality for hit in page.hits} <= {"text", "image"}


def test_filters_paging_and_the_api_work_across_spaces(two_spaces):
    audio = search(SearchRequest(parts=[QueryPart(text="a tone")], k=50, min_relevance=0.0,
                                 filters=Filters(modalities=["audio"])))
    assert audio.space == "sounds" and {hit.item.modality for hit in audio.hits} == {"audio"}
    first = search(SearchRequest(parts=[QueryPart(text="a note")], k=5, page=1, min_relevance=0.0))
    second = search(SearchRequest(parts=[QueryPart(text="a note")], k=5, page=2, min_relevance=0.0))
    assert not {h.item.pk for h in first.hits} & {h.item.pk for h in second.hits} and first.has_more
    body = APIClient().get("/api/search/", {"q": "a note about red", "min_relevance": 0, "k": 50}).json()
    assert body["space"] == "pics+sounds" and {hit["space"] for hit in body["results"]} == {"pics", "sounds"}


def test_a_fused_query_is_encoded_in_its_spaces_at_once(two_spaces, monkeypatch):
    import threading

    from search.engine.query_vectors import text_cache

    threads = {}
    for cls in (PicturesFake, SoundsFake):
        original = cls.encode_query_texts

        def recording(self, texts, original=original):
            threads[self.name] = threading.current_thread().name
            return original(self, texts)

        monkeypatch.setattr(cls, "encode_query_texts", recording)
    text_cache.clear()
    fused = search(SearchRequest(parts=[QueryPart(text="a note about blue")], k=50, min_relevance=0.0))
    # The first space in the helper thread, the last in the request's own; the plans then read both from the cache.
    assert threads == {"pics": threads["pics"], "sounds": threading.current_thread().name}
    assert threads["pics"].startswith("query-encoding")
    text_cache.clear()
    monkeypatch.setattr("search.engine.query_vectors._encoding.submit", lambda *a: pytest.fail("not at once"))
    monkeypatch.setattr("search.engine.search_service.embed_text_in_spaces", lambda *a: None)
    one_by_one = search(SearchRequest(parts=[QueryPart(text="a note about blue")], k=50, min_relevance=0.0))
    assert [(h.item.pk, h.space, h.relevance) for h in fused.hits] == \
        [(h.item.pk, h.space, h.relevance) for h in one_by_one.hits]


def test_a_search_that_finds_the_helper_busy_encodes_on_its_own_thread(two_spaces, monkeypatch):
    import threading

    from search.engine import query_vectors

    threads = {}
    original = PicturesFake.encode_query_texts
    monkeypatch.setattr(PicturesFake, "encode_query_texts", lambda self, texts: threads.setdefault(
        self.name, threading.current_thread().name) and original(self, texts))
    query_vectors.text_cache.clear()
    assert query_vectors._helper_free.acquire(blocking=False)  # another request's encoding holds it
    try:
        page = search(SearchRequest(parts=[QueryPart(text="a note about chords")], k=5, min_relevance=0.0))
    finally:
        query_vectors._helper_free.release()
    assert page.space == "pics+sounds" and threads == {"pics": threading.current_thread().name}


def test_a_space_failing_in_the_helper_thread_is_reported_as_one_failing_in_turn(two_spaces, monkeypatch):
    from search.engine.query_vectors import QueryError, text_cache

    def broken(self, texts):
        raise RuntimeError("the model fell over")

    monkeypatch.setattr(PicturesFake, "encode_query_texts", broken)
    text_cache.clear()
    with pytest.raises(QueryError, match="the text query could not be embedded: RuntimeError"):
        search(SearchRequest(parts=[QueryPart(text="a note about green")], k=5))
    response = APIClient().get("/api/search/", {"q": "a note about green"})
    assert response.status_code == 400 and "could not be embedded" in response.json()["detail"]


@pytest.mark.slow
def test_the_demo_model_as_two_spaces_answers_one_fused_query(settings, tmp_path):
    """The issue's case: "pics" (text+image) and "sounds" (text+audio) from the same demo model, the demo
    world loaded into both, one text query fused across them."""
    import json

    from django.core.management import call_command

    from encoders.demo import synth
    from encoders.registry import DEFAULT_SPACES

    demo = DEFAULT_SPACES["demo"]
    two = {
        "pics": {"ENCODER": demo["ENCODER"], "OPTIONS": {**demo["OPTIONS"], "modalities": ["text", "image"]}},
        "sounds": {"ENCODER": demo["ENCODER"], "OPTIONS": {**demo["OPTIONS"], "modalities": ["text", "audio"]}},
    }
    original = settings.SEARCH_SPACES
    settings.SEARCH_SPACES, settings.SEARCH_DEFAULT_SPACE = two, "pics"
    encoders.configure(two)
    calibration.clear_cache()
    try:
        manifest = synth.write_dataset(tmp_path / "demo", n_images=32, n_audio=24, n_texts=8, seed=5)
        call_command("ingest", str(manifest), verbosity=0)
        for space in EmbeddingSpace.objects.all():
            calibration.calibrate(space)
        page = search(SearchRequest(parts=[QueryPart(text="a red circle")], k=100, min_relevance=0.0))
        assert page.space == "pics+sounds"
        by_modality = {}
        for hit in page.hits:
            by_modality.setdefault(hit.item.modality, set()).add(hit.space)
        assert by_modality["image"] == {"pics"} and by_modality["audio"] == {"sounds"}
        ids = [hit.item.pk for hit in page.hits]
        assert len(ids) == len(set(ids)) == 64
        labels = {json.loads(line)["title"]: json.loads(line)["labels"]
                  for line in manifest.read_text().splitlines()}
        top_image = next(hit for hit in page.hits if hit.item.modality == "image")
        assert labels[top_image.item.title]["shape"] == "circle"
    finally:
        encoders.configure(original)


def test_a_space_that_holds_nothing_yet_is_not_read_again_on_every_search(settings):
    """A configured space with no items yet (a text space before the first words) takes no part; its row was read
    anew on every search to make sure (two statements a search), now once every few seconds, and a space made
    anew meanwhile (another row: a restored database) is still found."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from search.storage import spaces

    settings.SEARCH_SPACES = SPACES
    settings.SEARCH_DEFAULT_SPACE = "pics"
    settings.SEARCH_MIN_RELEVANCE = 0.0
    encoders.configure(SPACES)
    try:
        calibration.clear_cache()
        Ingester().ingest_many([IngestInput(data=png_bytes(seed=n), title=f"picture {n}") for n in range(4)])
        EmbeddingSpace.objects.get_or_create(name="sounds", defaults={
            "identity": encoders.get_space("sounds").identity, "dimension": 24, "modalities": ["audio", "text"]})
        ask = SearchRequest(parts=[QueryPart(text="a picture")], filters=Filters(modalities=["image", "audio"]))
        for _ in range(3):  # warm: the spaces' rows, statistics and calibration kept
            assert search(ask).space == "pics"
        with CaptureQueriesContext(connection) as captured:
            page = search(ask)
        assert page.space == "pics" and page.hits
        reads = [q["sql"] for q in captured.captured_queries if "FROM search_embeddingspace s WHERE name" in q["sql"]]
        assert reads == [], reads
        # Once the few seconds are over, an empty space's row is read again: here it was made anew with sounds.
        EmbeddingSpace.objects.filter(name="sounds").delete()
        Ingester().ingest_many([IngestInput(data=wav_bytes(seconds=0.5, freq=330.0), title="a sound")])
        calibration.clear_cache()
        spaces._found_empty["sounds"] -= spaces.EMPTY_RECHECK_SECONDS
        assert search(ask).space == "pics+sounds"
    finally:
        encoders.configure({})
