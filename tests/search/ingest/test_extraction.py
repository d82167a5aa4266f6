"""Words inside media (issue 27), through the REST API as a user sees them: a photo of a sign, a spoken memo and a
scanned letter are stored and searchable at once by picture and sound, and found by their words once the
extraction job has run; a tone has no transcript; the job retries, is re-run, and never half-writes an item.

The real models throughout (the demo space, the MiniLM text space, RapidOCR, Silero VAD + PocketSphinx) and the
real database; the job runs here as the worker's task would (search.jobs.runner.run).
"""

import pytest
from django.core.cache import cache
from django.core.management import call_command
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from bench import _extraction_cases as cases
from search.engine import calibration
from search.ingest import extraction
from search.jobs import runner, submit
from search.models import Embedding, EmbeddingSpace, Item, Job
from tests.search.users import make_user

pytestmark = pytest.mark.django_db

SIGN = ["PLATFORM FOUR", "TRAINS TO BOSTON"]
MEMO = "Please call me after the meeting on Tuesday morning."


@pytest.fixture(autouse=True)
def _fresh_throttles():
    cache.clear()


@pytest.fixture
def client():
    user = make_user("alice")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return api


def upload(client, name: str, data: bytes, **fields) -> dict:
    from django.core.files.uploadedfile import SimpleUploadedFile

    response = client.post("/api/items/", {"file": SimpleUploadedFile(name, data), **fields}, format="multipart")
    assert response.status_code == 201, response.content
    return response.json()


def extraction_job() -> Job:
    return Job.objects.filter(kind=Job.Kind.EXTRACT).order_by("-pk").first()


def run_extraction() -> Job:
    job = extraction_job()
    runner.run(job.pk)
    job.refresh_from_db()
    # Which spaces hold items is cached for a minute per process; a test asks at once.
    calibration.clear_cache()
    return job


def found(client, query: str, **params) -> list[dict]:
    response = client.get("/api/search/", {"q": query, "k": 5, **params})
    assert response.status_code == 200, response.content
    return response.json()["results"]


def test_a_sign_in_a_photo_is_found_by_its_words_once_the_job_has_read_them(client):
    item = upload(client, "holiday.jpg", cases.sign_picture(SIGN, seed=3))
    # Stored and embedded by its picture at once; its words wait for the background job.
    assert (item["embedding_status"], item["extraction_status"]) == ("done", "pending")
    job = extraction_job()
    assert job.params["items"] == [item["id"]] and job.total == 1
    assert item["id"] not in [hit["id"] for hit in found(client, "boston", mode="lexical")]

    job = run_extraction()
    assert (job.status, job.processed, job.succeeded, job.failed) == ("done", 1, 1, 0)

    detail = client.get(f"/api/items/{item['id']}/").json()
    assert detail["extraction_status"] == "done"
    assert "BOSTON" in detail["extracted_text"] and "PLATFORM" in detail["extracted_text"]
    lines = detail["extraction"]["lines"]
    assert all(len(line["box"]) == 4 and 0.6 <= line["confidence"] <= 1 for line in lines)
    # Its words are its vectors in the text space (the demo space sees the picture itself).
    text_space = EmbeddingSpace.objects.get(name="text")
    assert Embedding.objects.filter(item_id=item["id"], space=text_space, segment_start__isnull=True).exists()

    for mode in ("vector", "hybrid", "lexical"):
        hits = found(client, "trains to boston", mode=mode)
        hit = next((hit for hit in hits if hit["id"] == item["id"]), None)
        assert hit is not None, (mode, hits)
        assert hit["matched_in"] == "text_in_picture"
        assert "BOSTON" in hit["words"]["text"]
        if mode != "vector":
            marked = [hit["words"]["text"][a:b] for a, b in hit["words"]["highlights"]]
            assert "BOSTON" in marked
        # The line's box, as fractions of the picture.
        assert hit["words"]["boxes"] and all(0 <= v <= 1 for box in hit["words"]["boxes"] for v in box)

    # The result card says where it matched, marks the words, and boxes them on the preview.
    from django.test import Client

    html = Client().post("/results/", {"q": "boston", "mode": "hybrid"}).content.decode()
    assert "Text in the picture:" in html and "<mark>BOSTON</mark>" in html and 'class="word-box"' in html
    page = Client().get(f"/items/{item['id']}/").content.decode()
    assert "Text in it" in page and "TRAINS TO BOSTON" in page


@pytest.mark.skipif(not cases.espeak_available(), reason="espeak-ng makes the test speech")
def test_a_spoken_memo_is_found_by_a_word_said_and_the_hit_starts_where_it_is_said(client):
    item = upload(client, "memo.wav", cases.spoken_wav(MEMO, lead_seconds=2.0), title="Voice memo 12")
    assert item["extraction_status"] == "pending"
    assert run_extraction().status == "done"
    detail = client.get(f"/api/items/{item['id']}/").json()
    words = detail["extraction"]["words"]
    assert words and all(a["start"] <= b["start"] for a, b in zip(words, words[1:], strict=False))
    said = next(word for word in words if word["text"] == "tuesday")
    assert said["start"] > 2.0  # after the silence before the memo

    # By its words (one is enough), and by their meaning (a single word is too little meaning for the cutoff).
    for mode, query in (("lexical", "tuesday"), ("hybrid", "tuesday"), ("vector", "the meeting on tuesday")):
        hit = next(hit for hit in found(client, query, mode=mode) if hit["id"] == item["id"])
        assert hit["matched_in"] == "speech"
        assert hit["moment"] == hit["words"]["moment"]
        marked = [hit["words"]["text"][a:b] for a, b in hit["words"]["highlights"]]
        assert "tuesday" in marked
        first = next(word for word in words if word["text"] in marked)
        # The player starts just before the first of the query's words said there, and the moment holds it.
        assert hit["moment"]["start"] <= first["start"] < first["end"] <= hit["moment"]["end"] + 0.01
        assert first["start"] - hit["moment"]["start"] < 0.5


@pytest.mark.skipif(not cases.espeak_available(), reason="espeak-ng makes the test speech")
def test_the_card_of_a_memo_plays_from_where_the_word_is_said(client):
    item = upload(client, "memo.wav", cases.spoken_wav(MEMO, lead_seconds=2.0))
    run_extraction()
    from django.test import Client

    html = Client().post("/results/", {"q": "tuesday", "mode": "hybrid"}).content.decode()
    said = next(word for word in Item.objects.get(pk=item["id"]).extraction["words"] if word["text"] == "tuesday")
    assert "Said at 0:0" in html and "<mark>tuesday</mark>" in html
    start = float(html.split(f'{Item.objects.get(pk=item["id"]).media.name}#t=')[1].split('"')[0])
    assert said["start"] - 0.5 < start <= said["start"]
    # The item's page shows what is said, each stretch with the second it starts.
    page = Client().get(f"/items/{item['id']}/").content.decode()
    assert "What is said" in page and "meeting on tuesday" in page


def test_a_tone_has_no_transcript(client):
    item = upload(client, "tone.wav", cases.tone_wav(4.0, chord=True))
    assert run_extraction().status == "done"
    detail = client.get(f"/api/items/{item['id']}/").json()
    assert (detail["extraction_status"], detail["extracted_text"]) == ("done", "")
    assert detail["extraction"]["words"] == []
    assert not Embedding.objects.filter(item_id=item["id"], space__name="text").exists()


# Other things in the collection, so that "unrelated" has a meaning for the relevance of a text (a lone text is
# judged against itself).
EVERYDAY = ["The ferry timetable changes in winter.", "Grandmother's recipe for apple pie with cinnamon.",
            "Notes from the football club's annual dinner.", "How to repot a cactus without gloves.",
            "The cat sleeps on the warm windowsill all afternoon.", "Instructions for the new dishwasher.",
            "A poem about the sea at night.", "Minutes of the residents' association meeting."]


def test_an_image_only_pdf_is_stored_and_found_by_the_words_on_its_page(client):
    for text in EVERYDAY:
        assert client.post("/api/items/", {"text": text}, format="json").status_code == 201
    lines, word = cases.LETTER
    item = upload(client, "letter.pdf", cases.scanned_pdf([lines]))  # was 400 no_text_layer
    assert (item["modality"], item["text"], item["extraction_status"]) == ("text", "", "pending")
    assert run_extraction().status == "done"
    stored = Item.objects.get(pk=item["id"])
    assert "invoice" in stored.extracted_text.lower() and stored.embedding_status == "done"
    # Embedded from the words read, in every space that reads text.
    assert set(Embedding.objects.filter(item=stored, segment_start__isnull=True).values_list("space__name",
                                                                                           flat=True)) == {"demo",
                                                                                                           "text"}
    for mode, query in (("lexical", word), ("hybrid", word), ("vector", "thank you for the invoice")):
        hit = next(hit for hit in found(client, query, mode=mode) if hit["id"] == item["id"])
        assert hit["matched_in"] == "text_in_picture" and hit["words"]["page"] == 1
        assert "invoice" in hit["words"]["text"].lower()


def test_the_job_retries_after_an_error_and_can_be_run_again(client, monkeypatch):
    item = upload(client, "sign.jpg", cases.sign_picture(["FRESH BREAD", "OPEN DAILY"], seed=1))
    job = extraction_job()
    real_request = extraction.request  # what every reading path asks the storage and the child for
    calls = []

    def flaky(stored):
        calls.append(stored.pk)
        if len(calls) == 1:
            raise RuntimeError("the database went away")
        return real_request(stored)

    monkeypatch.setattr(extraction, "request", flaky)
    with pytest.raises(RuntimeError):
        runner.run(job.pk, final_attempt=False)
    job.refresh_from_db()
    assert job.status == "queued" and "retrying after" in job.error
    assert Item.objects.get(pk=item["id"]).extraction_status == "pending"
    runner.run(job.pk)  # the retry
    job.refresh_from_db()
    assert (job.status, job.attempts, job.succeeded) == ("done", 2, 1)
    assert "BREAD" in Item.objects.get(pk=item["id"]).extracted_text

    # Re-run from the admin's action (the same submit), and by the command.
    again = submit.submit_extract([item["id"]], missing_only=False)
    assert again.pk != job.pk and Item.objects.get(pk=item["id"]).extraction_status == "pending"
    runner.run(again.pk)
    assert Item.objects.get(pk=item["id"]).extraction_status == "done"
    Item.objects.filter(pk=item["id"]).update(extraction_status="failed", extraction_error="earlier failure")
    call_command("extract", "--missing-only", verbosity=0)
    stored = Item.objects.get(pk=item["id"])
    assert (stored.extraction_status, stored.extraction_error) == ("done", "")
    assert "BREAD" in stored.extracted_text


def test_a_failure_while_storing_leaves_the_item_as_it_was(client, monkeypatch):
    item = upload(client, "sign.jpg", cases.sign_picture(["NO PARKING", "TOW AWAY ZONE"], seed=2))
    run_extraction()
    before = Item.objects.get(pk=item["id"])
    vectors = Embedding.objects.filter(item_id=item["id"]).count()
    assert "PARKING" in before.extracted_text and vectors

    job = submit.submit_extract([item["id"]], missing_only=False)
    monkeypatch.setattr(extraction, "extracted",  # what the child read, on every reading path
                        lambda header, answer: extraction.Extracted("SOMETHING ELSE", {"lines": []}))

    def broken(space, rows):
        raise OSError("disk full")

    monkeypatch.setattr(extraction, "write_vectors", broken)
    runner.run(job.pk)  # its last attempt: the job fails
    job.refresh_from_db()
    assert job.status == "failed" and "disk full" in job.error
    after = Item.objects.get(pk=item["id"])
    assert after.extracted_text == before.extracted_text  # the words read before, still searchable
    assert Embedding.objects.filter(item_id=item["id"]).count() == vectors
    assert item["id"] in [hit["id"] for hit in found(client, "parking", mode="lexical")]


def test_an_unreadable_item_fails_alone_with_its_reason(client):
    good = upload(client, "sign.jpg", cases.sign_picture(["GARDEN CAFE"], seed=4))
    bad = upload(client, "other.jpg", cases.sign_picture(["HARBOUR MUSEUM"], seed=5))
    stored = Item.objects.get(pk=bad["id"])
    with open(stored.media.path, "wb") as handle:
        handle.write(b"not a picture any more")
    job = submit.submit_extract([good["id"], bad["id"]])
    runner.run(job.pk)
    job.refresh_from_db()
    assert (job.status, job.succeeded, job.failed) == ("done", 1, 1)
    failed = Item.objects.get(pk=bad["id"])
    assert failed.extraction_status == "failed" and failed.extraction_error
    assert Item.objects.get(pk=good["id"]).extraction_status == "done"


def test_reading_words_attempts_no_outside_connection(client, monkeypatch):
    import os
    import socket

    assert os.environ.get("ORT_DISABLE_TELEMETRY") == "1"  # set by the settings, in every process of the product
    outside = []
    connect = socket.socket.connect

    def watched(sock, address):
        host = address[0] if isinstance(address, tuple) else address
        if sock.family != socket.AF_UNIX and host not in ("127.0.0.1", "::1", "localhost"):
            outside.append(address)
        return connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", watched)
    item = upload(client, "sign.jpg", cases.sign_picture(["EMERGENCY EXIT"], seed=6))
    assert run_extraction().status == "done"
    assert "EXIT" in Item.objects.get(pk=item["id"]).extracted_text
    assert outside == []


def test_a_curator_corrects_the_words_and_the_item_is_found_by_the_correction(client):
    item = upload(client, "sign.jpg", cases.sign_picture(["GARDEN CAFE", "COFFEE AND CAKE"], seed=7))
    url = f"/api/items/{item['id']}/"
    assert client.patch(url, {"extracted_text": "too early"}, format="json").status_code == 400  # still reading
    run_extraction()
    lines = client.get(url).json()["extraction"]["lines"]
    corrected = "\n".join(line["text"].replace("CAFE", "CAFETERIA") for line in lines)
    response = client.patch(url, {"extracted_text": corrected}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["extracted_text"] == corrected
    detail = client.get(url).json()["extraction"]
    assert detail["corrected"] and all(line["box"] for line in detail["lines"])  # same lines: boxes kept
    hit = next(hit for hit in found(client, "cafeteria", mode="lexical") if hit["id"] == item["id"])
    assert hit["matched_in"] == "text_in_picture" and "CAFETERIA" in hit["words"]["text"]
    # A text has no words read from it to correct.
    text = client.post("/api/items/", {"text": "a plain note"}, format="json").json()
    assert client.patch(f"/api/items/{text['id']}/", {"extracted_text": "x"}, format="json").status_code == 400


def test_one_extraction_job_per_batch_whichever_way_it_came(client, tmp_path):
    from django.core.files.uploadedfile import SimpleUploadedFile

    # A batch upload: its job stores the files, then queues one job for the words of those that have some.
    files = [SimpleUploadedFile(f"s{n}.jpg", cases.sign_picture([f"GATE {n}"], seed=10 + n)) for n in range(2)]
    batch = client.post("/api/items/batch/", {"file": files}, format="multipart")
    assert batch.status_code == 202, batch.content
    assert not Job.objects.filter(kind=Job.Kind.EXTRACT).exists()
    runner.run(batch.json()["id"])
    [job] = Job.objects.filter(kind=Job.Kind.EXTRACT)
    assert len(job.params["items"]) == 2 and job.total == 2

    # A folder through `manage.py ingest`: one more job for all of it; texts have nothing to read.
    folder = tmp_path / "photos"  # beside the test's media folder, not over it
    folder.mkdir()
    for n in range(2):
        (folder / f"p{n}.jpg").write_bytes(cases.sign_picture([f"ROOM {n}"], seed=20 + n))
    (folder / "note.txt").write_text("a plain note")
    call_command("ingest", str(folder), verbosity=0)
    latest = extraction_job()
    assert latest.pk != job.pk and len(latest.params["items"]) == 2
    assert Item.objects.get(text="a plain note").extraction_status == "none"


def test_each_reader_can_be_turned_off(client, settings):
    settings.SEARCH_EXTRACT_SPEECH = False
    item = upload(client, "tone.wav", cases.tone_wav(2.0))
    assert item["extraction_status"] == "none" and extraction_job() is None
    settings.SEARCH_EXTRACT_OCR = False
    item = upload(client, "sign.jpg", cases.sign_picture(["NO ENTRY"], seed=9))
    assert item["extraction_status"] == "none" and extraction_job() is None
