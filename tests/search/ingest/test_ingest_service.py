"""The ingestion service: validate, deduplicate, store and embed, atomically."""

from pathlib import Path

import numpy as np
import pytest
from django.conf import settings
from PIL import Image

from search.ingest import ingester, item_vectors
from search.ingest.ingester import Ingester, IngestInput
from search.media import CorruptMedia, EmptyContent, MediaRejected, MediaTooLarge, UnsupportedMediaType
from search.models import Embedding, Item
from tests.search.helpers import jpeg_with_gps, png_bytes, truncated, wav_bytes

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fake_spaces")]


def media_files() -> list[Path]:
    root = Path(settings.MEDIA_ROOT)
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def test_text_item_is_stored_with_its_vector():
    source = IngestInput(text="  a red circle at dusk ", title="Dusk", tags=["Red", "red", " shape"])
    outcome = Ingester().ingest(source)
    item = outcome.item
    assert outcome.status == "added"
    assert (item.modality, item.text, item.title, item.embedding_status) == ("text", "a red circle at dusk", "Dusk",
                                                                           "done")
    assert item.tags == ["red", "shape"]
    [vector] = item.embeddings.all()
    assert len(vector.vector) == 32
    # stored at half precision (halfvec): 11 significant bits a component
    assert np.linalg.norm(np.asarray(vector.vector, dtype=np.float32)) == pytest.approx(1.0, abs=1e-3)


def test_image_item_stores_file_thumbnail_and_dimensions():
    data = png_bytes(size=(640, 480))
    item = Ingester().ingest(IngestInput(data=data, title="red", caption="a red square")).item
    assert (item.modality, item.mime_type, item.width, item.height, item.byte_size) == (
        "image", "image/png", 640, 480, len(data))
    assert Path(item.media.path).read_bytes() == data
    with Image.open(item.preview.path) as thumb:
        assert max(thumb.size) == 320
    assert item.embeddings.count() == 1


def test_audio_item_has_duration_preview_and_vector():
    item = Ingester().ingest(IngestInput(data=wav_bytes(seconds=2.5, sr=22050))).item
    assert (item.modality, item.mime_type, item.sample_rate) == ("audio", "audio/wav", 22050)
    assert item.duration == pytest.approx(2.5, abs=0.01)
    assert Path(item.preview.path).exists()
    assert item.embeddings.filter(segment_start__isnull=True).count() == 1


def test_derivatives_carry_no_exif_or_gps():
    item = Ingester().ingest(IngestInput(data=jpeg_with_gps())).item
    with Image.open(item.preview.path) as thumb:
        assert not thumb.getexif()
        assert "exif" not in thumb.info


def test_the_same_content_twice_is_one_item():
    ingester = Ingester()
    first = ingester.ingest(IngestInput(data=png_bytes(), title="first"))
    second = ingester.ingest(IngestInput(data=png_bytes(), title="second"))
    assert (first.status, second.status) == ("added", "present")
    assert second.item.pk == first.item.pk and second.item.title == "first"
    assert Item.objects.count() == 1 and Embedding.objects.count() == 1


def test_duplicates_within_one_batch_are_one_item():
    outcomes = Ingester().ingest_many([IngestInput(text="same"), IngestInput(text="same"), IngestInput(text="other")])
    assert [o.status for o in outcomes] == ["added", "present", "added"]
    assert outcomes[1].item.pk == outcomes[0].item.pk
    assert Item.objects.count() == 2


@pytest.mark.parametrize(
    ("data", "error", "message"),
    [
        (b"", EmptyContent, "empty"),
        (b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>", UnsupportedMediaType,
         "unsupported file type"),
        (b"%!PS-Adobe-3.0 EPSF-3.0\n", UnsupportedMediaType, "unsupported file type"),
        (truncated(png_bytes(size=(300, 300)), 0.3), CorruptMedia, "image"),
        (truncated(wav_bytes(seconds=1.0), 0.002), CorruptMedia, "audio"),
        (b"\x89PNG\r\n\x1a\n" + b"garbage" * 10, CorruptMedia, "cannot be read"),
    ],
    ids=["empty", "svg", "eps", "truncated-png", "truncated-wav", "fake-png-header"],
)
def test_bad_files_are_refused_with_a_named_error_and_leave_nothing(data, error, message):
    with pytest.raises(error, match=message):
        Ingester().ingest(IngestInput(data=data))
    assert Item.objects.count() == 0 and media_files() == []


def test_caps_are_enforced(settings):
    settings.SEARCH_MAX_UPLOAD_BYTES = 1000
    with pytest.raises(MediaTooLarge, match="limit is 1,000 bytes"):
        Ingester().ingest(IngestInput(data=png_bytes(size=(400, 400), seed=3) + b"\0" * 2000))
    settings.SEARCH_MAX_UPLOAD_BYTES = 10_000_000
    settings.SEARCH_MAX_IMAGE_PIXELS = 100 * 100
    with pytest.raises(MediaTooLarge, match="pixels"):
        Ingester().ingest(IngestInput(data=png_bytes(size=(200, 100))))
    settings.SEARCH_MAX_AUDIO_SECONDS = 1
    with pytest.raises(MediaTooLarge, match="lasts"):
        Ingester().ingest(IngestInput(data=wav_bytes(seconds=3)))
    settings.SEARCH_MAX_TEXT_CHARS = 10
    with pytest.raises(MediaTooLarge, match="characters"):
        Ingester().ingest(IngestInput(text="x" * 11))
    assert Item.objects.count() == 0


def test_metadata_must_be_an_object():
    with pytest.raises(MediaRejected, match="metadata must be a JSON object"):
        Ingester().ingest(IngestInput(text="hello", metadata=["not", "an", "object"]))


def test_a_crash_between_file_write_and_commit_leaves_no_file_and_no_row(monkeypatch):
    def explode(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(ingester, "write_vectors", explode)
    with pytest.raises(RuntimeError, match="disk on fire"):
        Ingester().ingest(IngestInput(data=png_bytes(seed=7)))
    assert Item.objects.count() == 0
    assert media_files() == []


def test_orphan_files_from_a_killed_run_are_swept():
    orphan = Path(settings.MEDIA_ROOT) / "items" / "ab" / ("ab" * 32 + ".png")
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(b"left behind")
    kept = Ingester().ingest(IngestInput(data=png_bytes(seed=8))).item
    removed = ingester.sweep_orphan_files()
    assert removed == ["items/ab/" + "ab" * 32 + ".png"]
    assert Path(kept.media.path).exists() and Path(kept.preview.path).exists()


def test_an_encoder_failure_keeps_the_item_as_failed_and_it_can_be_retried(monkeypatch):
    real = item_vectors._encode

    def flaky(encoder, modality, contents):
        if any("poison" in c for c in contents):
            raise ValueError("encoder blew up")
        return real(encoder, modality, contents)

    monkeypatch.setattr(item_vectors, "_encode", flaky)
    outcomes = Ingester().ingest_many([IngestInput(text="fine"), IngestInput(text="poison pill")])
    good, bad = (o.item for o in outcomes)
    assert good.embedding_status == "done" and good.embeddings.count() == 1
    assert bad.embedding_status == "failed" and "encoder blew up" in bad.embedding_error
    assert bad.embeddings.count() == 0

    monkeypatch.setattr(item_vectors, "_encode", real)
    from search.ingest.backfill import embed_space

    counts = embed_space("fake", missing_only=True)
    bad.refresh_from_db()
    assert counts == {"embedded": 1, "failed": 0}
    assert bad.embedding_status == "done" and bad.embedding_error == "" and bad.embeddings.count() == 1
