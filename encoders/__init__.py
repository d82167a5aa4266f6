"""Multimodal embedding spaces (text, image, audio); no Django imports here.

The contract is in ``encoders.base``; spaces are configured by name through
``encoders.registry`` and re-exported here.
"""

from encoders.base import (
    AudioDecodeError,
    EmbeddingSpace,
    EncoderError,
    ImageDecodeError,
    InvalidEmbedding,
    Modality,
    Segment,
    UnknownSpace,
    UnsupportedModality,
    WeightsNotFound,
)
from encoders.registry import DEFAULT_SPACES, configure, get_space, list_spaces, reset

__all__ = [
    "DEFAULT_SPACES",
    "AudioDecodeError",
    "EmbeddingSpace",
    "EncoderError",
    "ImageDecodeError",
    "InvalidEmbedding",
    "Modality",
    "Segment",
    "UnknownSpace",
    "UnsupportedModality",
    "WeightsNotFound",
    "configure",
    "get_space",
    "list_spaces",
    "reset",
]
