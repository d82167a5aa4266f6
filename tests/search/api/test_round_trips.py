"""One round trip per search (issue 28), through the REST API with the real models and the default spaces (the demo
model and the text model, fused): how many statements a search sends.

A small mixed collection of the user's own: pictures and sounds from the evaluation-only generator, reference
documents (manual pages) and one long licence text with passages.
"""

from pathlib import Path

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from search.engine import calibration
from search.engine.reference_texts import reference_pairs
from search.ingest.ingester import Ingester, IngestInput
from search.models import Item, Job
from tests.search.api import relevance_worlds as worlds

pytestmark = pytest.mark.django_db

LICENCE = Path("/usr/share/common-licenses/GPL-3")
QUERIES = ["a red circle", "a low beep", "copy files between two machines", "the terms for sharing free software",
           "a green square on a striped background"]


@pytest.fixture(scope="module")
def world(django_db_setup, django_db_blocker, tmp_path_factory):
    with django_db_blocker.unblock():
        from django.conf import settings

        assert not Item.objects.exists()
        media = settings.MEDIA_ROOT
        settings.MEDIA_ROOT = tmp_path_factory.mktemp("media")
        try:
            uploads = (worlds.pictures(worlds.image_kinds(4, seed=2801), 3, seed=2802)
                       + worlds.sounds(worlds.sound_kinds(3, seed=2803), 3, seed=2804))
            inputs = [IngestInput(data=data, title=f"upload {n}") for n, (_, data) in enumerate(uploads)]
            inputs += [IngestInput(text=pair.document) for pair in reference_pairs(12, 28)]
            if LICENCE.exists():
                inputs.append(IngestInput(text=LICENCE.read_text(), title="GPL-3"))
            outcomes = Ingester().ingest_many(inputs)
            assert all(outcome.item is not None for outcome in outcomes), [o.error for o in outcomes]
            calibration.clear_cache()
            yield
        finally:
            Item.objects.all().delete()
            Job.objects.all().delete()
            calibration.clear_cache()
            settings.MEDIA_ROOT = media


def statements_of(request) -> tuple[int, dict]:
    """Statements one request sends once the process is warm (the spaces' rows, statistics and calibration kept)."""
    request()
    request()
    with CaptureQueriesContext(connection) as captured:
        body = request()
    return len(captured.captured_queries), body


def get(**params) -> dict:
    response = APIClient().get("/api/search/", params)
    assert response.status_code == 200, response.content[:300]
    return response.json()


def test_a_text_search_over_every_space_sends_at_most_four_statements(world, settings):
    """The rankings of both spaces and every modality with the candidates' fields, the shown items whole with
    their matched passages and moments, the query's words marked in them; and the anonymous client's throttle
    count in the shared cache."""
    settings.SEARCH_THROTTLE_RATES = {**settings.SEARCH_THROTTLE_RATES, "search": "100000/min"}
    for query in QUERIES:
        count, body = statements_of(lambda query=query: get(q=query, include_weak="true"))
        assert body["results"], query
        assert count <= 4, (query, count)


def test_a_search_without_words_to_mark_sends_two_statements(world):
    """A query by example (a picture of the user's) has no words to mark: its rankings, then the shown items."""
    from search.engine.query_vectors import QueryPart
    from search.engine.requests import SearchRequest
    from search.engine.search_service import search

    [(_, picture)] = worlds.pictures(worlds.image_kinds(1, seed=2801), 1, seed=2805)
    count, page = statements_of(lambda: search(SearchRequest(parts=[QueryPart(data=picture)], include_weak=True)))
    assert page.hits and count == 2, count
