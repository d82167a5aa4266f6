"""The HTML pages through Django's test client: search without JavaScript, the results fragment
the script uses, the item page, the map and media byte ranges."""

import json
import re
from types import SimpleNamespace

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from search.engine import map_layout
from search.ingest.ingester import Ingester, IngestInput
from search.models import Embedding, Item
from search.web import pages
from search.web.search_form import PAGE_SIZE
from tests.search.helpers import png_bytes, wav_bytes
from tests.search.users import make_user

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fake_spaces")]


@pytest.fixture(autouse=True)
def _every_hit_counts(settings):
    # These tests are about the pages, not the relevance cutoff (the fake space's vectors are random,
    # so few would pass it): every hit counts as relevant here.
    settings.SEARCH_MIN_RELEVANCE = 0.0


@pytest.fixture
def items():
    ingester = Ingester()

    def add(**fields):
        return ingester.ingest(IngestInput(**fields)).item

    return SimpleNamespace(
        red=add(data=png_bytes((220, 30, 30)), title="A red square", tags=["red", "square"], collection="shapes"),
        blue=add(data=png_bytes((30, 30, 220), seed=1), title="A blue square", tags=["blue", "square"],
                 collection="shapes"),
        tone=add(data=wav_bytes(2.5, 440.0), title="A steady mid tone", tags=["tone"], collection="sounds"),
        text=add(text="Bright red circles dance across a pale background", title="Red circles", tags=["red"]),
    )


def titles(response) -> list[str]:
    """Result titles in page order, from the cards' title links."""
    return re.findall(r'<h3 class="card-title[^"]*"><a href="[^"]*">(.*?)</a>', response.content.decode())


def test_the_page_without_a_query_welcomes_and_suggests(client, items):
    response = client.get("/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "Find things by what they mean" in html
    assert 'name="q"' in html and 'method="get"' in html
    assert "2 images" in html and "1 sounds" in html and "1 texts" in html
    # Example queries (short titles or captions of pictures and sounds), not single tags.
    assert '<a class="suggestion" href="?q=a%20red%20square">a red square</a>' in html
    assert '<option value="red">' in html  # the tag field suggests the tags in use
    assert 'class="grid"' not in html


def test_a_plain_get_search_renders_results_server_side(client, items):
    response = client.get("/", {"q": "red square"})
    assert response.status_code == 200
    shown = titles(response)
    assert sorted(shown) == sorted(["A red square", "A blue square", "A steady mid tone", "Red circles"])
    html = response.content.decode()
    assert f'href="/items/{items.red.pk}/"' in html
    assert f'?like={items.red.pk}"' in html  # "more like this" works as a plain link too
    assert 'value="red square"' in html  # the box keeps the query


def test_the_modality_filter_narrows_results(client, items):
    response = client.get("/", {"q": "red", "modality": "image"})
    assert sorted(titles(response)) == ["A blue square", "A red square"]
    response = client.get("/", {"q": "red", "modality": ["audio", "text"]})
    assert sorted(titles(response)) == ["A steady mid tone", "Red circles"]


def test_tag_and_collection_filters(client, items):
    assert titles(client.get("/", {"q": "shape", "tag": "Red, square"})) == ["A red square"]
    assert titles(client.get("/", {"q": "shape", "collection": "sounds"})) == ["A steady mid tone"]


def test_hidden_items_never_show(client, items):
    Item.objects.filter(pk=items.red.pk).update(hidden=True)
    assert "A red square" not in titles(client.get("/", {"q": "red square"}))
    assert client.get(f"/items/{items.red.pk}/").status_code == 404


def test_hybrid_mode_marks_the_matched_words(client, items):
    response = client.get("/", {"q": "red circles", "mode": "hybrid"})
    html = response.content.decode()
    assert "ranked by meaning and words" in html
    assert "<mark>Red</mark> <mark>circles</mark>" in html  # the title, stemmed matches marked
    assert "Bright <mark>red</mark> <mark>circles</mark> dance" in html  # the snippet


def test_marks_in_stored_text_cannot_forge_highlights(client):
    Ingester().ingest(IngestInput(text="plain red words", title="red \x02<i>x</i>\x03 red"))
    html = client.get("/", {"q": "red", "mode": "hybrid"}).content.decode()
    assert "<mark>red</mark> &lt;i&gt;x&lt;/i&gt; <mark>red</mark>" in html


def test_hybrid_without_words_falls_back_to_meaning(client, items):
    response = client.get("/", {"like": items.red.pk, "mode": "hybrid"})
    html = response.content.decode()
    assert "ranked by meaning alone" in html
    assert "A red square" not in titles(response)  # the item itself is the query, not a result
    assert "Like “A red square”" in html  # shown as a removable chip
    assert 'class="chip-remove" href="/?mode=hybrid"' in html


@pytest.mark.parametrize(("params", "message"), [
    ({"q": "x" * 1001}, "Query text is limited to 1000 characters"),
    ({"q": "red", "modality": "smell"}, "Select a valid choice. smell is not one of the available choices"),
    ({"q": "red", "page": "0"}, "Ensure this value is greater than or equal to 1"),
    ({"like": "999999"}, "There is no item 999999"),
    ({"like": "abc"}, "An item to search like must be given by its number"),
])
def test_errors_say_what_went_wrong(client, items, params, message):
    response = client.get("/", params)
    assert response.status_code == 400
    html = response.content.decode()
    assert 'role="alert"' in html and "That search did not work" in html
    assert message in html


def test_an_empty_result_says_what_to_do(client, items):
    response = client.get("/", {"q": "red", "collection": "nowhere"})
    assert "Nothing matched" in response.content.decode()
    assert titles(response) == []


def test_pages_link_to_each_other(client):
    Ingester().ingest_many([IngestInput(text=f"note number {i}") for i in range(PAGE_SIZE + 3)])
    first = client.get("/", {"q": "note"})
    assert len(titles(first)) == PAGE_SIZE
    html = first.content.decode()
    assert 'href="/?q=note&amp;page=2" rel="next"' in html and 'rel="prev"' not in html
    second = client.get("/", {"q": "note", "page": 2})
    assert len(titles(second)) == 3
    html = second.content.decode()
    assert 'href="/?q=note" rel="prev"' in html and 'rel="next"' not in html
    assert not set(titles(first)) & set(titles(second))


def test_html_in_titles_is_escaped_everywhere(client):
    item = Ingester().ingest(IngestInput(data=png_bytes(), title='<script>alert("x")</script><b>bold</b>')).item
    for url, params in (("/", {"q": "alert"}), ("/", {"q": "alert", "mode": "hybrid"}), (f"/items/{item.pk}/", {})):
        html = client.get(url, params).content.decode()
        assert "<script>alert" not in html and "<b>bold</b>" not in html, url
        assert "&lt;script&gt;alert" in html, url
    # The map's titles travel as JSON data, shown with textContent: never markup.
    assert "<script>alert" not in client.get("/map/").content.decode()
    assert '<script>alert("x")</script><b>bold</b>' in client.get("/map/data/").json()["title"]


def test_the_results_fragment_takes_weighted_parts_and_files(client, items):
    parts = [{"file": "file0", "weight": 1}, {"text": "tone", "weight": -0.5}, {"item": items.blue.pk, "weight": 0.5}]
    response = client.post("/results/", {
        "parts": json.dumps(parts), "file0": SimpleUploadedFile("q.png", png_bytes((220, 30, 30), seed=3)),
        "modality": ["image"],
    })
    assert response.status_code == 200
    html = response.content.decode()
    assert "<html" not in html  # a fragment, swapped into the page by the script
    assert titles(response)[0] == "A red square"
    assert "A steady mid tone" not in titles(response)


def test_the_results_fragment_reports_bad_files_and_parts(client, items):
    def post(**data):
        return client.post("/results/", data).content.decode()

    bad = post(parts=json.dumps([{"file": "file0"}]), file0=SimpleUploadedFile("x.png", b"not an image at all"))
    assert "The query file was refused" in bad
    assert "arrived without its file" in post(parts=json.dumps([{"file": "file0"}]))
    assert "not valid JSON" in post(parts="[{")
    assert "Each weight must be a number between -100 and 100" in post(parts=json.dumps([{"text": "a", "weight": 1e9}]))
    assert "At least one part needs a non-zero weight" in post(parts=json.dumps([{"text": "a", "weight": 0}]))


def test_the_results_fragment_needs_the_csrf_token():
    client = Client(enforce_csrf_checks=True)
    page = client.get("/")
    token = page.content.decode().split('name="csrf-token" content="', 1)[1].split('"', 1)[0]
    assert client.post("/results/", {"q": "red"}).status_code == 403
    assert client.post("/results/", {"q": "red"}, headers={"X-CSRFToken": token}).status_code == 200


def test_the_item_page_shows_media_metadata_and_neighbours(client, items):
    response = client.get(f"/items/{items.red.pk}/")
    assert response.status_code == 200
    html = response.content.decode()
    assert f'src="/media/{items.red.media.name}"' in html
    assert "shapes" in html and "48 × 32 px" in html and "image/png" in html
    assert "Similar images" in html and "Similar sounds" in html and "Similar texts" in html
    near = html.split("Similar images", 1)[1].split("</ol>", 1)[0]
    assert "A blue square" in near and "A red square" not in near
    audio = client.get(f"/items/{items.tone.pk}/").content.decode()
    assert "<audio controls" in audio and "2.50 s at 16000 Hz" in audio


def test_hidden_items_are_visible_to_curators_only(client, items):
    Item.objects.filter(pk=items.text.pk).update(hidden=True)
    assert client.get(f"/items/{items.text.pk}/").status_code == 404
    make_user("staff-without-perms", password="pw-staff-1", staff=True)
    client.login(username="staff-without-perms", password="pw-staff-1")
    assert client.get(f"/items/{items.text.pk}/").status_code == 404
    make_user("cu", password="pw-curator-1", staff=True, perms=("view",))
    client.login(username="cu", password="pw-curator-1")
    response = client.get(f"/items/{items.text.pk}/")
    assert response.status_code == 200 and "This item is hidden" in response.content.decode()


def test_an_item_without_vectors_says_so(client, items):
    Embedding.objects.filter(item=items.red).delete()
    html = client.get(f"/items/{items.red.pk}/").content.decode()
    assert f"Item {items.red.pk} has no vector in the space" in html


def map_data(client, **params) -> dict:
    response = client.get("/map/data/", params)
    assert response.status_code == 200, response.content
    return response.json()


def test_the_map_draws_every_visible_item_and_follows_changes(client, items):
    html = client.get("/map/").content.decode()
    assert "Images (2)" in html and 'id="map-canvas"' in html
    data = map_data(client)
    assert len(data["id"]) == 4 and data["m"].count(0) == 2  # modalities in SHOWN_ORDER: image first
    assert all(0 <= v <= 1 for v in data["x"] + data["y"])
    Item.objects.filter(pk=items.blue.pk).update(hidden=True)
    assert len(map_data(client)["id"]) == 3
    Ingester().ingest(IngestInput(text="a brand new note"))
    assert len(map_data(client)["id"]) == 4


def test_the_map_is_computed_once_until_items_change(client, items, monkeypatch):
    calls = []
    original = map_layout.compute
    monkeypatch.setattr(map_layout, "compute", lambda space: calls.append(space) or original(space))
    client.get("/map/")
    map_data(client)
    assert len(calls) == 1
    item = Item.objects.get(pk=items.tone.pk)
    item.title = "A renamed tone"
    item.save()
    assert "A renamed tone" in map_data(client)["title"]
    assert len(calls) == 2


def test_the_map_marks_the_results_of_a_query(client, items):
    data = map_data(client, q="red square")
    assert data["highlight"] and set(data["highlight"]) <= set(data["id"])
    assert client.get("/map/data/", {"q": "x" * 5000}).status_code == 400  # too long: a clear 4xx


def test_the_map_is_laid_out_by_umap_and_keeps_neighbours_together():
    rng = np.random.default_rng(1)
    centres = rng.standard_normal((3, 16)) * 4
    vectors = np.vstack([centre + rng.standard_normal((15, 16)) * 0.3 for centre in centres])
    coords = map_layout.neighbourhood_axes(vectors)
    assert coords.shape == (45, 2) and coords.min() >= 0 and coords.max() <= 1
    # Each point's nearest point on the map is from its own cluster.
    distances = ((coords[:, None] - coords[None]) ** 2).sum(-1)
    np.fill_diagonal(distances, np.inf)
    assert (distances.argmin(1) // 15 == np.arange(45) // 15).mean() > 0.95


def test_principal_axes_are_scaled_and_stable():
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((50, 8)) * np.array([5, 2, 1, 1, 1, 1, 1, 1])
    coords, explained = map_layout.principal_axes(vectors)
    assert coords.shape == (50, 2) and coords.min() == 0 and coords.max() == 1
    assert explained[0] > explained[1] > 0
    # One more item must not mirror the map (an SVD's signs are otherwise arbitrary).
    grown, _ = map_layout.principal_axes(np.vstack([vectors, rng.standard_normal((1, 8))]))
    for axis in (0, 1):
        assert np.corrcoef(coords[:, axis], grown[:50, axis])[0, 1] > 0.95
        again, _ = map_layout.principal_axes(np.vstack([-vectors[:1], vectors]))
        assert np.corrcoef(coords[:, axis], again[1:, axis])[0, 1] > 0.95
    assert map_layout.principal_axes(vectors[:1])[0].tolist() == [[0.5, 0.5]]
    assert map_layout.principal_axes(np.zeros((0, 8)))[0].shape == (0, 2)


def test_media_answers_byte_ranges_so_players_can_seek(client, items):
    url = f"/media/{items.tone.media.name}"
    whole = b"".join(client.get(url).streaming_content)
    part = client.get(url, headers={"Range": "bytes=10-19"})
    assert part.status_code == 206 and part["Content-Range"] == f"bytes 10-19/{len(whole)}"
    assert b"".join(part.streaming_content) == whole[10:20]
    tail = client.get(url, headers={"Range": "bytes=-4"})
    assert b"".join(tail.streaming_content) == whole[-4:]
    assert client.get(url, headers={"Range": f"bytes={len(whole) + 5}-"}).status_code == 416
    assert client.get(url)["Accept-Ranges"] == "bytes"


def test_scores_are_shown_between_0_and_100_percent(client, items):
    html = client.get("/", {"q": "red square"}).content.decode()
    figures = [int(f) for f in re.findall(r'<span class="score-value">(\d+)%', html)]
    assert figures and all(0 <= f <= 100 for f in figures)


def test_a_list_ends_at_the_cap_and_says_so(client, monkeypatch):
    pass

    monkeypatch.setattr(pages, "SCROLL_MAX_RESULTS", PAGE_SIZE)
    Ingester().ingest_many([IngestInput(text=f"note number {i}") for i in range(PAGE_SIZE + 3)])
    html = client.get("/", {"q": "note"}).content.decode()
    assert 'rel="next"' not in html and f"That is the {PAGE_SIZE} closest results" in html


def test_an_empty_list_says_which_filter_emptied_it(client, items):
    html = client.get("/", {"q": "square", "tag": "red square"}).content.decode()
    assert "No item has the tag “red square” (tags are separated by commas)" in html
    html = client.get("/", {"q": "square", "tag": "red, tone"}).content.decode()
    assert "No item has all the tags “red”, “tone”" in html


def test_text_cards_are_titled_by_their_first_words(client):
    Ingester().ingest(IngestInput(text="a lonely lighthouse on a rocky shore at dusk with gulls overhead"))
    html = client.get("/", {"q": "lighthouse"}).content.decode()
    assert "Text #" not in html
    assert "a lonely lighthouse on a rocky shore at…" in html


def test_a_database_outage_keeps_the_layout(client):
    from unittest import mock

    from django.db import OperationalError
    from django.db.backends import utils

    def refuse(*args, **kwargs):
        raise OperationalError("connection to server on socket failed")

    with mock.patch.object(utils.CursorWrapper, "execute", refuse):
        response = client.get("/", {"q": "red"})
    html = response.content.decode()
    assert response.status_code == 503
    assert "Search is unavailable for a moment" in html and 'class="site-header"' in html


def test_one_process_anywhere_computes_a_layout_the_others_wait(items, monkeypatch):
    # The claim is in the shared cache (issue 29): another worker or node sees it and shows the PCA map as pending.
    from django.core.cache import cache

    from search.storage import spaces

    started = []
    monkeypatch.setattr(map_layout, "UMAP_MIN_POINTS", 2)
    monkeypatch.setattr(map_layout, "umap_available", lambda: True)
    monkeypatch.setattr(map_layout.threading, "Thread", lambda target, args, **kw: SimpleNamespace(
        start=lambda: started.append(args[0])))
    space = spaces.registered_spaces()[0]
    assert map_layout.projection(space).pending and len(started) == 1
    assert map_layout.projection(space).pending and len(started) == 1  # claimed: nobody starts it again
    cache.delete(f"{started[0]}:claim")  # the claim of a process that died expires
    assert map_layout.projection(space).pending and len(started) == 2
