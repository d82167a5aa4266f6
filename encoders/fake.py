"""A deterministic, model-free space for fast tests of everything around encoders.

Vectors are random projections of cheap features, so they are stable across
processes and still carry some meaning: texts sharing words are close, images
with similar thumbnails are close, sounds with similar spectra are close.
"""

from __future__ import annotations

import hashlib
import re

import numpy as np
from PIL import Image

from encoders.audio.frontend import FrontendConfig, split_windows, to_mono
from encoders.base import AudioClip, EmbeddingSpace, Modality

_THUMB = 8
_BANDS = 16
_WORD = re.compile(r"\w+")


def _seeded_vector(key: str, dim: int) -> np.ndarray:
    seed = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "little")
    return np.random.default_rng(seed).standard_normal(dim)


class FakeSpace(EmbeddingSpace):
    """OPTIONS: ``dim`` (default 32), ``window_seconds`` and ``hop_seconds`` for audio,
    ``passage_tokens`` (words and marks a passage of a long text holds; None: texts are never split)."""

    def __init__(self, name: str, *, dim: int = 32, window_seconds: float = 1.0, hop_seconds: float = 0.5,
                 passage_tokens: int | None = None):
        super().__init__(name)
        self._passage_tokens = passage_tokens
        self.dim = dim
        self.window_seconds = window_seconds
        self.hop_seconds = hop_seconds
        self.modalities = frozenset(Modality)
        rng = np.random.default_rng(dim)
        # +1 input for a constant, so a black image or silence is not a zero vector.
        self._image_proj = rng.standard_normal((_THUMB * _THUMB * 3 + 1, dim))
        self._audio_proj = rng.standard_normal((_BANDS + 1, dim))

    @property
    def identity(self) -> str:
        passages = f":passages={self._passage_tokens}" if self._passage_tokens else ""
        return f"fake:dim={self.dim}:window={self.window_seconds}/{self.hop_seconds}{passages}:v1"

    def passage_tokens(self) -> int | None:
        return self._passage_tokens

    def _encode_texts(self, texts: list[str]) -> np.ndarray:
        rows = []
        for text in texts:
            # The whole string contributes too, so texts without words still
            # get a distinct, non-zero vector.
            vector = 0.5 * _seeded_vector("text:" + text, self.dim)
            for word in _WORD.findall(text.lower()):
                vector += _seeded_vector("word:" + word, self.dim)
            rows.append(vector)
        return np.stack(rows)

    def _encode_images(self, images: list[Image.Image]) -> np.ndarray:
        thumbs = [
            np.append(np.asarray(img.convert("RGB").resize((_THUMB, _THUMB)), dtype=np.float64).ravel() / 255, 1.0)
            for img in images
        ]
        return np.stack(thumbs) @ self._image_proj

    def _encode_audio_windows(self, clips: list[AudioClip]) -> list[tuple[np.ndarray, list[tuple[float, float]]]]:
        results = []
        for wave, sr in clips:
            cfg = FrontendConfig(sample_rate=sr, window_seconds=self.window_seconds, hop_seconds=self.hop_seconds)
            windows, spans = split_windows(to_mono(wave), cfg)
            power = np.abs(np.fft.rfft(windows, axis=1)) ** 2
            edges = np.unique(np.geomspace(1, power.shape[1], _BANDS + 1).astype(int))
            bands = np.stack([power[:, a:b].sum(axis=1) for a, b in zip(edges[:-1], edges[1:], strict=True)], axis=1)
            bands = np.pad(bands, ((0, 0), (0, _BANDS - bands.shape[1])))
            features = np.log1p(bands / (bands.sum(axis=1, keepdims=True) + 1e-12) * _BANDS)
            features = np.concatenate([features, np.ones((len(features), 1))], axis=1)
            results.append((features @ self._audio_proj, spans))
        return results
