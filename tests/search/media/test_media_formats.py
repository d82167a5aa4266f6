"""Real photo and audio formats (issue 13): every format and mode of the generated corpus has its
expected outcome; photos come out upright, on white, with their capture metadata; fuzzed bytes of
the new decoders only ever raise named errors."""

import io
from datetime import UTC, datetime

import numpy as np
import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from PIL import Image
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from search.ingest.prepare import prepare_media
from search.media import FORMATS, MediaRejected, describe, sniff, thumbnail_jpeg
from search.media.image_decoding import flatten
from tests.search.media_corpus import SIZE, WHITE, camera_jpeg, corpus, jpeg_with_orientation, png_with_transparency

CASES = {case.name: case for case in corpus()}


def close(pixel, expected, tolerance):
    return all(abs(int(a) - int(b)) <= tolerance for a, b in zip(pixel, expected, strict=True))


@pytest.mark.parametrize("name", list(CASES))
def test_every_format_and_mode_has_its_expected_outcome(name):
    case = CASES[name]
    if case.mime is None:
        with pytest.raises(MediaRejected) as refused:
            prepare_media(case.data)
        assert refused.value.code == case.code, str(refused.value)
        return
    prepared = prepare_media(case.data)
    assert prepared.mime_type == case.mime
    if prepared.modality == "audio":
        assert prepared.duration == pytest.approx(1.0, abs=0.1)
        assert prepared.source_sample_rate == 48_000 and prepared.sample_rate == 16_000
        spectrum = np.abs(np.fft.rfft(prepared.waveform))
        assert abs(np.fft.rfftfreq(len(prepared.waveform), 1 / 16_000)[spectrum.argmax()] - 440) < 5
        return
    image = prepared.image
    assert image.mode == "RGB" and not image.info.get("transparency")
    assert (prepared.width, prepared.height) == case.size
    assert image.size == case.size  # small images are kept at their own size
    if case.left:
        assert close(image.getpixel((15, 30)), case.left, case.tolerance), image.getpixel((15, 30))
        assert close(image.getpixel((45, 30)), case.right, case.tolerance), image.getpixel((45, 30))
    if case.transparent_white:
        assert close(image.getpixel((2, 2)), WHITE, 12), image.getpixel((2, 2))
    assert prepared.metadata.items() >= case.metadata.items(), prepared.metadata
    Image.open(io.BytesIO(thumbnail_jpeg(image))).verify()


@pytest.mark.parametrize("mode", ["1", "L", "LA", "La", "P", "PA", "I", "I;16", "I;16L", "I;16B", "I;16N", "F",
                                  "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr", "LAB", "HSV"])
def test_every_pillow_mode_flattens_to_rgb(mode):
    image = Image.new(mode, (9, 7))
    image.info["transparency"] = 0 if mode in ("1", "L", "I", "P") else None
    flat = flatten(image)
    assert flat.mode == "RGB" and flat.size == (9, 7)
    thumbnail_jpeg(flat)


@pytest.mark.parametrize("mode", ["1", "I", "I;16", "L", "RGB"])
def test_png_transparency_chunks_no_longer_crash_the_thumbnail(mode):
    """The 500 of the outside test: PNG modes 1 and I with tRNS ("transparency for RGB must be list or tuple")."""
    prepared = prepare_media(png_with_transparency(mode))
    assert prepared.image.getpixel((2, 2)) == WHITE
    Image.open(io.BytesIO(thumbnail_jpeg(prepared.image))).verify()


def test_orientation_is_applied_to_size_pixels_and_thumbnail():
    prepared = prepare_media(jpeg_with_orientation(6))  # stored 40 x 60, shown 60 x 40
    assert (prepared.width, prepared.height) == SIZE == prepared.image.size
    thumb = Image.open(io.BytesIO(thumbnail_jpeg(prepared.image)))
    assert thumb.width > thumb.height


def test_capture_time_camera_and_lens_are_read_and_gps_only_when_allowed(settings):
    prepared = prepare_media(camera_jpeg())
    assert prepared.taken_at == datetime(2023, 7, 14, 16, 30, 5, tzinfo=UTC)
    assert prepared.metadata == {"camera_make": "Canon", "camera_model": "Canon EOS R6",
                                 "lens_model": "RF24-105mm F4 L IS USM"}
    settings.SEARCH_STORE_GPS = True
    gps = prepare_media(camera_jpeg()).metadata["gps"]
    assert gps == pytest.approx({"lat": 48.858056, "lon": -2.294444}, abs=1e-5)


def test_large_jpegs_are_decoded_reduced_but_report_their_own_size(settings):
    settings.SEARCH_IMAGE_DECODE_SIZE = 448
    big = Image.new("RGB", (4000, 3000), (30, 120, 200))
    out = io.BytesIO()
    big.save(out, format="JPEG", quality=85)
    prepared = prepare_media(out.getvalue())
    assert (prepared.width, prepared.height) == (4000, 3000)
    assert prepared.image.size == (1000, 750)  # libjpeg's 1/4 scale: the shorter side stays >= 448
    png = io.BytesIO()
    Image.new("RGBA", (3000, 2000), (0, 0, 0, 0)).save(png, format="PNG")
    prepared = prepare_media(png.getvalue())
    assert prepared.image.size == (750, 500) and prepared.image.getpixel((10, 10)) == WHITE


def test_one_allowlist_is_what_the_sniffer_the_readme_and_the_schema_know():
    from pathlib import Path

    from search.api.serializers import ItemCreateSerializer, SearchBodySerializer

    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    for fmt in FORMATS:
        assert fmt.label in readme, fmt.label
    assert sniff(camera_jpeg()[:64]) == "image/jpeg"
    for serializer in (ItemCreateSerializer(), SearchBodySerializer()):
        assert describe() in str(serializer.fields["file"].help_text)


@pytest.mark.django_db
@pytest.mark.usefixtures("fake_spaces")
def test_an_uploaded_phone_photo_is_stored_upright_with_taken_at_and_filterable():
    token = Token.objects.create(user=User.objects.create_user("u")).key
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    response = client.post("/api/items/", {"file": SimpleUploadedFile("p.jpg", camera_jpeg())}, format="multipart")
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["width"], body["height"]) == SIZE
    assert body["taken_at"].startswith("2023-07-14T16:30:05")
    assert body["metadata"]["camera_model"] == "Canon EOS R6" and "gps" not in body["metadata"]
    client.post("/api/items/", {"file": SimpleUploadedFile("q.png", png_with_transparency("L"))}, format="multipart")
    july = {"q": "photo", "taken_after": "2023-07-01T00:00:00Z", "taken_before": "2023-08-01T00:00:00Z"}
    found = APIClient().get("/api/search/", july)
    assert found.status_code == 200, found.content
    assert [hit["id"] for hit in found.json()["results"]] == [body["id"]]
    missed = APIClient().get("/api/search/", {"q": "photo", "taken_after": "2024-01-01T00:00:00Z"})
    assert missed.json()["results"] == []


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "HEIF", "AVIF", "TIFF", "JXL"])
def test_exif_orientation_is_applied_once_in_every_format_that_carries_it(fmt):
    from tests.search.media_corpus import STORED_FOR_ORIENTATION, encoded, upright

    exif = Image.Exif()
    exif[0x0112] = 6
    stored = upright().transpose(STORED_FOR_ORIENTATION[6])
    prepared = prepare_media(encoded(stored, fmt, exif=exif if fmt == "TIFF" else exif.tobytes()))
    assert (prepared.width, prepared.height) == SIZE == prepared.image.size
    assert close(prepared.image.getpixel((15, 30)), (220, 20, 20), 40)


SEEDS = [CASES[name].data[:3000] for name in ("heic", "avif", "tiff-multipage", "bmp", "jpeg2000", "jpeg-xl",
                                               "m4a-aac", "m4a-alac", "webm-opus", "jpeg-camera-exif", "png-i-trns")]


@hsettings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.one_of(
    st.builds(lambda seed, cut, noise: seed[:cut] + noise, st.sampled_from(SEEDS), st.integers(0, 3000),
              st.binary(max_size=256)),
    st.builds(lambda seed, pos, byte: seed[:pos] + bytes([byte]) + seed[pos + 1:], st.sampled_from(SEEDS),
              st.integers(0, 3000), st.integers(0, 255)),
))
def test_fuzzed_new_formats_only_ever_raise_named_validation_errors(data):
    try:
        prepared = prepare_media(data)
    except MediaRejected:
        return
    assert prepared.image is not None or (prepared.waveform is not None and len(prepared.waveform) > 0) \
        or prepared.text.strip()
    if prepared.image is not None:
        assert prepared.image.mode == "RGB"
