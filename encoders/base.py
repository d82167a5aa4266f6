"""The contract every embedding space implements, and the errors it raises.

Backends implement the ``_encode_*`` hooks and return raw vectors; the public
methods here enforce the guarantees callers rely on (modality checks, empty
input, float32, finite, unit norm) so that no backend can forget one.
"""

from __future__ import annotations

import abc
import enum
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from encoders import passages

# Vectors whose norm is below this are treated as "zero": normalising them would
# amplify noise into an arbitrary direction that matches everything equally badly.
_MIN_NORM = 1e-6
# Words and punctuation marks: a rough token count for encoders that do not say.
_TOKENISH = re.compile(r"\w+|[^\w\s]")


class Modality(enum.StrEnum):
    TEXT = "text"
    IMAGE = "image"
    AUDIO = "audio"


class EncoderError(Exception):
    """Base class for every error raised by the encoders package."""


class UnknownSpace(EncoderError, KeyError):
    """``get_space`` was asked for a name that is not configured."""

    def __str__(self) -> str:
        # KeyError.__str__ repr()s its argument; keep the message readable.
        return str(self.args[0]) if self.args else ""


class UnsupportedModality(EncoderError):
    def __init__(self, space: str, modality: str, supported: frozenset[str]):
        self.space = space
        self.modality = modality = str(modality)
        super().__init__(
            f"embedding space {space!r} cannot embed {modality!r}; it supports {', '.join(sorted(supported))}"
        )


class InvalidEmbedding(EncoderError):
    """An encoder produced a NaN, infinite or zero vector."""


class WeightsNotFound(EncoderError):
    """Model weights are neither on disk nor downloadable from here."""


class AudioDecodeError(EncoderError):
    """Audio bytes could not be turned into a waveform."""


class ImageDecodeError(EncoderError):
    """Image bytes could not be turned into pixels."""


@dataclass(frozen=True)
class Segment:
    """One part of a longer item: a window of audio (seconds from its start) or a passage of
    text (character offsets, end exclusive)."""

    start: float
    end: float
    vector: np.ndarray


AudioClip = tuple[np.ndarray, int]


def parse_modalities(value, space: str) -> frozenset[str]:
    """A space's OPTIONS ``modalities``: a non-empty list of modality names."""
    if isinstance(value, str) or not isinstance(value, (list, tuple, set, frozenset)) or not value:
        raise EncoderError(
            f"space {space!r}: OPTIONS 'modalities' must be a non-empty list of "
            f"{', '.join(Modality)}, got {value!r}"
        )
    unknown = sorted(str(m) for m in value if m not in {m.value for m in Modality})
    if unknown:
        raise EncoderError(
            f"space {space!r}: OPTIONS 'modalities' has unknown modalities {unknown}; use {', '.join(Modality)}"
        )
    return frozenset(str(m) for m in value)


def finalize(vectors: np.ndarray, what: str) -> np.ndarray:
    """Validate raw encoder output and return it L2-normalised as float32."""
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim != 2:
        raise InvalidEmbedding(f"{what}: expected a 2-D array, got shape {vectors.shape}")
    bad_rows = ~np.isfinite(vectors).all(axis=1)
    if bad_rows.any():
        raise InvalidEmbedding(f"{what}: non-finite values in row(s) {np.flatnonzero(bad_rows).tolist()}")
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    zero_rows = norms[:, 0] < _MIN_NORM
    if zero_rows.any():
        raise InvalidEmbedding(f"{what}: zero vector in row(s) {np.flatnonzero(zero_rows).tolist()}")
    return vectors / norms


class EmbeddingSpace(abc.ABC):
    """A vector space shared by several modalities, compared with ``metric``.

    Subclasses set ``dim`` and ``modalities`` and implement the hooks for the
    modalities they support. Instances are safe to share between threads once
    loaded; ``warmup`` loads eagerly so the first request does not pay for it.
    """

    metric: str = "cosine"
    dim: int
    modalities: frozenset[str]
    # Text the model has no meaning for lands near one point (the demo model was trained to put ordinary language
    # on a learned "unknown" item): sentences that find it, and the cosine from which a vector counts as there.
    unknown_texts: tuple[str, ...] = ()
    unknown_similarity: float = 0.9
    # The cosine below which two items are rarely related in this model, where its makers or our measurements
    # say (None: unknown). A match below it is weak whatever else the collection holds: a collection of nothing
    # but unrelated items still has a nearest one.
    related_similarity: float | None = None

    def __init__(self, name: str):
        self.name = name
        self._unknown_point: np.ndarray | None = None

    @property
    @abc.abstractmethod
    def identity(self) -> str:
        """Architecture, weights hash and preprocessing version.

        Stored next to every vector: when it changes, stored vectors are stale.
        """

    def describe(self) -> dict:
        """What a person choosing a space wants to know (the space admin, ``/api/spaces/``); never loads a model.

        None where the space does not know: subclasses that do extend ``super().describe()``.
        """
        return {
            "name": self.name,
            # Every real-model space keeps its OPTIONS ``model`` as ``model_name``.
            "model": getattr(self, "model_name", None),
            "dim": self.dim,
            "metric": self.metric,
            "modalities": sorted(str(m) for m in self.modalities),
            "languages": None,
            "licence": None,
        }

    @classmethod
    def required_files(cls, name: str, options: dict) -> list:
        """The ``encoders.pretrained.HubFiles`` a space with these OPTIONS needs (``manage.py fetchmodels``)."""
        return []

    def can_embed(self, modality: str) -> bool:
        return modality in self.modalities

    def restrict(self, modalities) -> None:
        """Embed only ``modalities``, a subset of what the encoder can (OPTIONS ``modalities``).

        One model can then serve, say, a text+image space and a text+audio space.
        Vectors do not change, so neither does the identity.
        """
        wanted = parse_modalities(modalities, self.name)
        missing = wanted - self.modalities
        if missing:
            raise EncoderError(
                f"space {self.name!r}: OPTIONS 'modalities' lists {', '.join(sorted(missing))}, which its encoder "
                f"cannot embed; it can embed {', '.join(sorted(self.modalities))}"
            )
        self.modalities = frozenset(Modality(m) for m in wanted)

    def warmup(self) -> None:
        """Encode one tiny input per modality.

        Loads weights and triggers JIT compilation (numba in librosa) here,
        rather than inside the first request that needs them.
        """
        if self.can_embed(Modality.TEXT):
            self.encode_texts(["warmup"])
        if self.can_embed(Modality.IMAGE):
            self.encode_images([Image.new("RGB", (32, 32), "gray")])
        if self.can_embed(Modality.AUDIO):
            # 8 kHz so resampling is exercised too, as for most uploads.
            beep = 0.1 * np.sin(np.arange(4000, dtype=np.float32) * 0.3)
            self.encode_audio([(beep, 8000)])

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        self._require(Modality.TEXT)
        if not texts:
            return self._empty()
        return finalize(self._encode_texts(list(texts)), f"{self.name} text")

    def unknown_text_point(self) -> np.ndarray | None:
        """Where this model puts text it has no meaning for (unit norm), or None when it has no such point.

        A vector within ``unknown_similarity`` of it carries no meaning in this space: the product leaves such
        vectors out of this space's matches, so ordinary prose never answers every query here.
        """
        if not self.unknown_texts or not self.can_embed(Modality.TEXT):
            return None
        if self._unknown_point is None:
            mean = self.encode_texts(list(self.unknown_texts)).mean(axis=0)
            self._unknown_point = finalize(mean[None, :], f"{self.name} unknown point")[0]
        return self._unknown_point

    # ------------------------------------------------------------------ passages

    def passage_tokens(self) -> int | None:
        """Tokens of text the text tower reads (without its special tokens); None when it has no limit,
        and then a text is never split into passages."""
        return None

    def count_tokens(self, text: str) -> int:
        """Tokens `text` takes in the text tower, without special tokens (by default: words and marks)."""
        return len(_TOKENISH.findall(text))

    def split_text(self, text: str) -> list[tuple[int, int]]:
        """Character spans of the passages of `text` (encoders.passages); [] when it fits whole."""
        budget = self.passage_tokens()
        if budget is None:
            return []
        spans = passages.split_passages(text, self.count_tokens, budget)
        return spans if len(spans) > 1 else []

    def encode_query_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Vectors for texts asked as queries (never stored): by default each text's item vector, as
        `encode_texts_with_passages` makes it for a stored text. A space may answer with a faster approximation
        of those vectors, since a query is compared with stored vectors and never compared as one."""
        self._require(Modality.TEXT)
        if not texts:
            return self._empty()
        return np.stack([vector for vector, _ in self.encode_texts_with_passages(texts)])

    def encode_texts_with_passages(self, texts: Sequence[str]) -> list[tuple[np.ndarray, list[Segment]]]:
        """Item vector and passages for each text, in one batched pass.

        A text that fits the context is one vector, as `encode_texts` makes it. A longer one is split
        into passages (character spans), each embedded; its item vector is the normalised mean of the
        passage vectors, so whole-item similarity reflects all of it, not its first sentence.
        """
        self._require(Modality.TEXT)
        if not texts:
            return []
        splits = [self.split_text(text) for text in texts]
        inputs: list[str] = []
        for text, spans in zip(texts, splits, strict=True):
            inputs.extend([text] if not spans else passages.passage_texts(text, spans))
        vectors = self.encode_texts(inputs)
        results, at = [], 0
        for index, spans in enumerate(splits):
            if not spans:
                results.append((vectors[at], []))
                at += 1
                continue
            block = vectors[at:at + len(spans)]
            at += len(spans)
            item = finalize(block.mean(axis=0, keepdims=True), f"{self.name} text {index}")[0]
            results.append((item, [Segment(start, end, vector) for (start, end), vector in zip(spans, block,
                                                                                              strict=True)]))
        return results

    def encode_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        self._require(Modality.IMAGE)
        if not images:
            return self._empty()
        return finalize(self._encode_images(list(images)), f"{self.name} image")

    def encode_audio_with_segments(self, clips: Sequence[AudioClip]) -> list[tuple[np.ndarray, list[Segment]]]:
        """Item vector and per-window segments for each clip, in one pass.

        The item vector is the normalised mean of the normalised window
        vectors, so a long recording is matched by what it mostly contains.
        """
        self._require(Modality.AUDIO)
        if not clips:
            return []
        results = []
        for index, (windows, spans) in enumerate(self._encode_audio_windows(list(clips))):
            windows = finalize(windows, f"{self.name} audio clip {index}")
            item = finalize(windows.mean(axis=0, keepdims=True), f"{self.name} audio clip {index}")[0]
            segments = [Segment(start, end, vector) for (start, end), vector in zip(spans, windows, strict=True)]
            results.append((item, segments))
        return results

    def encode_audio(self, clips: Sequence[AudioClip]) -> np.ndarray:
        self._require(Modality.AUDIO)
        if not clips:
            return self._empty()
        return np.stack([item for item, _ in self.encode_audio_with_segments(clips)])

    def encode_audio_segments(self, waveform: np.ndarray, samplerate: int) -> list[Segment]:
        [(_, segments)] = self.encode_audio_with_segments([(waveform, samplerate)])
        return segments

    def _require(self, modality: Modality) -> None:
        if not self.can_embed(modality):
            raise UnsupportedModality(self.name, modality, self.modalities)

    def _empty(self) -> np.ndarray:
        return np.zeros((0, self.dim), dtype=np.float32)

    def _encode_texts(self, texts: list[str]) -> np.ndarray:
        raise UnsupportedModality(self.name, Modality.TEXT, self.modalities)

    def _encode_images(self, images: list[Image.Image]) -> np.ndarray:
        raise UnsupportedModality(self.name, Modality.IMAGE, self.modalities)

    def _encode_audio_windows(self, clips: list[AudioClip]) -> list[tuple[np.ndarray, list[tuple[float, float]]]]:
        """Raw window vectors ``(n_windows, dim)`` and their spans, per clip."""
        raise UnsupportedModality(self.name, Modality.AUDIO, self.modalities)
