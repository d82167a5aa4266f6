"""Encoder tests need no database; the real demo model is loaded once per session."""

import io

import numpy as np
import pytest
import soundfile

from encoders.demo.quality import audio_gallery, image_gallery
from encoders.fake import FakeSpace
from encoders.openclip import OpenClipSpace
from encoders.registry import DEFAULT_SPACES


@pytest.fixture(scope="session")
def demo_space() -> OpenClipSpace:
    space = OpenClipSpace("demo", **DEFAULT_SPACES["demo"]["OPTIONS"])
    space.warmup()
    return space


@pytest.fixture(scope="session")
def demo_images(demo_space):
    return image_gallery(demo_space)


@pytest.fixture(scope="session")
def demo_clips(demo_space):
    return audio_gallery(demo_space)


@pytest.fixture
def fake_space() -> FakeSpace:
    return FakeSpace("fake")


def tone(seconds: float = 1.0, freq: float = 440.0, sr: int = 16000) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def encoded(wave: np.ndarray, sr: int = 16000, fmt: str = "WAV") -> bytes:
    buf = io.BytesIO()
    soundfile.write(buf, wave, sr, format=fmt)
    return buf.getvalue()
