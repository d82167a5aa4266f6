"""Curation in the admin: the item list, bulk actions, upload through ingestion, the item form's
vectors, neighbours and duplicates, and the spaces list with its backfill."""

import re
from types import SimpleNamespace

import numpy as np
import pytest
from django.contrib.auth.models import User
from django.contrib.messages import get_messages
from django.core.files.uploadedfile import SimpleUploadedFile

from search.engine.query_vectors import QueryPart
from search.engine.requests import Filters, SearchRequest
from search.engine.search_service import search
from search.ingest.ingester import Ingester, IngestInput
from search.jobs import runner, submit
from search.models import Embedding, EmbeddingSpace, Item
from tests.search.helpers import png_bytes, truncated, wav_bytes

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fake_spaces")]


@pytest.fixture(autouse=True)
def _every_hit_counts(settings):
    # These tests are about the pages, not the relevance cutoff (the fake space's vectors are random,
    # so few would pass it): every hit counts as relevant here.
    settings.SEARCH_MIN_RELEVANCE = 0.0
CHANGELIST = "/admin/search/item/"


@pytest.fixture
def curator(client):
    user = User.objects.create_superuser("curator", "curator@example.com", "pw-curator-123")
    client.force_login(user)
    client.user = user
    return client


@pytest.fixture
def items():
    ingester = Ingester()

    def add(**fields):
        return ingester.ingest(IngestInput(**fields)).item

    return SimpleNamespace(
        red=add(data=png_bytes((220, 30, 30)), title="A red square", tags=["red"], collection="shapes"),
        twin=add(data=png_bytes((220, 30, 30), seed=5), title="Another red square", tags=["red"]),
        blue=add(data=png_bytes((30, 30, 220), seed=1), title="A blue square", tags=["blue"]),
        tone=add(data=wav_bytes(2.0, 440.0), title="A tone", tags=["tone"]),
        text=add(text="Red circles on a pale ground", title="Red circles"),
    )


def act(client, action, items, **extra):
    return client.post(CHANGELIST, {"action": action, "_selected_action": [i.pk for i in items], **extra},
                       follow=True)


def messages_of(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def result_titles(q: str) -> list[str]:
    return [hit.item.title for hit in search(SearchRequest(parts=[QueryPart(text=q)], k=50)).hits]


def test_the_item_list_previews_media_and_filters(curator, items):
    response = curator.get(CHANGELIST)
    assert response.status_code == 200
    html = response.content.decode()
    assert html.count('class="admin-thumb"') == 3 and html.count('class="admin-audio"') == 1
    assert f'src="/media/{items.red.preview.name}"' in html
    for heading in ("By modality", "By collection", "By tag", "By hidden", "By pinned", "By embedding status"):
        assert heading in html
    assert "red (2)" in html  # the tag filter counts
    assert curator.get(CHANGELIST, {"tag": "blue"}).context["cl"].result_count == 1
    assert curator.get(CHANGELIST, {"modality__exact": "audio"}).context["cl"].result_count == 1
    # Words only (the search box's default adds matches by meaning: see the test below).
    assert curator.get(CHANGELIST, {"q": "circles", "words": "1"}).context["cl"].result_count == 1


def test_hiding_removes_an_item_from_search_at_once_and_unhiding_brings_it_back(curator, items):
    assert "A red square" in result_titles("red")
    response = act(curator, "hide", [items.red, items.blue])
    assert "Hid 2 items." in messages_of(response)
    assert set(Item.objects.filter(hidden=True).values_list("title", flat=True)) == {"A red square", "A blue square"}
    assert "A red square" not in result_titles("red")
    assert "A red square" not in curator.get("/", {"q": "red"}).content.decode()
    act(curator, "unhide", [items.red])
    assert "A red square" in result_titles("red")


def test_pinning_puts_an_item_first(curator, items, settings):
    settings.SEARCH_PIN_MIN_SIMILARITY = -1.0  # any result is relevant enough for this test
    act(curator, "pin", [items.tone])
    assert result_titles("red square")[0] == "A tone"
    assert 'badge-pinned' in curator.get("/", {"q": "red square"}).content.decode()
    act(curator, "unpin", [items.tone])
    assert not Item.objects.filter(pinned=True).exists()


def test_tags_and_collections_in_bulk(curator, items):
    act(curator, "add_tag", [items.red, items.blue], value="Favourite, shape")
    assert Item.objects.get(pk=items.red.pk).tags == ["red", "favourite", "shape"]
    assert Item.objects.get(pk=items.blue.pk).tags == ["blue", "favourite", "shape"]
    act(curator, "remove_tag", [items.red], value="red")
    assert Item.objects.get(pk=items.red.pk).tags == ["favourite", "shape"]
    act(curator, "set_collection", [items.tone, items.text], value="mixed")
    assert set(Item.objects.filter(collection="mixed").values_list("pk", flat=True)) == {items.tone.pk, items.text.pk}
    response = act(curator, "add_tag", [items.red], value="  ")
    assert any("Type the tag in the box" in m for m in messages_of(response))


def test_reembed_restores_missing_vectors(curator, items):
    Embedding.objects.filter(item__in=[items.red, items.tone]).delete()
    Item.objects.filter(pk=items.red.pk).update(embedding_status="failed", embedding_error="boom")
    response = act(curator, "reembed_items", [items.red, items.tone])
    run_queued_job(response)  # what a worker does
    red = Item.objects.get(pk=items.red.pk)
    assert (red.embedding_status, red.embedding_error) == ("done", "")
    assert Embedding.objects.filter(item=items.tone, segment_start__isnull=False).exists()  # audio windows too
    assert "A red square" in result_titles("red")


def test_the_item_form_shows_vectors_neighbours_and_duplicates(curator, items):
    response = curator.get(f"{CHANGELIST}{items.red.pk}/change/")
    assert response.status_code == 200
    html = response.content.decode()
    assert '<img class="admin-media"' in html
    assert "<td>fake</td><td>32</td><td>1.0000</td><td>0</td>" in html  # space, dimension, norm, windows
    neighbours = html.split('class="form-row field-neighbours"', 1)[1].split('class="form-row', 1)[0]
    assert "Another red square" in neighbours and "A blue square" in neighbours
    duplicates = html.split('class="form-row field-duplicates"', 1)[1].split("</fieldset>", 1)[0]
    assert "Another red square" in duplicates and "A blue square" not in duplicates
    assert f'href="/admin/search/item/{items.twin.pk}/change/"' in duplicates
    assert f'href="/items/{items.red.pk}/"' in html  # "view on site"


def test_the_form_edits_curation_fields_and_a_text_items_body_with_its_vectors(curator, items):
    url = f"{CHANGELIST}{items.blue.pk}/change/"
    response = curator.post(url, {"title": "Blue, renamed", "text": "a caption", "tags": "blue,sky",
                                  "collection": "c", "metadata": "{}", "hidden": "on"})
    assert response.status_code == 302, response.content.decode()[:2000]
    blue = Item.objects.get(pk=items.blue.pk)
    assert (blue.title, blue.text, blue.tags, blue.hidden) == ("Blue, renamed", "a caption", ["blue", "sky"], True)

    # A text item's body is editable: its hash and vectors follow it (issue 17).
    text_url = f"{CHANGELIST}{items.text.pk}/change/"
    assert 'name="text"' in curator.get(text_url).content.decode()
    before = Embedding.objects.get(item=items.text, segment_start__isnull=True).vector
    response = curator.post(text_url, {"title": "Red circles", "text": "Green triangles in the rain", "tags": "",
                                       "collection": "", "metadata": "{}"}, follow=True)
    assert "embedded again" in " ".join(messages_of(response))
    edited = Item.objects.get(pk=items.text.pk)
    assert edited.text == "Green triangles in the rain" and edited.sha256 != items.text.sha256
    assert not np.allclose(Embedding.objects.get(item=edited, segment_start__isnull=True).vector, before)
    for mode in ("vector", "lexical"):
        hits = search(SearchRequest(parts=[QueryPart(text="green triangles rain")], mode=mode,
                                    filters=Filters(modalities=["text"]), k=3)).hits
        assert hits[0].item.pk == edited.pk, mode
    # The same body as another item: refused with a message, nothing changed.
    other = Ingester().ingest(IngestInput(text="Another note")).item
    response = curator.post(text_url, {"title": "Red circles", "text": other.text, "tags": "", "collection": "",
                                       "metadata": "{}"}, follow=True)
    assert any("not changed" in m for m in messages_of(response))
    assert Item.objects.get(pk=items.text.pk).text == "Green triangles in the rain"


def test_upload_stores_an_item_through_ingestion(curator):
    page = curator.get(f"{CHANGELIST}add/").content.decode()
    assert 'enctype="multipart/form-data"' in page and 'name="file"' in page and 'name="sha256"' not in page
    response = curator.post(f"{CHANGELIST}add/", {
        "file": SimpleUploadedFile("tone.wav", wav_bytes(1.5)), "title": "Uploaded tone", "tags": "Tone, Test",
        "collection": "uploads", "caption": "a steady beep", "pinned": "on",
    })
    assert response.status_code == 302, response.content.decode()[:3000]
    item = Item.objects.get(title="Uploaded tone")
    assert (item.modality, item.tags, item.collection, item.text) == ("audio", ["tone", "test"], "uploads",
                                                                      "a steady beep")
    assert (item.pinned, item.hidden, item.owner, item.embedding_status) == (True, False, curator.user, "done")
    assert item.media and item.preview and Embedding.objects.filter(item=item).exists()

    response = curator.post(f"{CHANGELIST}add/", {"text": "A text written by a curator", "title": "Note"})
    assert response.status_code == 302
    assert Item.objects.get(title="Note").modality == "text"


@pytest.mark.parametrize(("data", "message"), [
    ({"file": ("x.bin", bytes(range(256)) * 4)}, "Unsupported file type: expected an image"),
    ({"file": ("x.png", b"just some words")}, "holds text, not what its name says"),
    ({"file": ("x.png", truncated(png_bytes(size=(200, 200)), 0.3))}, "image"),
    ({"file": ("x.png", b"")}, "The submitted file is empty."),
    ({}, "Give a file or a text."),
    ({"file": ("x.png", png_bytes()), "text": "both"}, "Give either a file or a text, not both."),
])
def test_upload_shows_why_a_file_is_refused(curator, data, message):
    post = {key: SimpleUploadedFile(*value) if key == "file" else value for key, value in data.items()}
    response = curator.post(f"{CHANGELIST}add/", {"title": "Bad", **post})
    assert response.status_code == 200
    html = response.content.decode()
    assert "errornote" in html and message.lower() in html.lower(), html.split("errornote", 1)[-1][:1500]
    assert not Item.objects.exists()


def test_uploading_stored_content_again_points_to_the_item(curator, items):
    response = curator.post(f"{CHANGELIST}add/", {"file": SimpleUploadedFile("again.png", png_bytes((220, 30, 30)))})
    assert response.status_code == 200
    html = response.content.decode()
    assert "This content is already stored as" in html
    assert f'<a href="/admin/search/item/{items.red.pk}/change/">A red square</a>' in html
    assert Item.objects.count() == 5


def test_html_in_titles_is_escaped_in_the_admin(curator):
    item = Ingester().ingest(IngestInput(data=png_bytes(), title="<script>alert(1)</script>")).item
    for url in (CHANGELIST, f"{CHANGELIST}{item.pk}/change/"):
        html = curator.get(url).content.decode()
        assert "<script>alert(1)" not in html and "&lt;script&gt;alert(1)" in html, url


def test_spaces_list_counts_and_backfills(curator, items):
    response = curator.get("/admin/search/embeddingspace/")
    html = response.content.decode()
    space = EmbeddingSpace.objects.get(name="fake")
    assert space.identity in html
    row = html.split(f">{space.name}</a>", 1)[1].split("</tr>", 1)[0]
    assert '<td class="field-item_vectors">5</td>' in row and '<td class="field-missing">0</td>' in row
    Embedding.objects.filter(item__in=[items.blue, items.text]).delete()
    response = curator.post("/admin/search/embeddingspace/", {"action": "backfill", "_selected_action": [space.pk]},
                            follow=True)
    job = run_queued_job(response)
    assert (job.status, job.succeeded, job.failed) == ("done", 2, 0)
    assert Embedding.objects.filter(segment_start__isnull=True).count() == 5
    page = curator.get(f"/admin/search/job/{job.pk}/change/").content.decode()
    assert "2 / 2 (100%)" in page


def run_queued_job(response):
    """Re-embeds and backfills are queued as jobs; run the one the message names, as a worker would."""
    pass
    from search.models import Job

    [message] = [m for m in messages_of(response) if m.startswith("Queued as")]
    job = Job.objects.get(pk=int(message.split("job ", 1)[1].split(":")[0].split("<")[0]))
    runner.run(job.pk)
    job.refresh_from_db()
    return job


def test_a_queued_job_can_be_cancelled_from_the_jobs_page(curator, items):
    pass
    from search.models import Job

    job = submit.submit_embed(["fake"])
    response = curator.post("/admin/search/job/", {"action": "cancel_jobs", "_selected_action": [job.pk]}, follow=True)
    assert any("Cancelling 1 job(s)" in m for m in messages_of(response))
    assert Job.objects.get(pk=job.pk).status == "cancelled"


def test_deleting_items_removes_their_files(curator, items, settings):
    media = settings.MEDIA_ROOT / items.red.media.name
    assert media.exists()
    curator.post(CHANGELIST, {"action": "delete_selected", "_selected_action": [items.red.pk], "post": "yes"})
    assert not Item.objects.filter(pk=items.red.pk).exists()
    assert not media.exists()


@pytest.mark.django_db
def test_spaces_admin_shows_the_latest_evaluation(settings, admin_client):
    from search.engine.evaluation import save_evaluation
    from search.storage import spaces

    space = spaces.register(settings.SEARCH_DEFAULT_SPACE)
    listing = admin_client.get("/admin/search/embeddingspace/")
    assert b"none yet" in listing.content
    report = {
        "space": space.name, "identity": space.identity, "k": 10, "ndcg_depth": 10, "items": 380,
        "golden": "fixtures/golden/demo.jsonl", "created_at": "2026-11-21T00:10:00+00:00",
        "overall": {"queries": 3, "recall": 0.9, "mrr": 0.8, "ndcg": 0.7, "ann_recall": 1.0},
        "pairs": {"text→image": {"queries": 3, "recall": 0.9, "mrr": 0.8, "ndcg": 0.7, "ann_recall": 1.0}},
    }
    save_evaluation(report)
    listing = admin_client.get("/admin/search/embeddingspace/")
    assert "recall@10 0.900 · MRR 0.800".encode() in listing.content
    detail = admin_client.get(f"/admin/search/embeddingspace/{space.pk}/change/")
    html = detail.content.decode()
    assert "text→image" in html and "demo.jsonl" in html, html[html.find("evaluation"):][:1500]


def test_vectors_are_never_hand_edited_in_the_admin(curator, items):
    # No embedding admin at all (an "Add embedding" form used to end in a 500); the item form shows them.
    assert curator.get("/admin/search/ingest/item_vectors/add/").status_code == 404
    assert curator.post("/admin/search/ingest/item_vectors/add/", {"vector": "[1,2]"}).status_code == 404
    assert "/admin/search/ingest/item_vectors/" not in curator.get("/admin/").content.decode()
    assert "Vectors" in curator.get(f"/admin/search/item/{items.red.pk}/change/").content.decode()


def test_the_item_list_searches_through_the_search_service(curator, items, monkeypatch):
    from search.admin import item_admin as search_admin

    calls = []
    original = search_admin.search
    monkeypatch.setattr(search_admin, "search", lambda request: calls.append(request) or original(request))
    response = curator.get(CHANGELIST, {"q": "red circles"})
    assert response.status_code == 200 and calls and calls[0].mode == "hybrid"
    service_order = [hit.item.title for hit in original(calls[0]).hits]
    shown = [title for title in re.findall(r'<th class="field-title_or_name"><a href="[^"]*">(.*?)</a>',
                                           response.content.decode())]
    assert shown == [title for title in service_order if title in shown]  # in the service's order
    assert "Red circles" in shown
    # Words only: Django's own search, and no refusal of the extra parameter.
    words = curator.get(CHANGELIST, {"q": "circles", "words": "1"})
    assert words.status_code == 200 and "Red circles" in words.content.decode()
    assert "Search by meaning too" in words.content.decode()


def test_many_files_upload_at_once_with_a_result_each(curator):
    files = [SimpleUploadedFile("one.png", png_bytes((10, 200, 10)), content_type="image/png"),
             SimpleUploadedFile("two.wav", wav_bytes(1.0, 330.0), content_type="audio/wav"),
             SimpleUploadedFile("bad.png", b"not an image at all", content_type="image/png")]
    response = curator.post("/admin/search/item/upload/", {"files": files, "tags": "batch, green"},
                            HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    results = {row["name"]: row for row in response.json()["results"]}
    assert results["one.png"]["status"] == "added" and results["two.wav"]["status"] == "added"
    assert results["bad.png"]["status"] == "refused" and results["bad.png"]["message"]
    assert Item.objects.filter(tags__contains=["batch", "green"]).count() == 2
    again = curator.post("/admin/search/item/upload/",
                         {"files": [SimpleUploadedFile("one.png", png_bytes((10, 200, 10)))]})
    assert again.status_code == 200 and "Already stored" in again.content.decode()  # the page, without script
    assert curator.post("/admin/search/item/upload/", {}, HTTP_ACCEPT="application/json").status_code == 400


def test_near_duplicates_are_reviewed_and_hidden_in_bulk(curator, items):
    page = curator.get("/admin/search/item/duplicates/", {"distance": "2"})
    assert page.status_code == 200
    html = page.content.decode()
    assert "pair" in html and 'name="hide"' in html
    assert curator.get("/admin/search/item/duplicates/", {"distance": "wide"}).status_code == 200
    response = curator.post("/admin/search/item/duplicates/?distance=2", {"hide": [items.twin.pk]}, follow=True)
    assert "Hid 1 duplicate." in messages_of(response)
    assert Item.objects.get(pk=items.twin.pk).hidden


def test_a_button_queues_the_evaluation_as_a_job_and_shows_how_it_ended(curator, items, monkeypatch):
    from django.core.management.base import CommandError

    from search.models import Job

    space = EmbeddingSpace.objects.get(name="fake")
    page = curator.get(f"/admin/search/embeddingspace/{space.pk}/change/").content.decode()
    assert "Run the evaluation" in page
    assert curator.get(f"/admin/search/embeddingspace/{space.pk}/evaluate/").status_code == 302  # GET starts nothing
    assert not Job.objects.filter(kind=Job.Kind.EVALUATE).exists()
    response = curator.post(f"/admin/search/embeddingspace/{space.pk}/evaluate/", follow=True)
    [job] = Job.objects.filter(kind=Job.Kind.EVALUATE)
    assert job.params == {"space": "fake"} and "the evaluation is queued as" in " ".join(messages_of(response))
    # A second press while it waits queues nothing more, in any process (the state is in the database).
    response = curator.post(f"/admin/search/embeddingspace/{space.pk}/evaluate/", follow=True)
    assert Job.objects.filter(kind=Job.Kind.EVALUATE).count() == 1
    assert "already running" in " ".join(messages_of(response))
    assert "queued at" in curator.get(f"/admin/search/embeddingspace/{space.pk}/change/").content.decode()

    # The worker runs `manage.py evaluate` for the space; a failure is shown, not retried, and not lost.
    ran = []

    def failing(name, **options):
        ran.append((name, options["space"]))
        raise CommandError("golden set not found")

    monkeypatch.setattr(runner, "call_command", failing)
    runner.run(job.pk, final_attempt=False)
    job.refresh_from_db()
    assert ran == [("evaluate", "fake")] and job.status == Job.Status.FAILED
    page = curator.get(f"/admin/search/embeddingspace/{space.pk}/change/").content.decode()
    assert "the last run failed: CommandError: golden set not found" in page
    # Once it ended, the button queues a new run.
    curator.post(f"/admin/search/embeddingspace/{space.pk}/evaluate/", follow=True)
    assert Job.objects.filter(kind=Job.Kind.EVALUATE, finished_at__isnull=True).count() == 1


def test_the_admin_is_branded_as_the_product(curator):
    html = curator.get("/admin/").content.decode()
    assert "Multimodal search · Curate" in html and "search/admin.css" in html and "Back to search" in html
