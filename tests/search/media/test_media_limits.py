"""Audio and images that explode in memory: caps from the header before decoding, block decoding,
a short cap for query clips, and one request's memory bounded (issue 11, item 1)."""

import io
import json
import subprocess
import sys
import textwrap
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import soundfile
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from search.ingest.prepare import prepare_media
from search.media import MediaTooLarge
from search.media import audio as media_audio
from tests.search.helpers import wav_bytes

ROOT = Path(__file__).resolve().parents[3]


def flac_bytes(seconds: float, sr: int, channels: int, amplitude: int = 0) -> bytes:
    rng = np.random.default_rng(0)
    frames = int(seconds * sr)
    out = io.BytesIO()
    with soundfile.SoundFile(out, "w", samplerate=sr, channels=channels, format="FLAC", subtype="PCM_16") as f:
        for start in range(0, frames, sr * 5):
            n = min(sr * 5, frames - start)
            f.write(rng.integers(-amplitude, amplitude + 1, size=(n, channels)).astype(np.int16))
    return out.getvalue()


def claim_frames(flac: bytes, frames: int) -> bytes:
    """The same FLAC with STREAMINFO's total-samples field rewritten (the header is all we trust first)."""
    assert flac[:4] == b"fLaC"
    info = bytearray(flac[8:42])
    packed = int.from_bytes(info[10:18], "big")
    packed = (packed & ~((1 << 36) - 1)) | frames
    info[10:18] = packed.to_bytes(8, "big")
    return flac[:8] + bytes(info) + flac[42:]


@pytest.fixture
def no_decoding(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("decoded audio that the header alone should have refused")

    monkeypatch.setattr(media_audio, "decode_audio", refuse)


@pytest.mark.usefixtures("no_decoding")
def test_the_attack_file_is_refused_from_its_header_as_query_and_as_item():
    # The shape of the attack: 8 channels at 192 kHz claiming 599 s (920 million samples), of silence.
    attack = claim_frames(flac_bytes(0.5, 192_000, 8), 599 * 192_000)
    started = time.perf_counter()
    with pytest.raises(MediaTooLarge, match="the limit for a query clip is 30 s"):
        prepare_media(attack, query=True)
    with pytest.raises(MediaTooLarge, match=r"920,064,000 samples .* the limit is 57,600,000"):
        prepare_media(attack)
    assert time.perf_counter() - started < 0.5


@pytest.mark.usefixtures("no_decoding")
def test_too_many_channels_are_refused_from_the_header(settings):
    assert settings.SEARCH_MAX_AUDIO_CHANNELS == 8
    with pytest.raises(MediaTooLarge, match="12 channels; the limit is 8"):
        prepare_media(wav_bytes(seconds=0.2, channels=12))


def test_a_header_that_understates_its_length_bounds_the_work_all_the_same(settings):
    settings.SEARCH_MAX_QUERY_AUDIO_SECONDS = 2
    lying = claim_frames(flac_bytes(6.0, 8000, 1, amplitude=100), 8000)  # claims 1 s, holds 6 s
    # libsndfile stops where the header says; either way no more than the cap (+1 s) is ever decoded.
    assert prepare_media(lying, query=True).duration <= 3


def test_samples_are_capped_while_decoding_when_the_header_has_no_length(settings):
    from encoders.audio.frontend import AudioTooLarge, decode_audio

    unknown = claim_frames(flac_bytes(3.0, 8000, 2, amplitude=100), 0)  # 0 = length unknown
    with pytest.raises(AudioTooLarge, match="more than 16,000 samples"):
        decode_audio(unknown, max_samples=16_000)


def test_block_decoding_downmixes_and_resamples_as_it_goes(settings):
    """Two minutes of 48 kHz stereo: the old whole-file decode held 46 MB of float32 frames plus a
    23 MB mono copy; blocks keep only the 16 kHz mono output (7.7 MB) and one 2 MB block."""
    data = flac_bytes(120.0, 48_000, 2, amplitude=50)
    tracemalloc.start()
    try:
        prepared = prepare_media(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (prepared.sample_rate, prepared.source_sample_rate) == (16_000, 48_000)
    assert len(prepared.waveform) == pytest.approx(120 * 16_000, abs=64)
    assert peak < 16 * 1024 * 1024, f"peak {peak / 2**20:.1f} MB"


def test_block_decoding_matches_a_whole_file_decode():
    from encoders.audio.frontend import decode_audio

    t = np.arange(3 * 44_100) / 44_100
    stereo = np.stack([np.sin(2 * np.pi * 440 * t), 0.5 * np.sin(2 * np.pi * 660 * t)], axis=1) * 0.5
    out = io.BytesIO()
    soundfile.write(out, stereo, 44_100, format="FLAC")
    mono, rate = decode_audio(out.getvalue())
    assert rate == 44_100
    np.testing.assert_allclose(mono, stereo.mean(axis=1), atol=1e-4)
    low, low_rate = decode_audio(out.getvalue(), max_rate=16_000)
    assert low_rate == 16_000 and len(low) == pytest.approx(3 * 16_000, abs=2)
    spectrum = np.abs(np.fft.rfft(low))
    assert abs(np.fft.rfftfreq(len(low), 1 / 16_000)[spectrum.argmax()] - 440) < 2


@pytest.mark.django_db
@pytest.mark.usefixtures("fake_spaces")
def test_a_query_clip_over_the_query_cap_gets_413_but_the_same_file_can_be_stored():
    clip = wav_bytes(seconds=31, sr=8000)
    response = APIClient().post("/api/search/", {"file": SimpleUploadedFile("q.wav", clip)}, format="multipart")
    assert response.status_code == 413, response.content
    assert response.json()["code"] == "too_large"
    assert "the limit for a query clip is 30 s" in response.json()["file"][0]
    token = Token.objects.create(user=User.objects.create_user("u")).key
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    stored = client.post("/api/items/", {"file": SimpleUploadedFile("a.wav", clip)}, format="multipart")
    assert stored.status_code == 201, stored.content
    assert stored.json()["duration"] == pytest.approx(31, abs=0.01)
    assert stored.json()["sample_rate"] == 8000
    short = APIClient().post("/api/search/", {"file": SimpleUploadedFile("q.wav", wav_bytes(seconds=2, sr=8000))},
                             format="multipart")
    assert short.status_code == 200, short.content


# One request's peak memory, measured in a fresh process per case: VmHWM is reset after start-up and
# the demo model's warm-up, so the figure is the growth above the idle process for reading the upload,
# validating and decoding it, encoding it with the demo space, and drawing its preview.
PROBE = textwrap.dedent("""
    import json, os, sys, time
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "search.settings")
    import django; django.setup()
    from search.storage import spaces
    from search.media import MediaRejected, thumbnail_jpeg, waveform_png
    from search.ingest.prepare import prepare_media
    def status(key):
        for line in open("/proc/self/status"):
            if line.startswith(key): return int(line.split()[1]) * 1024
    encoder = spaces.get_encoder("demo"); encoder.warmup()
    path, query = sys.argv[1], sys.argv[2] == "query"
    open("/proc/self/clear_refs", "w").write("5")
    base, started = status("VmRSS"), time.perf_counter()
    outcome = "stored"
    try:
        with open(path, "rb") as f: data = f.read()
        prepared = prepare_media(data, query=query)
        if prepared.modality == "audio":
            encoder.encode_audio_with_segments([(prepared.waveform, prepared.sample_rate)])
            waveform_png(prepared.waveform)
        else:
            encoder.encode_images([prepared.image]); thumbnail_jpeg(prepared.image)
    except MediaRejected as exc:
        outcome = f"refused: {exc}"
    print(json.dumps({"peak_mb": (status("VmHWM") - base) / 2**20, "seconds": time.perf_counter() - started,
                      "outcome": outcome}))
""")


def _worst_cases(folder: Path) -> dict[str, tuple[Path, str]]:
    from PIL import Image

    cases = {}

    def audio(name, seconds, sr, channels, amplitude, mode):
        path = folder / f"{name}.flac"
        path.write_bytes(flac_bytes(seconds, sr, channels, amplitude))
        cases[name] = (path, mode)

    # The attack itself (8 ch, 192 kHz, 599 s of silence: 952 KB).
    audio("attack query: 8 ch 192 kHz 599 s", 599, 192_000, 8, 0, "query")
    # The most a query may decode: 30 s of 8 channels at 192 kHz (46 M samples), noise so it is not tiny.
    audio("worst query: 8 ch 192 kHz 30 s", 30, 192_000, 8, 40, "query")
    # The most an upload may decode: 57.6 M samples, 48 MB of FLAC (just under the 50 MB upload cap).
    audio("worst upload: 2 ch 48 kHz 600 s", 599.9, 48_000, 2, 40, "item")
    audio("worst upload: 1 ch 192 kHz 300 s", 299.9, 192_000, 1, 40, "item")
    # The image cap, 40 MP, in the mode that decodes to the most bytes per pixel (RGBA: 160 MB).
    path = folder / "rgba40.png"
    Image.new("RGBA", (8000, 5000), (10, 200, 30, 128)).save(path)
    cases["worst image: 40 MP RGBA PNG"] = (path, "item")
    path = folder / "cmyk40.jpg"
    Image.new("CMYK", (8000, 5000), (10, 200, 30, 0)).save(path, quality=90)
    cases["worst image: 40 MP CMYK JPEG"] = (path, "item")
    return cases


@pytest.mark.slow
def test_no_upload_or_query_grows_a_process_by_more_than_200_mb(tmp_path):
    figures = {}
    for name, (path, mode) in _worst_cases(tmp_path).items():
        run = subprocess.run([sys.executable, "-c", PROBE, str(path), mode], capture_output=True, text=True,
                             cwd=ROOT, timeout=300)
        assert run.returncode == 0, run.stderr[-2000:]
        figures[name] = json.loads(run.stdout.strip().splitlines()[-1]) | {"bytes": path.stat().st_size}
    report = ROOT / "test-output" / "media_memory.json"
    report.parent.mkdir(exist_ok=True)
    report.write_text(json.dumps(figures, indent=2))
    assert figures["attack query: 8 ch 192 kHz 599 s"]["outcome"].startswith("refused")
    assert figures["attack query: 8 ch 192 kHz 599 s"]["seconds"] < 0.5
    for name, figure in figures.items():
        assert figure["peak_mb"] < 200, (name, figure)
        if not name.startswith("attack"):
            assert figure["outcome"] == "stored", (name, figure)
