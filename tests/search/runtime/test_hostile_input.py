"""Hostile uploads and requests: each refused with a clear 4xx or a named error, never a crash."""

import io
import tempfile
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from PIL import Image
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from search.ingest.ingester import Ingester, IngestInput
from search.ingest.prepare import prepare_media
from search.media import MediaRejected
from search.media import audio as media_audio
from search.models import Item
from tests.search.helpers import png_bytes, wav_bytes

SEEDS = [png_bytes(size=(32, 24), seed=1), wav_bytes(seconds=0.3), b"fLaC\x00\x00\x00\x22", b"OggS\x00\x02",
         b"ID3\x04\x00\x00\x00\x00\x00\x00", b"GIF89a\x01\x00\x01\x00", b"RIFF\x24\x00\x00\x00WEBPVP8 "]


@hsettings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.one_of(
    st.binary(max_size=4096),
    st.builds(lambda seed, cut, noise: seed[:cut] + noise, st.sampled_from(SEEDS), st.integers(0, 400),
              st.binary(max_size=512)),
    st.builds(lambda seed, pos, byte: seed[:pos] + bytes([byte]) + seed[pos + 1:], st.sampled_from(SEEDS),
              st.integers(0, 300), st.integers(0, 255)),
))
def test_fuzzed_bytes_only_ever_raise_named_validation_errors(data):
    try:
        media = prepare_media(data)
    except MediaRejected:
        return
    # Whatever passed validation is fully decoded and usable: pixels, samples, or a document's text.
    assert media.modality in ("image", "audio", "text")
    assert media.image is not None or (media.waveform is not None and len(media.waveform) > 0) or media.text.strip()


def test_a_decompression_bomb_is_refused_before_decoding(settings):
    # 20,000 x 20,000 pixels of one colour: a few hundred KB as PNG, 1.2 GB once decoded.
    settings.SEARCH_MAX_IMAGE_PIXELS = 40_000_000
    out = io.BytesIO()
    Image.new("1", (20_000, 20_000)).save(out, format="PNG")
    with pytest.raises(MediaRejected, match="pixels"):
        prepare_media(out.getvalue())


def test_long_or_high_rate_audio_is_refused_from_its_header_before_decoding(settings, monkeypatch):
    pass

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded audio that the header alone should have refused")

    monkeypatch.setattr(media_audio, "decode_audio", no_decoding)
    settings.SEARCH_MAX_AUDIO_SECONDS = 60
    with pytest.raises(MediaRejected, match="lasts 90.0 s; the limit is 60 s"):
        prepare_media(wav_bytes(seconds=90, sr=8000))
    settings.SEARCH_MAX_AUDIO_SAMPLE_RATE = 48_000
    with pytest.raises(MediaRejected, match="96000 Hz"):
        prepare_media(wav_bytes(seconds=0.1, sr=96_000))


def test_a_playlist_disguised_as_mp3_opens_nothing(monkeypatch):
    import socket
    import subprocess

    def forbidden(*args, **kwargs):
        raise AssertionError("the validator tried to open a connection or start a program")

    monkeypatch.setattr(socket, "create_connection", forbidden)
    monkeypatch.setattr(subprocess, "Popen", forbidden)
    playlist = b"#EXTM3U\n#EXTINF:123,Sample\nhttp://127.0.0.1:9/evil.mp3\n/etc/passwd\n"
    with pytest.raises(MediaRejected, match="unsupported file type"):
        prepare_media(playlist, filename="song.mp3")
    # Without a media name it is what it is, a short text (documents are text items), and nothing is fetched.
    assert prepare_media(playlist, filename="list.m3u").text.startswith("#EXTM3U")
    with pytest.raises(MediaRejected):
        prepare_media(b"ID3\x03\x00\x00\x00\x00\x00\x10" + playlist)


@pytest.mark.django_db
@pytest.mark.usefixtures("fake_spaces")
def test_html_in_titles_is_stored_verbatim_and_escaped_in_pages(client):
    item = Ingester().ingest(IngestInput(text="plain text", title="<script>alert('x')</script>")).item
    assert item.title == "<script>alert('x')</script>"
    response = client.get("/", {"q": "plain text"})
    assert b"<script>alert('x')</script>" not in response.content


@pytest.mark.django_db
@pytest.mark.usefixtures("fake_spaces")
def test_an_oversized_upload_is_refused_by_its_length_without_reading_it(settings):
    settings.SEARCH_MAX_UPLOAD_BYTES = 100_000
    user_token = Token.objects.create(user=__import__("django.contrib.auth.models", fromlist=["User"]).User
                                      .objects.create_user("u")).key
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {user_token}")
    before = set(Path(tempfile.gettempdir()).glob("*.upload*"))
    big = SimpleUploadedFile("big.wav", b"RIFF" + b"\0" * 400_000)
    response = client.post("/api/items/", {"file": big}, format="multipart")
    assert response.status_code == 413
    assert "limited to 100,000 bytes" in response.json()["detail"]
    assert set(Path(tempfile.gettempdir()).glob("*.upload*")) == before
    assert Item.objects.count() == 0


@pytest.mark.django_db
@pytest.mark.usefixtures("fake_spaces")
def test_an_upload_over_the_cap_is_cut_off_while_streaming(settings):
    from django.contrib.auth.models import User

    settings.SEARCH_MAX_UPLOAD_BYTES = 100_000
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=User.objects.create_user('v')).key}")
    # Under the Content-Length allowance (cap + form overhead), but the file alone is over the cap.
    response = client.post("/api/items/", {"file": SimpleUploadedFile("x.png", b"\x89PNG" + b"\0" * 120_000)},
                           format="multipart")
    assert response.status_code == 413
    assert "larger than the 100,000-byte limit" in response.json()["detail"]


def test_nul_bytes_in_query_parameters_get_400(client):
    response = client.get("/api/search/", {"q": "a\x00b"})
    assert response.status_code == 400
    assert "NUL" in response.json()["detail"]


@pytest.mark.django_db
def test_media_is_served_with_nosniff_and_only_allowlisted_types(settings, tmp_path, client, fake_spaces):
    settings.MEDIA_ROOT = tmp_path
    item = Ingester().ingest(IngestInput(data=png_bytes())).item
    (tmp_path / "items" / "evil.html").write_text("<script>alert(1)</script>")
    # A file that belongs to no item (left by hand, or by a crash) is not served either.
    (tmp_path / "items" / "stray.png").write_bytes(png_bytes(seed=4))
    assert client.get("/media/items/stray.png").status_code == 404
    ok = client.get(f"/media/{item.media.name}")
    assert ok.status_code == 200
    assert ok["Content-Type"] == "image/png" and ok["X-Content-Type-Options"] == "nosniff"
    assert client.get("/media/items/evil.html").status_code == 404
    assert client.get("/media/../search/settings.py").status_code == 404
