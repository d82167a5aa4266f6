import numpy as np
import pytest
from PIL import Image

from encoders.base import InvalidEmbedding
from encoders.fake import FakeSpace

from .conftest import tone


def test_outputs_follow_the_contract(fake_space):
    texts = fake_space.encode_texts(["a red circle", "", "a low drone"])
    images = fake_space.encode_images([Image.new("RGB", (20, 10), "red"), Image.new("L", (5, 5))])
    audio = fake_space.encode_audio([(tone(), 16000), (np.zeros(800, np.float32), 8000)])
    for vectors, n in ((texts, 3), (images, 2), (audio, 2)):
        assert vectors.shape == (n, 32) and vectors.dtype == np.float32
        assert np.isfinite(vectors).all()
        np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)


def test_is_deterministic_across_instances():
    a, b = FakeSpace("a"), FakeSpace("b")
    np.testing.assert_array_equal(a.encode_texts(["hello world"]), b.encode_texts(["hello world"]))
    img = Image.new("RGB", (16, 16), "blue")
    np.testing.assert_array_equal(a.encode_images([img]), b.encode_images([img]))
    np.testing.assert_array_equal(a.encode_audio([(tone(), 16000)]), b.encode_audio([(tone(), 16000)]))


def test_vectors_carry_some_meaning(fake_space):
    query, near, far = fake_space.encode_texts(["red circle", "a red circle", "quiet blue noise"])
    assert query @ near > query @ far
    rng = np.random.default_rng(0)
    noise, other_noise, beep = fake_space.encode_audio(
        [(rng.normal(size=16000), 16000), (rng.normal(size=16000), 16000), (tone(freq=3000), 16000)]
    )
    assert noise @ other_noise > noise @ beep


def test_dim_and_identity_are_configurable():
    space = FakeSpace("f", dim=8)
    assert space.encode_texts(["x"]).shape == (1, 8)
    assert space.identity.startswith("fake:dim=8")


def test_empty_input_gives_zero_rows(fake_space):
    assert fake_space.encode_texts([]).shape == (0, 32)
    assert fake_space.encode_images([]).shape == (0, 32)
    assert fake_space.encode_audio([]).shape == (0, 32)
    assert fake_space.encode_audio_with_segments([]) == []


def test_long_audio_is_split_into_overlapping_segments(fake_space):
    segments = fake_space.encode_audio_segments(tone(seconds=2.2), 16000)
    assert [(s.start, s.end) for s in segments] == [(0.0, 1.0), (0.5, 1.5), (1.0, 2.0), (1.2, 2.2)]
    [(item, again)] = fake_space.encode_audio_with_segments([(tone(seconds=2.2), 16000)])
    mean = np.mean([s.vector for s in again], axis=0)
    np.testing.assert_allclose(item, mean / np.linalg.norm(mean), rtol=1e-5)


def test_nan_output_raises_invalid_embedding(fake_space, monkeypatch):
    monkeypatch.setattr(fake_space, "_encode_texts", lambda texts: np.full((len(texts), 32), np.nan))
    with pytest.raises(InvalidEmbedding):
        fake_space.encode_texts(["x"])
