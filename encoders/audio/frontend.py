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


class AudioTooLarge(AudioDecodeError):
    """The audio is over a cap (channels, samples, duration); raised from the header when it can be."""


# Frames decoded per read: 64 Ki frames x 8 channels of float32 is 2 MB, whatever the file's length.
BLOCK_FRAMES = 65_536


def decode_audio(
    src: AudioSource,
    max_seconds: float | None = None,
    *,
    max_samples: int | None = None,
    max_channels: int | None = None,
    max_rate: int | None = None,
) -> tuple[np.ndarray, int]:
    """Decode to a mono float32 waveform, in blocks, downmixing (and resampling) as it goes.

    Memory is the mono output plus one block, never ``frames x channels`` for the whole
    file. ``max_samples`` caps decoded samples (frames x channels) and ``max_channels``
    the channel count, both checked from the header before any decoding and again while
    decoding (a header may lie). Decoding stops after ``max_seconds``: a caller that wants to
    tell "longer than allowed" from "just fits" asks for a little more than its cap.
    ``max_rate``: a higher-rate file is resampled to it while decoding (soxr, streaming),
    so a 192 kHz file costs the output's memory at ``max_rate``; returns the output rate.
    """
    with _open(src) as f:
        samplerate, channels = f.samplerate, f.channels
        if samplerate <= 0 or channels <= 0:
            raise AudioDecodeError(f"invalid audio header ({samplerate} Hz, {channels} channels)")
        if max_channels is not None and channels > max_channels:
            raise AudioTooLarge(f"the audio has {channels} channels; the limit is {max_channels}")
        known = f.frames if 0 < f.frames < 2**62 else None
        if max_samples is not None and known is not None and known * channels > max_samples:
            raise AudioTooLarge(
                f"the audio has {known * channels:,} samples ({known:,} frames x {channels} channels); "
                f"the limit is {max_samples:,}"
            )
        limit = None if max_seconds is None else max(0, int(max_seconds * samplerate))
        if max_samples is not None:
            limit = min(limit if limit is not None else max_samples, max_samples // channels + 1)
        out_rate = samplerate if max_rate is None or samplerate <= max_rate else int(max_rate)
        stream = None
        if out_rate != samplerate:
            import soxr

            stream = soxr.ResampleStream(samplerate, out_rate, 1, dtype="float32", quality="HQ")
        expected = min(x for x in (known, limit, 2**62) if x is not None)
        output = _Growing(int(expected * out_rate / samplerate) + 64 if expected < 2**62 else 1 << 16)
        block = np.empty((BLOCK_FRAMES, channels), dtype=np.float32)
        done = 0
        while limit is None or done < limit:
            want = BLOCK_FRAMES if limit is None else min(BLOCK_FRAMES, limit - done)
            try:
                got = f.read(frames=want, dtype="float32", always_2d=True, out=block[:want])
            except (soundfile.LibsndfileError, RuntimeError) as exc:
                raise AudioDecodeError(f"audio stream is corrupt or truncated ({exc})") from exc
            if len(got) == 0:
                break
            done += len(got)
            mono = got[:, 0].copy() if channels == 1 else got.mean(axis=1, dtype=np.float32)
            if not np.isfinite(mono).all():
                raise AudioDecodeError("waveform contains NaN or infinite samples")
            output.extend(mono if stream is None else stream.resample_chunk(mono))
            if len(got) < want:
                break
        if max_samples is not None and done * channels > max_samples:
            raise AudioTooLarge(f"the audio has more than {max_samples:,} samples")
        if stream is not None:
            output.extend(stream.resample_chunk(np.zeros(0, dtype=np.float32), last=True))
    if done == 0 or len(output) == 0:
        raise AudioDecodeError("audio contains no samples")
    return output.array(), out_rate


class _Growing:
    """A float32 buffer filled block by block: sized from the header, grown only if it lied."""

    def __init__(self, capacity: int):
        self._data = np.empty(max(capacity, 1), dtype=np.float32)
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def extend(self, values: np.ndarray) -> None:
        end = self._size + len(values)
        if end > len(self._data):
            grown = np.empty(max(end, len(self._data) * 3 // 2), dtype=np.float32)
            grown[: self._size] = self._data[: self._size]
            self._data = grown
        self._data[self._size : end] = values
        self._size = end

    def array(self) -> np.ndarray:
        if self._size == len(self._data):
            return self._data
        # Shrinking in place keeps the one allocation (no copy) when the estimate was close.
        self._data.resize(self._size, refcheck=False)
        return self._data


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
    if mono.shape[0] <= cfg.window_samples:
        windows, spans = split_windows(mono, cfg)
        return log_mel(windows, cfg), spans
    # A long recording: windows are views into the waveform and go through the STFT a few at a
    # time, so ten minutes never hold every window (2x the waveform) or the whole spectrogram.
    starts = list(range(0, mono.shape[0] - cfg.window_samples + 1, cfg.hop_samples))
    if starts[-1] + cfg.window_samples < mono.shape[0]:
        starts.append(mono.shape[0] - cfg.window_samples)
    spans = [(s / cfg.sample_rate, (s + cfg.window_samples) / cfg.sample_rate) for s in starts]
    mel = np.empty((len(starts), cfg.n_mels, cfg.frames), dtype=np.float32)
    for i in range(0, len(starts), FEATURE_BLOCK):
        chunk = np.stack([mono[s : s + cfg.window_samples] for s in starts[i : i + FEATURE_BLOCK]])
        mel[i : i + len(chunk)] = log_mel(chunk, cfg)
    return mel, spans


# Windows per STFT call in `features`: 32 two-second windows at 16 kHz are ~13 MB of spectrogram.
FEATURE_BLOCK = 32
