"""OPTIONS ``modalities``: one model serving a text+image space and a text+audio space."""

import numpy as np
import pytest
from PIL import Image

import encoders
from encoders.base import EncoderError, UnsupportedModality
from encoders.registry import DEFAULT_SPACES

from .conftest import tone

DEMO = DEFAULT_SPACES["demo"]


def demo_restricted(*modalities):
    return {"ENCODER": DEMO["ENCODER"], "OPTIONS": {**DEMO["OPTIONS"], "modalities": list(modalities)}}


@pytest.fixture(autouse=True)
def _clean_registry():
    encoders.reset()
    yield
    encoders.reset()


def test_one_model_serves_a_pictures_space_and_a_sounds_space():
    encoders.configure({"pics": demo_restricted("text", "image"), "sounds": demo_restricted("text", "audio")})
    pics, sounds = encoders.get_space("pics"), encoders.get_space("sounds")
    assert pics.modalities == {"text", "image"} and sounds.modalities == {"text", "audio"}
    assert pics.can_embed("image") and not pics.can_embed("audio")
    assert sounds.can_embed("audio") and not sounds.can_embed("image")
    with pytest.raises(UnsupportedModality, match="'pics' cannot embed 'audio'"):
        pics.encode_audio([(tone(), 16000)])
    with pytest.raises(UnsupportedModality, match="'sounds' cannot embed 'image'"):
        sounds.encode_images([Image.new("RGB", (8, 8))])
    # Same model, same text vectors: a text query means the same in both.
    assert np.allclose(pics.encode_texts(["a red circle"]), sounds.encode_texts(["a red circle"]), atol=1e-6)
    assert sounds.encode_audio([(tone(), 16000)]).shape == (1, 128)
    # The text+image space never loads the audio tower, so the tower is no part of its identity.
    assert "audio-sha256" not in pics.identity and "audio-sha256" in sounds.identity
    pics.warmup()
    assert pics._load().audio is None


def test_restriction_applies_to_any_encoder():
    encoders.configure({"t": {"ENCODER": "encoders.fake.FakeSpace", "OPTIONS": {"dim": 8, "modalities": ["text"]}}})
    space = encoders.get_space("t")
    assert space.modalities == {"text"}
    space.warmup()  # warms only what it embeds


@pytest.mark.parametrize(
    "value, message",
    [
        (["text", "video"], r"has unknown modalities \['video'\]; use text, image, audio"),
        ("text", "must be a non-empty list"),
        ([], "must be a non-empty list"),
        (None, "must be a non-empty list"),
    ],
)
def test_bad_values_are_refused_when_configured(value, message):
    entry = {"ENCODER": "encoders.fake.FakeSpace", "OPTIONS": {"modalities": value}}
    with pytest.raises(EncoderError, match=f"space 'x': OPTIONS 'modalities' {message}"):
        encoders.configure({"x": entry})


def test_a_modality_the_encoder_cannot_embed_is_refused():
    options = {**DEMO["OPTIONS"], "modalities": ["text", "audio"]}
    del options["audio_tower"]
    encoders.configure({"x": {"ENCODER": DEMO["ENCODER"], "OPTIONS": options}})
    with pytest.raises(EncoderError, match="lists audio, which its encoder cannot embed; it can embed image, text"):
        encoders.get_space("x")
