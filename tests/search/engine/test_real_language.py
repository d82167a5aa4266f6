"""Ordinary English through the default install's real text space (issue 25), on public text read at run time.

The spaces are the shipped defaults (the demo model and all-MiniLM-L6-v2), the database holds only what each test
stores, and every query goes through the REST API as a user's would.
"""

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from encoders.registry import DEFAULT_SPACES
from search.engine.reference_texts import reference_pairs
from tests.search.users import make_user

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _default_spaces(settings):
    settings.SEARCH_SPACES = DEFAULT_SPACES
    settings.SEARCH_DEFAULT_SPACE = "demo"


@pytest.fixture
def writer():
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=make_user('writer'))[0].key}")
    return client


def store_texts(client, texts: list[str]) -> list[int]:
    ids = []
    for text in texts:
        response = client.post("/api/items/", {"text": text}, format="json")
        assert response.status_code in (200, 201), response.content[:300]
        ids.append(response.json()["id"])
    return ids


def search(params: dict) -> dict:
    response = APIClient().get("/api/search/", params)
    assert response.status_code == 200, response.content[:300]
    return response.json()


def test_the_default_install_has_a_real_text_space_described_for_people():
    spaces = {space["name"]: space for space in APIClient().get("/api/spaces/").json()}
    assert set(spaces) >= {"demo", "text"}
    text = spaces["text"]
    assert text["model"] == "sentence-transformers/all-MiniLM-L6-v2" and text["dimension"] == 384
    assert text["languages"] == ["en"] and text["licence"] == "Apache-2.0" and text["modalities"] == ["text"]
    assert spaces["demo"]["model"] == "demo-clip" and spaces["demo"]["licence"] is None


def test_a_new_empty_database_answers_a_search_with_no_results_not_an_error():
    for params in ({"q": "a red circle"}, {"q": "quarterly revenue", "mode": "hybrid"}):
        page = search(params)
        assert page["results"] == [] and page["has_more"] is False


def test_reference_documents_are_found_by_their_summary_in_other_words(writer):
    pairs = reference_pairs(24, seed=5)
    assert len(pairs) == 24, "the machine has neither manual pages nor docstrings to read"
    ids = store_texts(writer, [pair.document for pair in pairs])

    def measure(**params) -> tuple[float, float]:
        first = found = 0
        for pair, item_id in zip(pairs, ids, strict=True):
            page = search({"q": pair.query, "k": 10, "include_weak": "true", "modality": "text", **params})
            ranked = [hit["id"] for hit in page["results"]]
            first += ranked[:1] == [item_id]
            found += item_id in ranked
        return first / len(pairs), found / len(pairs)

    # The text space's own ranking (the demo model alone puts 1 in 24 first: chance).
    first, found = measure(space="text")
    assert first >= 0.45 and found >= 0.8, (first, found)
    assert measure(space="demo")[0] <= 0.15
    # A query that names no space, as a user's: the spaces fused by calibrated relevance.
    first, found = measure()
    assert first >= 0.4, (first, found)


def test_everyday_questions_about_nothing_stored_get_no_close_match(writer):
    """A collection of reference documents and the demo world's captions: ordinary questions about neither are
    answered "no close match", though the text space understands them and something is always nearest."""
    from encoders.demo import synth_eval

    store_texts(writer, [pair.document for pair in reference_pairs(12, seed=9)]
                + ["a red circle on a white background", "a low chord", "two green triangles"])
    questions = synth_eval.ood_sentences(seed=4)[:20]
    unanswered = sum(not search({"q": question})["results"] for question in questions)
    assert unanswered >= 18, unanswered
    # And what is stored is still found by a question in other words.
    assert search({"q": "a crimson disc"})["results"]


def test_prose_is_no_sink_for_the_demo_space(writer):
    """Ordinary texts sit on the demo model's "unknown" point: they never answer a demo-space query, whatever its
    words, while the demo model still finds its own world and the text space still finds the prose."""
    texts = ["The committee approved the minutes of the annual meeting without changes.",
             "Licence note: the music in this folder may be shared for non-commercial use.",
             "Invoice from March for two nights at the harbour hotel, paid by card.",
             "Quarterly revenue rose four percent on strong sales in the northern region."]
    ids = store_texts(writer, texts)
    prose = set(ids)
    image = writer.post("/api/items/", {"file": _red_circle(), "title": "a picture"}, format="multipart")
    assert image.status_code in (200, 201), image.content[:300]
    for query in ("a photo of a dog", "quarterly revenue", "the minutes of the meeting"):
        page = search({"q": query, "space": "demo", "include_weak": "true", "k": 20})
        assert not prose & {hit["id"] for hit in page["results"]}, query
    page = search({"q": "a red circle", "space": "demo", "include_weak": "true", "k": 5})
    assert page["results"] and page["results"][0]["id"] == image.json()["id"]
    page = search({"q": "how much did sales grow this quarter", "k": 3, "include_weak": "true"})
    assert page["results"][0]["id"] == ids[3]


def _red_circle():
    from io import BytesIO

    from PIL import Image, ImageDraw

    image = Image.new("RGB", (96, 96), "white")
    ImageDraw.Draw(image).ellipse((16, 16, 80, 80), fill=(220, 20, 20))
    buffer = BytesIO()
    image.save(buffer, format="PNG")
    buffer.seek(0)
    buffer.name = "circle.png"
    return buffer

