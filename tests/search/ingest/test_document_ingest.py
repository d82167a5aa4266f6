"""Documents as items (issue 17): .txt, .md, .html and .pdf files through the API, the admin and
`manage.py ingest`, their text embedded passage by passage and the file kept for download; hostile
documents get a clear 4xx and store nothing."""

import io
import zipfile
from io import StringIO

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from search.models import Embedding, Item
from tests.search import documents_gen as gen
from tests.search.users import make_user

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("passage_spaces")]

FILLER = "The committee talked about the budget for next year before lunch. " * 12


@pytest.fixture
def client():
    user = make_user("writer", perms=("view", "change"))
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return api


def upload(client, name: str, data: bytes, **fields):
    return client.post("/api/items/", {"file": SimpleUploadedFile(name, data), **fields}, format="multipart")


def test_a_pdf_is_stored_as_a_text_item_found_by_a_passage_on_its_page(client):
    pages = [FILLER, FILLER + "The lighthouse keeper counted eleven violet umbrellas on the pier. " + FILLER,
             FILLER]
    data = gen.text_pdf(pages, title="Harbour report", author="A. Keeper")
    response = upload(client, "report.pdf", data)
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["modality"], body["mime_type"], body["title"]) == ("text", "application/pdf", "Harbour report")
    item = Item.objects.get(pk=body["id"])
    assert "violet umbrellas" in item.text and len(item.text_pages) == 3 and item.text_pages[0] == 0
    assert item.metadata["pages"] == 3 and item.metadata["author"] == "A. Keeper"
    assert Embedding.objects.filter(item=item, passage=True).count() > 5

    found = client.post("/api/search/", {"q": "violet umbrellas on the pier", "modality": ["text"]},
                        format="json").json()["results"]
    assert found[0]["id"] == item.pk
    passage = found[0]["passage"]
    assert "umbrellas" in passage["text"] and passage["page"] == 2

    # The original file is kept and downloadable, never shown inline from this site.
    download = client.get(body["media_url"])
    assert download.status_code == 200 and b"".join(download.streaming_content) == data
    assert download["Content-Disposition"].startswith("attachment;") and download["Content-Type"] == "application/pdf"
    # The same file again is the same item.
    assert upload(client, "copy.pdf", data).status_code == 200


def test_markdown_html_and_plain_text_keep_only_what_a_reader_sees(client):
    markdown = b"---\nlayout: post\n---\n# Field notes\n\nA [link](https://example.com) and *emphasis*.\n"
    response = upload(client, "notes.md", markdown)
    assert response.status_code == 201, response.content
    item = Item.objects.get(pk=response.json()["id"])
    assert (item.mime_type, item.title) == ("text/markdown", "Field notes")
    assert "layout" not in item.text and "https://example.com" not in item.text and "A link and emphasis." in item.text

    html = (b"<!doctype html><html><head><title>Menu</title><style>p{color:red}</style>"
            b"<script>steal()</script></head><body><h1>Soup</h1><p>Tomato &amp; basil</p></body></html>")
    response = upload(client, "menu.html", html)
    assert response.status_code == 201, response.content
    item = Item.objects.get(pk=response.json()["id"])
    assert (item.mime_type, item.title) == ("text/html", "Menu")
    assert "Tomato & basil" in item.text and "steal" not in item.text and "color" not in item.text

    response = upload(client, "caf\u00e9_list.txt", "Caf\u00e9 au lait, cr\u00e8me br\u00fbl\u00e9e.".encode("cp1252"))
    assert response.status_code == 201, response.content
    item = Item.objects.get(pk=response.json()["id"])
    assert item.text == "Caf\u00e9 au lait, cr\u00e8me br\u00fbl\u00e9e." and item.title == "caf\u00e9 list"


def _zip_bomb() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("bomb.txt", b"0" * 50_000_000)
    return out.getvalue()


HOSTILE = [
    ("encrypted.pdf", lambda: gen.encrypted(gen.text_pdf(["secret"]), "pw"), 400, "encrypted"),
    ("bomb.pdf", lambda: gen.flate_bomb_pdf(1 << 30), 413, "too_large"),
    ("broken.pdf", lambda: b"%PDF-1.7\n" + b"\x00garbage" * 200, 400, "corrupt"),
    ("bomb.zip", _zip_bomb, 400, "unsupported_type"),
    ("random.bin", lambda: bytes(range(256)) * 64, 400, "unsupported_type"),
    ("empty.html", lambda: b"<html><body><script>only()</script></body></html>", 400, "empty"),
]


def test_a_scan_is_refused_when_text_recognition_is_off(client, settings):
    # With it on (the default), a scan is stored and its pages read in the background (test_extraction.py).
    settings.SEARCH_EXTRACT_OCR = False
    response = upload(client, "scan.pdf", gen.image_pdf(2))
    assert response.status_code == 400 and response.json()["code"] == "no_text_layer"
    assert not Item.objects.exists()


@pytest.mark.parametrize("name,make,status,code", HOSTILE, ids=[row[0] for row in HOSTILE])
def test_a_hostile_document_gets_a_clear_4xx_and_stores_nothing(client, name, make, status, code):
    before = Item.objects.count()
    response = upload(client, name, make())
    assert response.status_code == status, response.content[:300]
    assert response.json()["code"] == code and response.json()["file"][0]
    assert Item.objects.count() == before


def test_deep_nesting_and_huge_documents_end_in_time(client, settings):
    deep = b"<html><body>" + b"<div>" * 100_000 + b"deep words" + b"</div>" * 100_000 + b"</body></html>"
    response = upload(client, "deep.html", deep)
    assert response.status_code == 201, response.content[:300]
    assert Item.objects.get(pk=response.json()["id"]).text == "deep words"
    settings.SEARCH_MAX_TEXT_CHARS = 5_000
    response = upload(client, "long.txt", b"word " * 2_000)
    assert response.status_code == 413 and "5,000" in response.json()["file"][0]


def test_a_document_is_not_a_query_part(client):
    response = client.post("/api/search/", {"file": SimpleUploadedFile("q.pdf", gen.text_pdf(["hello"]))},
                           format="multipart")
    assert response.status_code == 400, response.content


def test_the_ingest_command_and_the_admin_take_documents(tmp_path, settings):
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "minutes.pdf").write_bytes(gen.text_pdf(["The minutes of the meeting."], title=""))
    (folder / "README.md").write_text("# Read me\n\nHow to **start**.")
    out = StringIO()
    call_command("ingest", str(folder), stdout=out, stderr=StringIO())
    assert "2 added" in out.getvalue(), out.getvalue()
    assert set(Item.objects.values_list("title", "mime_type")) == {("minutes", "application/pdf"),
                                                                  ("Read me", "text/markdown")}

    curator = make_user("curator", staff=True, perms=("view", "change", "add"))
    from django.test import Client

    browser = Client()
    browser.force_login(curator)
    response = browser.post("/admin/search/item/add/", {
        "file": SimpleUploadedFile("agenda.html", b"<h1>Agenda</h1><p>Item one.</p>"), "title": "", "tags": "",
        "collection": "", "caption": "",
    })
    assert response.status_code == 302, response.content.decode()[:2000]
    assert Item.objects.get(mime_type="text/html").text.startswith("Agenda")


def test_a_list_of_items_carries_the_start_of_each_long_text(client):
    from search.ingest.ingester import Ingester, IngestInput

    long = Ingester().ingest(IngestInput(text=FILLER * 40)).item
    body = client.get("/api/items/", {"modality": "text"}).json()
    row = next(row for row in body["results"] if row["id"] == long.pk)
    assert row["text_truncated"] and row["text_length"] == len(long.text) and long.text.startswith(row["text"])
    assert len(row["text"]) == 2000
    whole = client.get(f"/api/items/{long.pk}/").json()
    assert whole["text"] == long.text and not whole["text_truncated"]
