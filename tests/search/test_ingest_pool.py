"""Bulk ingest with a pool of decode workers: the same outcomes, in the same order, as in-process."""

import pytest

from search.ingest import Ingester, IngestInput
from search.models import Item
from tests.search.helpers import png_bytes, truncated, wav_bytes
from tests.search.media_corpus import camera_jpeg

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fake_spaces")]


def inputs():
    good = png_bytes(seed=11)
    return [
        IngestInput(data=good, source="good.png"),
        IngestInput(data=truncated(png_bytes(size=(200, 200), seed=12), 0.4), source="corrupt.png"),
        IngestInput(text="a humming drone", source="note"),
        IngestInput(data=good, source="twin.png"),
        IngestInput(data=wav_bytes(seconds=2), source="long.wav"),
        IngestInput(data=camera_jpeg(), source="camera.jpg"),
        IngestInput(data=bytes(range(256)) * 8, source="mystery.bin"),
        IngestInput(data=wav_bytes(seconds=0.5, freq=880), source="beep.wav"),
    ]


def summary(outcomes):
    return [(o.source, o.status, o.code) for o in outcomes]


def test_a_pool_gives_the_outcomes_of_in_process_decoding_in_input_order(settings):
    settings.SEARCH_MAX_AUDIO_SECONDS = 1  # the workers must apply the caps of this process
    in_process = summary(Ingester(batch_size=3).ingest_many(inputs()))
    Item.objects.all().delete()
    with Ingester(batch_size=3, workers=2) as ingester:
        pooled = ingester.ingest_many(inputs())
    assert summary(pooled) == in_process
    assert [status for _, status, _ in in_process] == [
        "added", "failed", "added", "present", "failed", "added", "failed", "added"]
    assert dict((s, c) for s, _, c in in_process)["long.wav"] == "too_large"
    camera = next(o.item for o in pooled if o.source == "camera.jpg")
    assert camera.taken_at is not None and camera.metadata["camera_make"] == "Canon"
    assert camera.preview and camera.media
    assert Item.objects.count() == 4
