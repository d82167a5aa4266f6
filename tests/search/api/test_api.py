"""The REST API contract: status codes, auth, throttling, and never a 500 for bad input."""

import pytest
from django.contrib.auth.models import User
from django.core.cache import cache
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from search.models import Item
from tests.search.helpers import png_bytes, truncated, wav_bytes
from tests.search.users import CURATOR_PERMS, make_user

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fake_spaces")]


@pytest.fixture(autouse=True)
def _fresh_throttles():
    cache.clear()


@pytest.fixture
def alice():
    user = User.objects.create_user("alice", password="pw-alice-123")
    return user, Token.objects.create(user=user).key


@pytest.fixture
def bob():
    user = User.objects.create_user("bob", password="pw-bob-123")
    return user, Token.objects.create(user=user).key


def client_for(token=None) -> APIClient:
    client = APIClient()
    if token:
        client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


def create_text(token, text="a red circle", **extra):
    return client_for(token).post("/api/items/", {"text": text, **extra}, format="json")


def test_create_text_item_returns_201_then_200_for_the_same_content(alice):
    _, token = alice
    first = create_text(token, title="Circle", tags=["Red", "shape"], metadata={"source": "test"})
    assert first.status_code == 201, first.json()
    body = first.json()
    assert (body["modality"], body["title"], body["tags"], body["owner"]) == ("text", "Circle", ["red", "shape"],
                                                                              "alice")
    assert body["embedding_status"] == "done"
    again = create_text(token, title="Another title")
    assert again.status_code == 200 and again.json()["id"] == body["id"]
    assert Item.objects.count() == 1


def test_create_image_by_multipart(alice):
    _, token = alice
    upload = {"file": ("red.png", png_bytes(), "image/png")}
    from django.core.files.uploadedfile import SimpleUploadedFile

    response = client_for(token).post("/api/items/", {
        "file": SimpleUploadedFile(*upload["file"]), "title": "Red", "tags": "a, b", "metadata": '{"k": 2}',
    }, format="multipart")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["modality"], body["width"], body["tags"], body["metadata"]) == ("image", 48, ["a", "b"], {"k": 2})
    media = client_for().get(body["media_url"])
    assert media.status_code == 200
    assert media["Content-Type"] == "image/png" and media["X-Content-Type-Options"] == "nosniff"


def test_anonymous_writes_are_refused():
    response = create_text(None)
    assert response.status_code in (401, 403)
    assert "token" in response.json()["detail"].lower()
    assert Item.objects.count() == 0


def test_a_non_staff_session_without_a_token_cannot_write(alice):
    user, _ = alice
    client = APIClient()
    client.force_login(user)
    assert client.post("/api/items/", {"text": "x"}, format="json").status_code == 403


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({}, "non_field_errors"),
        ({"text": ""}, "text"),
        ({"text": "x", "metadata": [1, 2]}, "metadata"),
        ({"text": "x", "tags": ["t" * 65]}, "tags"),
        ({"text": "x", "title": "t" * 301}, "title"),
    ],
)
def test_bad_item_payloads_get_400_with_a_message_per_field(alice, payload, field):
    response = client_for(alice[1]).post("/api/items/", payload, format="json")
    assert response.status_code == 400
    assert field in response.json()


@pytest.mark.parametrize(
    ("data", "code"),
    [(truncated(png_bytes(size=(300, 300)), 0.3), 400), (b"<svg/>", 400), (b"", 400)],
    ids=["corrupt-image", "svg", "empty"],
)
def test_bad_uploads_get_4xx_and_store_nothing(alice, data, code):
    from django.core.files.uploadedfile import SimpleUploadedFile

    response = client_for(alice[1]).post("/api/items/", {"file": SimpleUploadedFile("x.png", data)},
                                         format="multipart")
    assert response.status_code == code, response.content
    assert "file" in response.json()
    assert Item.objects.count() == 0


def test_oversized_upload_gets_413(alice, settings):
    from django.core.files.uploadedfile import SimpleUploadedFile

    settings.SEARCH_MAX_UPLOAD_BYTES = 1000
    response = client_for(alice[1]).post(
        "/api/items/", {"file": SimpleUploadedFile("big.wav", wav_bytes(seconds=2))}, format="multipart")
    assert response.status_code in (400, 413)
    assert "limit" in str(response.json())


def test_server_owned_fields_cannot_be_written(alice):
    _, token = alice
    item_id = create_text(token).json()["id"]
    response = client_for(token).patch(f"/api/items/{item_id}/", {
        "sha256": "0" * 64, "embedding_status": "failed", "modality": "image", "title": "renamed",
    }, format="json")
    assert response.status_code == 200
    item = Item.objects.get(pk=item_id)
    assert (item.title, item.modality, item.embedding_status) == ("renamed", "text", "done")
    assert item.sha256 != "0" * 64


def test_users_cannot_change_or_delete_each_others_items(alice, bob):
    item_id = create_text(alice[1]).json()["id"]
    assert client_for(bob[1]).patch(f"/api/items/{item_id}/", {"title": "mine"}, format="json").status_code == 403
    assert client_for(bob[1]).delete(f"/api/items/{item_id}/").status_code == 403
    assert client_for(bob[1]).patch(f"/api/items/{item_id}/", {"hidden": True}, format="json").status_code == 403
    assert client_for(alice[1]).delete(f"/api/items/{item_id}/").status_code == 204
    assert not Item.objects.filter(pk=item_id).exists()


def test_only_curators_can_hide_and_hidden_items_disappear(alice):
    item_id = create_text(alice[1]).json()["id"]
    response = client_for(alice[1]).patch(f"/api/items/{item_id}/", {"hidden": True}, format="json")
    assert response.status_code == 400 and "hidden" in response.json()
    staff = make_user("curator", staff=True, perms=CURATOR_PERMS)
    admin = APIClient()
    admin.force_login(staff)
    assert admin.patch(f"/api/items/{item_id}/", {"hidden": True}, format="json").status_code == 200
    assert client_for().get(f"/api/items/{item_id}/").status_code == 404
    results = client_for().get("/api/search/", {"q": "a red circle"}).json()["results"]
    assert item_id not in [hit["id"] for hit in results]


def test_search_get_and_post(alice):
    _, token = alice
    ids = [create_text(token, text=t).json()["id"] for t in ("alpha one", "beta two", "gamma three")]
    got = client_for().get("/api/search/", {"q": "alpha one", "k": 2, "min_relevance": 0})
    assert got.status_code == 200
    body = got.json()
    assert body["results"][0]["id"] == ids[0] and len(body["results"]) == 2 and body["has_more"] is True
    assert {"score", "rank", "snippet", "media_url", "preview_url", "moment"} <= body["results"][0].keys()
    posted = client_for().post("/api/search/", {"parts": [{"item": ids[1]}], "k": 1}, format="json")
    assert posted.status_code == 200 and posted.json()["results"][0]["id"] == ids[1]
    similar = client_for().get(f"/api/items/{ids[1]}/similar/", {"k": 5})
    assert similar.status_code == 200 and ids[1] not in [hit["id"] for hit in similar.json()["results"]]


def test_search_by_uploaded_file(alice):
    from django.core.files.uploadedfile import SimpleUploadedFile

    _, token = alice
    client_for(token).post("/api/items/", {"file": SimpleUploadedFile("a.png", png_bytes(seed=1))},
                           format="multipart")
    response = client_for().post("/api/search/", {"file": SimpleUploadedFile("q.png", png_bytes(seed=1))},
                                 format="multipart")
    assert response.status_code == 200, response.json()
    assert response.json()["results"][0]["modality"] == "image"


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"q": "x", "k": 0},
        {"q": "x", "k": 101},
        {"q": "x", "k": "ten"},
        {"q": "x", "page": 0},
        {"q": "x", "page": 10_000},
        {"q": "x", "mode": "magic"},
        {"q": "x", "modality": "video"},
        {"q": "x", "space": "nope"},
        {"q": "x", "metadata": "{oops"},
        {"q": "x", "created_after": "yesterday"},
        {"q": "x" * 20_000},
    ],
)
def test_bad_search_requests_get_400(params):
    response = client_for().get("/api/search/", params)
    assert response.status_code == 400, response.content
    assert response.json()


@pytest.mark.parametrize(
    "body",
    [
        {"parts": [{"text": "a", "item": 1}]},
        {"parts": [{"weight": 2}]},
        {"parts": [{"vector": [1, 2]}]},
        {"parts": [{"text": "a", "weight": -1}]},
        {"parts": [{"item": 424242}]},
        {"parts": [{"text": "a"}] * 9},
        {"parts": "not a list"},
    ],
)
def test_bad_weighted_queries_get_400(body):
    response = client_for().post("/api/search/", body, format="json")
    assert response.status_code == 400, response.content


def test_unknown_item_is_404():
    assert client_for().get("/api/items/999999/").status_code == 404
    assert client_for().get("/api/items/999999/similar/").status_code == 404


def test_search_is_throttled(settings):
    settings.SEARCH_THROTTLE_RATES = {"search": "3/min", "write": "60/min"}
    codes = [client_for().get("/api/search/", {"q": "x"}).status_code for _ in range(5)]
    assert codes == [200, 200, 200, 429, 429]


def test_writes_are_throttled(settings, alice):
    settings.SEARCH_THROTTLE_RATES = {"search": "100/min", "write": "2/min"}
    codes = [create_text(alice[1], text=f"t{i}").status_code for i in range(3)]
    assert codes == [201, 201, 429]


def test_spaces_schema_and_docs():
    spaces = client_for().get("/api/spaces/").json()
    assert [s["name"] for s in spaces] == ["fake"]
    assert spaces[0]["dimension"] == 32 and spaces[0]["default"] is True
    schema = client_for().get("/api/schema/")
    assert schema.status_code == 200 and b"/api/search/" in schema.content
    docs = client_for().get("/api/docs/")
    assert docs.status_code == 200 and b"swagger" in docs.content.lower()
    assert b"cdn" not in docs.content.lower()


def test_reads_can_require_login(settings):
    settings.SEARCH_API_PUBLIC_READS = False
    assert client_for().get("/api/search/", {"q": "x"}).status_code in (401, 403)


def test_search_answers_are_written_exactly_as_their_declared_fields_would_write_them(alice, settings):
    """The search answer's serializers write their output by hand, for speed; it must stay what the declared
    fields (the API schema) say, for every kind of hit: words and meaning, a passage, a moment, facets,
    suggestions, empty and null values."""
    from rest_framework import serializers as drf
    from rest_framework.test import APIRequestFactory

    from search.api.serializers import SearchHitSerializer, SearchPageSerializer
    from search.engine.passage_matches import Passage
    from search.engine.query_vectors import QueryPart
    from search.engine.requests import SearchRequest
    from search.engine.search_service import search

    _, token = alice
    create_text(token, "a red circle on a white field", tags=["shapes", "red"], collection="demo")
    create_text(token, "a blue square")
    from django.core.files.uploadedfile import SimpleUploadedFile

    image = client_for(token).post("/api/items/", {"file": SimpleUploadedFile("p.png", png_bytes(seed=3), "image/png"),
                                                   "title": "picture"}, format="multipart")
    assert image.status_code == 201, image.json()
    request = APIRequestFactory().get("/api/search/")
    settings.SEARCH_MIN_RELEVANCE = 0.0
    pages = [search(SearchRequest(parts=[QueryPart(text="red circle")], mode="hybrid", facets=["modality", "tags"])),
             search(SearchRequest(parts=[QueryPart(text="zzzz qqqq")], mode="vector", min_relevance=1.0))]
    assert pages[0].hits and pages[1].suggestions
    pages[0].hits[-1].moment = (1.5, 3.25)
    pages[0].hits[-1].passage = Passage(start=2, end=9, text="red cir", page=3, highlights=[(0, 3)])
    for page in pages:
        context = {"request": request}
        written = SearchPageSerializer(page, context=context).data
        declared = drf.Serializer.to_representation(SearchPageSerializer(context=context), page)
        assert list(written) == list(declared) and written == declared
        for hit in page.hits + page.suggestions:
            by_hand = SearchHitSerializer(context=context).to_representation(hit)
            generic = drf.Serializer.to_representation(SearchHitSerializer(context=context), hit)
            assert list(by_hand) == list(generic) and by_hand == generic
