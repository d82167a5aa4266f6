import io
import os

import numpy as np
import pytest

from encoders.audio.frontend import (
    FrontendConfig,
    decode_audio,
    features,
    log_mel,
    probe_audio,
    split_windows,
    to_mono,
)
from encoders.base import AudioDecodeError

from .conftest import encoded, tone


@pytest.mark.parametrize("fmt", ["WAV", "FLAC", "OGG", "MP3"])
def test_decodes_every_supported_container(fmt):
    data = encoded(tone(seconds=2.0), fmt=fmt)
    info = probe_audio(data)
    assert (info.samplerate, info.channels, info.format) == (16000, 1, fmt)
    assert info.duration == pytest.approx(2.0, abs=0.05)
    wave, sr = decode_audio(data)
    assert sr == 16000 and wave.dtype == np.float32 and wave.ndim == 1
    assert len(wave) == pytest.approx(32000, rel=0.03)


def test_accepts_paths_bytes_and_file_objects(tmp_path):
    data = encoded(tone(seconds=0.5))
    path = tmp_path / "a.wav"
    path.write_bytes(data)
    stream = io.BytesIO(data)
    stream.read(10)  # a half-read upload must still decode from the start
    for src in (path, str(path), data, stream):
        wave, _ = decode_audio(src)
        assert len(wave) == 8000


def test_stereo_is_mixed_down_and_max_seconds_caps_decoding():
    stereo = np.stack([tone(seconds=3.0), -tone(seconds=3.0) * 0.5], axis=1)
    info = probe_audio(encoded(stereo, fmt="FLAC"))
    assert info.channels == 2
    wave, _ = decode_audio(encoded(stereo, fmt="FLAC"), max_seconds=1.0)
    assert len(wave) == 16000
    np.testing.assert_allclose(wave, tone(seconds=1.0) * 0.25, atol=1e-3)


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "zero bytes"),
        (b"this is not audio at all" * 20, "unreadable or unsupported"),
        (encoded(tone())[:20], "unreadable or unsupported"),
        (encoded(tone(), fmt="FLAC")[:3000], "corrupt or truncated"),
        (encoded(np.zeros(0, np.float32)), "no samples"),
    ],
    ids=["zero-length", "garbage", "cut-header", "cut-flac", "no-samples"],
)
def test_bad_audio_raises_audio_decode_error(data, message):
    with pytest.raises(AudioDecodeError, match=message):
        decode_audio(data)


def test_missing_and_empty_files_are_reported(tmp_path):
    with pytest.raises(AudioDecodeError, match="not found"):
        probe_audio(tmp_path / "missing.wav")
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(AudioDecodeError, match="zero bytes"):
        decode_audio(tmp_path / "empty.wav")


def test_non_finite_samples_are_rejected():
    with pytest.raises(AudioDecodeError, match="NaN"):
        to_mono(np.array([0.0, np.nan], dtype=np.float32))


def test_windows_overlap_and_cover_the_tail():
    cfg = FrontendConfig(sample_rate=100, window_seconds=2.0, hop_seconds=1.0)
    windows, spans = split_windows(np.arange(550, dtype=np.float32), cfg)
    assert spans == [(0.0, 2.0), (1.0, 3.0), (2.0, 4.0), (3.0, 5.0), (3.5, 5.5)]
    assert windows.shape == (5, 200) and windows[-1, -1] == 549


def test_short_clips_are_repeat_padded_to_one_window():
    cfg = FrontendConfig(sample_rate=100, window_seconds=2.0)
    windows, spans = split_windows(np.array([1.0, 2.0, 3.0], dtype=np.float32), cfg)
    assert spans == [(0.0, 0.03)]
    assert windows.shape == (1, 200) and list(windows[0, :7]) == [1, 2, 3, 1, 2, 3, 1]


def test_log_mel_is_loudness_invariant_and_bounded():
    cfg = FrontendConfig()
    quiet, loud = log_mel(np.stack([tone(2.0) * 0.01, tone(2.0)]), cfg)
    assert quiet.shape == (cfg.n_mels, cfg.frames)
    # Only the -80 dB floor differs: the quiet clip's faintest bins hit it sooner.
    np.testing.assert_allclose(quiet, loud, atol=0.01)
    assert loud.min() >= -1.0 and loud.max() == pytest.approx(1.0)


def test_features_resample_to_the_model_rate():
    cfg = FrontendConfig(sample_rate=16000, window_seconds=1.0, hop_seconds=0.5)
    mel_44k, spans = features(tone(seconds=2.0, sr=44100), 44100, cfg)
    mel_16k, _ = features(tone(seconds=2.0, sr=16000), 16000, cfg)
    assert spans == [(0.0, 1.0), (0.5, 1.5), (1.0, 2.0)]
    assert np.abs(mel_44k - mel_16k).mean() < 0.02


def test_numba_cache_dir_is_set_before_librosa_loads():
    assert os.environ.get("NUMBA_CACHE_DIR")
