"""The media view with SEARCH_MEDIA_BACKEND=s3 (a real moto server): uploads, previews, audio byte ranges and
document downloads come from the bucket after the access check; a hidden item's files never do (issue 29)."""

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests.search.helpers import png_bytes, wav_bytes
from tests.search.users import make_user

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fake_spaces", "s3_media")]


def body(response) -> bytes:
    return b"".join(response.streaming_content)


@pytest.fixture
def owner():
    return make_user("up")


@pytest.fixture
def uploader(owner):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=owner).key}")
    return client


def test_an_upload_is_served_from_the_bucket_with_ranges(uploader, s3_media, client):
    wav = wav_bytes(seconds=0.5)
    created = uploader.post("/api/items/", {"file": _upload("tone.wav", wav)}, format="multipart")
    assert created.status_code in (200, 201), created.content
    media_url, preview_url = created.json()["media_url"], created.json()["preview_url"]
    assert s3_media.Object(media_url.split("/media/", 1)[1]).content_length == len(wav)
    whole = client.get(media_url)
    assert whole.status_code == 200 and whole["Content-Length"] == str(len(wav)) and body(whole) == wav
    part = client.get(media_url, headers={"Range": "bytes=100-163"})
    assert part.status_code == 206 and part["Content-Range"] == f"bytes 100-163/{len(wav)}"
    assert body(part) == wav[100:164] and part["Content-Length"] == "64"
    assert body(client.get(media_url, headers={"Range": "bytes=-10"})) == wav[-10:]
    refused = client.get(media_url, headers={"Range": f"bytes={len(wav)}-"})
    assert refused.status_code == 416 and refused["Content-Range"] == f"bytes */{len(wav)}"
    preview = client.get(preview_url)
    assert preview.status_code == 200 and body(preview).startswith(b"\x89PNG")


def test_a_hidden_items_files_are_never_served(uploader, owner, client):
    created = uploader.post("/api/items/", {"file": _upload("red.png", png_bytes())}, format="multipart").json()
    assert client.get(created["media_url"]).status_code == 200
    from search.models import Item

    Item.objects.filter(pk=created["id"]).update(hidden=True)
    assert client.get(created["media_url"]).status_code == 404
    assert client.get(created["preview_url"], headers={"Range": "bytes=0-10"}).status_code == 404
    client.force_login(owner)
    assert client.get(created["media_url"]).status_code == 200  # its owner still sees it


def test_a_document_is_a_download_from_the_bucket(uploader, client):
    text = b"# Notes\n\nThe bucket keeps this document private.\n"
    created = uploader.post("/api/items/", {"file": _upload("notes.md", text)}, format="multipart").json()
    answer = client.get(created["media_url"])
    assert answer.status_code == 200 and body(answer) == text
    assert answer["Content-Disposition"].startswith("attachment;")
    assert answer["Content-Security-Policy"] == "default-src 'none'; sandbox"


def test_names_outside_the_stored_layout_are_not_looked_up(client):
    for path in ("../secret_key", "items/../../x.png", "items/ab/" + "a" * 64 + ".png"):
        assert client.get("/media/" + path).status_code == 404


def _upload(name: str, data: bytes):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile(name, data)


def test_an_unreachable_object_store_is_a_503_and_stores_nothing(uploader, client, settings):
    from search.models import Item
    from tests.search.object_store import free_port, s3_options

    created = uploader.post("/api/items/", {"file": _upload("red.png", png_bytes(seed=3))}, format="multipart").json()
    dead = {**s3_options(f"http://127.0.0.1:{free_port()}"), "transfer_config": None}
    settings.STORAGES = {**settings.STORAGES, "default": {"BACKEND": "search.storage.s3_media.MediaS3Storage",
                                                          "OPTIONS": dead}}
    count = Item.objects.count()
    answer = client.get(created["media_url"])
    assert answer.status_code == 503 and answer["Retry-After"] == "5"
    refused = uploader.post("/api/items/", {"file": _upload("blue.png", png_bytes(seed=4))}, format="multipart")
    assert refused.status_code == 503 and "media store is unavailable" in refused.json()["detail"]
    assert Item.objects.count() == count
