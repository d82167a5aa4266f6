"""Audio decoding and log-mel front end.

Decoding goes through libsndfile (``soundfile``) only. ``librosa.load`` would
fall back to audioread/ffmpeg for formats libsndfile rejects, which means an
uploaded file could make us spawn external decoders; librosa is therefore only
ever given arrays.
"""

from __future__ import annotations

import io
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import soundfile

from encoders.base import AudioDecodeError

# librosa JIT-compiles through numba, which caches next to the installed package
# by default; that directory is read-only in deployments, so point it somewhere
# writable before librosa is first imported (an explicit setting wins).
os.environ.setdefault("NUMBA_CACHE_DIR", str(Path(tempfile.gettempdir()) / "numba_cache"))

import librosa  # noqa: E402  (must follow the NUMBA_CACHE_DIR default above)

AudioSource = str | os.PathLike | bytes | BinaryIO


@dataclass(frozen=True)
class AudioInfo:
    duration: float
    samplerate: int
    channels: int
    format: str


@dataclass(frozen=True)
class FrontendConfig:
    """Per-model front-end settings; stored inside each audio tower checkpoint."""

    sample_rate: int = 16000
    n_fft: int = 512
    hop_length: int = 160
    n_mels: int = 64
    fmin: float = 30.0
    fmax: float = 8000.0
    window_seconds: float = 2.0
    hop_seconds: float = 1.0
    top_db: float = 80.0

    @property
    def window_samples(self) -> int:
        return round(self.window_seconds * self.sample_rate)

    @property
    def hop_samples(self) -> int:
        return round(self.hop_seconds * self.sample_rate)

    @property
    def frames(self) -> int:
        return 1 + self.window_samples // self.hop_length

    def to_dict(self) -> dict:
        return asdict(self)


def _open(src: AudioSource) -> soundfile.SoundFile:
    if isinstance(src, bytes):
        if not src:
            raise AudioDecodeError("audio is empty (zero bytes)")
        src = io.BytesIO(src)
    elif isinstance(src, (str, os.PathLike)):
        if not os.path.isfile(src):
            raise AudioDecodeError(f"audio file not found: {src}")
        if os.path.getsize(src) == 0:
            raise AudioDecodeError(f"audio file is empty (zero bytes): {src}")
    else:
        # A file object must be rewound: probing and decoding the same upload is
        # the normal flow, and libsndfile reads from the current position.
        src.seek(0)
    try:
        return soundfile.SoundFile(src)
    except soundfile.LibsndfileError as exc:
        raise AudioDecodeError(f"unreadable or unsupported audio ({exc.error_string})") from exc
    except (RuntimeError, TypeError, ValueError) as exc:
        raise AudioDecodeError(f"unreadable or unsupported audio ({exc})") from exc


def probe_audio(src: AudioSource) -> AudioInfo:
    """Read only the header, so callers can reject long or odd files cheaply."""
    with _open(src) as f:
        if f.samplerate <= 0 or f.channels <= 0:
            raise AudioDecodeError(f"invalid audio header ({f.samplerate} Hz, {f.channels} channels)")
        # libsndfile reports a sentinel for streams of unknown length; report
        # 0.0 rather than a nonsense number. decode_audio(max_seconds=...)
        # still bounds the work for such files.
        frames = f.frames if 0 <= f.frames < 2**62 else 0
        return AudioInfo(
            duration=frames / f.samplerate,
            samplerate=f.samplerate,
            channels=f.channels,
            format=f.format,
        )


def decode_audio(src: AudioSource, max_seconds: float | None = None) -> tuple[np.ndarray, int]:
    """Decode to a mono float32 waveform at the file's own sample rate."""
    with _open(src) as f:
        samplerate = f.samplerate
        frames = -1 if max_seconds is None else max(0, int(max_seconds * samplerate))
        try:
            data = f.read(frames=frames, dtype="float32", always_2d=True)
        except (soundfile.LibsndfileError, RuntimeError) as exc:
            raise AudioDecodeError(f"audio stream is corrupt or truncated ({exc})") from exc
    if data.shape[0] == 0:
        raise AudioDecodeError("audio contains no samples")
    return to_mono(data), samplerate


def to_mono(waveform: np.ndarray) -> np.ndarray:
    """Mono float32 from a 1-D array or a ``(frames, channels)`` array."""
    waveform = np.asarray(waveform, dtype=np.float32)
    if waveform.ndim == 2:
        waveform = waveform.mean(axis=1)
    elif waveform.ndim != 1:
        raise AudioDecodeError(f"waveform must be 1-D or (frames, channels), got shape {waveform.shape}")
    if waveform.size == 0:
        raise AudioDecodeError("audio contains no samples")
    if not np.isfinite(waveform).all():
        raise AudioDecodeError("waveform contains NaN or infinite samples")
    return waveform


def resample(waveform: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    if orig_sr == target_sr:
        return waveform
    if orig_sr <= 0:
        raise AudioDecodeError(f"invalid sample rate {orig_sr}")
    return librosa.resample(waveform, orig_sr=orig_sr, target_sr=target_sr, res_type="soxr_hq").astype(np.float32)


def split_windows(waveform: np.ndarray, cfg: FrontendConfig) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """Cut a waveform at ``cfg.sample_rate`` into overlapping fixed-size windows.

    Clips shorter than a window are tiled to fill it ("repeat-pad", as in
    CLAP): silence padding would make a short beep look like a mostly quiet
    recording. The last window is aligned to the end so no tail is dropped.
    """
    size, hop = cfg.window_samples, cfg.hop_samples
    n = waveform.shape[0]
    duration = n / cfg.sample_rate
    if n <= size:
        reps = -(-size // n)
        return np.tile(waveform, reps)[:size][None, :], [(0.0, duration)]
    starts = list(range(0, n - size + 1, hop))
    if starts[-1] + size < n:
        starts.append(n - size)
    windows = np.stack([waveform[s : s + size] for s in starts])
    spans = [(s / cfg.sample_rate, (s + size) / cfg.sample_rate) for s in starts]
    return windows, spans


def log_mel(windows: np.ndarray, cfg: FrontendConfig) -> np.ndarray:
    """``(n, n_mels, frames)`` log-mel features scaled to roughly [-1, 1].

    Each window is referenced to its own peak so loudness does not change the
    embedding; the sound's spectral shape and rhythm do.
    """
    mel = librosa.feature.melspectrogram(
        y=windows,
        sr=cfg.sample_rate,
        n_fft=cfg.n_fft,
        hop_length=cfg.hop_length,
        n_mels=cfg.n_mels,
        fmin=cfg.fmin,
        fmax=cfg.fmax,
        power=2.0,
    )
    peak = mel.max(axis=(-2, -1), keepdims=True)
    db = 10.0 * np.log10(np.maximum(mel, 1e-10) / np.maximum(peak, 1e-10))
    db = np.maximum(db, -cfg.top_db)
    return (db / (cfg.top_db / 2) + 1.0).astype(np.float32)


def features(
    waveform: np.ndarray, samplerate: int, cfg: FrontendConfig
) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """Waveform at any rate → windowed log-mel features and window spans."""
    mono = resample(to_mono(waveform), samplerate, cfg.sample_rate)
    windows, spans = split_windows(mono, cfg)
    return log_mel(windows, cfg), spans
