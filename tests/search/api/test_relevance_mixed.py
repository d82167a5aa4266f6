"""The relevance cutoff in a mixed collection (issue 26), through the REST API with the default spaces and
settings: a demo world (the training generator's look, as `loaddemo` stores it) next to files this machine has
that the demo model never saw (pages of text drawn with its fonts, README files). No golden set. The unrelated
queries are other files still: the pictures in /usr/share/doc and sentences spoken by espeak-ng.

Broad one-attribute queries must list everything that fits and little else; precise ones their few matches
first; sentences, pictures and recordings from outside the demo world must get "no close match".
"""

import glob
import json

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from rest_framework.test import APIClient

from encoders.demo import synth
from search.engine import calibration
from search.ingest.ingester import Ingester, IngestInput
from search.models import Item, Job
from tests.search.api import relevance_worlds as worlds

pytestmark = pytest.mark.django_db


def readme_texts(n: int) -> list[str]:
    paths = sorted(p for p in glob.glob("/usr/share/doc/*/README*") if not p.endswith(".gz"))
    texts = []
    for path in paths:
        try:
            text = open(path, encoding="utf-8").read()
        except (OSError, UnicodeDecodeError):
            continue
        if len(text) > 600:
            texts.append(text[:4000])
    if len(texts) < n:
        pytest.skip(f"this machine has {len(texts)} README files in /usr/share/doc; {n} wanted")
    return texts[:n]


@pytest.fixture(scope="module")
def mixed(django_db_setup, django_db_blocker, tmp_path_factory):
    """The demo world and the unrelated files, stored once for the module (committed, then removed)."""
    folder = tmp_path_factory.mktemp("demo")
    manifest = synth.write_dataset(folder, n_images=128, n_audio=60, n_texts=40, seed=2611)
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    with django_db_blocker.unblock():
        from django.conf import settings

        assert not Item.objects.exists()
        media = settings.MEDIA_ROOT
        settings.MEDIA_ROOT = tmp_path_factory.mktemp("media")
        try:
            call_command("ingest", str(manifest), verbosity=0)
            keys = {}
            for item in Item.objects.all():
                labels = next(row["labels"] for row in rows if row["title"] == item.title)
                keys[item.pk] = (f"{labels['colour']} {labels['shape']}" if "colour" in labels
                                 else f"{labels['pitch']} {labels['kind']}")
            others = [IngestInput(data=data, title=name) for name, data in worlds.text_pages(8)]
            others += [IngestInput(text=text, title=f"readme {n}") for n, text in enumerate(readme_texts(20))]
            for outcome in Ingester().ingest_many(others):
                assert outcome.item is not None, outcome.error
                keys[outcome.item.pk] = "unrelated"
            calibration.clear_cache()
            yield keys
        finally:
            Item.objects.all().delete()
            Job.objects.all().delete()  # the extract jobs its uploads queued: later tests start with none
            calibration.clear_cache()
            settings.MEDIA_ROOT = media


def search(**body) -> dict:
    response = APIClient().post("/api/search/", body, format="json")
    assert response.status_code == 200, response.content[:300]
    return response.json()


def search_file(name: str, data: bytes) -> dict:
    response = APIClient().post("/api/search/", {"file": SimpleUploadedFile(name, data), "k": 10},
                                format="multipart")
    assert response.status_code == 200, response.content[:300]
    return response.json()


BROAD = [(f"something {colour}", "image", lambda key, c=colour: key.split()[0] == c) for colour in
         ("red", "blue", "yellow", "purple")]
BROAD += [(f"a {shape}", "image", lambda key, s=shape: key.split()[-1] == s) for shape in
          ("circle", "square", "star", "crescent")]
BROAD += [(phrase, "audio", lambda key, k=kind: key.split()[-1] == k) for phrase, kind in
          (("a chord", "chord"), ("noise", "noise"), ("beeping", "beeps"), ("a sweep", "sweep"))]


def test_a_broad_query_lists_everything_that_fits_and_little_else(mixed):
    """Before issue 26: "circle" showed 1 of 20 circles, recall above the cutoff 0.09 over such queries."""
    found = relevant = shown = right = 0
    for text, modality, fits in BROAD:
        body = search(q=text, modality=[modality], k=100)
        wanted = {pk for pk, key in mixed.items() if key != "unrelated" and fits(key)
                  and Item.objects.filter(pk=pk, modality=modality).exists()}
        ids = [hit["id"] for hit in body["results"]]
        found += len(wanted.intersection(ids))
        relevant += len(wanted)
        shown += len(ids)
        right += sum(pk in wanted for pk in ids)
    recall, precision = found / relevant, right / max(shown, 1)
    assert recall >= 0.9 and precision >= 0.9, (recall, precision)


def test_a_precise_query_shows_its_matches_first(mixed):
    rng = np.random.default_rng(2612)
    on_topic = []
    kinds = worlds.image_kinds(12, seed=2613)
    sounds = worlds.sound_kinds(8, seed=2614)
    queries = [(worlds.describe_picture(rng, c, s), f"{c} {s}", "image") for c, s in kinds]
    queries += [(worlds.describe_sound(rng, k, p), f"{p} {k}", "audio") for k, p in sounds]
    for text, key, modality in queries:
        shown = [mixed[hit["id"]] for hit in search(q=text, modality=[modality], k=5)["results"]]
        if shown:
            on_topic.append(sum(k == key for k in shown) / len(shown))
    assert len(on_topic) >= 0.9 * len(queries) and np.mean(on_topic) >= 0.9, on_topic


def test_sentences_from_outside_the_demo_world_get_no_close_match(mixed):
    """Before issue 26: 0.00 in such a collection (its documents and real files answered every sentence). Over
    everything the demo space holds (captions, README files, pages of text, pictures, sounds), and over the
    pictures and sounds with the default spaces. (The text space of issue 25 judges texts by its own model,
    which reads "beekeeping" near "beeps": docs/relevance.md.)"""
    sentences = worlds.out_of_domain(60, seed=2615)
    refused = [not search(q=text, k=10, space="demo")["results"] for text in sentences]
    assert np.mean(refused) >= 0.9, np.mean(refused)
    refused = [not search(q=text, k=10, modality=["image", "audio"])["results"] for text in sentences]
    assert np.mean(refused) >= 0.9, np.mean(refused)


def test_unrelated_pictures_and_recordings_get_no_close_match(mixed):
    """Before issue 26 a photo matched green crosses at relevance 0.94, and a diagram noise sounds at 0.91."""
    pictures = [search_file("photo.png", data) for _, data in worlds.unrelated_pictures(12)]
    assert np.mean([not body["results"] for body in pictures]) >= 0.9, [
        [(hit["title"], hit["relevance"]) for hit in body["results"][:2]] for body in pictures]
    voices = [search_file("voice.wav", data) for _, data in worlds.speech(8)]
    assert np.mean([not body["results"] for body in voices]) >= 0.9




