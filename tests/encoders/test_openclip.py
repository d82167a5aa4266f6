import shutil

import numpy as np
import open_clip
import pytest
from PIL import Image

from encoders.audio.tower import load_tower, save_tower
from encoders.base import EncoderError, InvalidEmbedding, UnsupportedModality, WeightsNotFound
from encoders.demo import synth
from encoders.openclip import OpenClipSpace
from encoders.registry import DEFAULT_SPACES, WEIGHTS_DIR

from .conftest import tone

DEMO = DEFAULT_SPACES["demo"]["OPTIONS"]


def unit_and_finite(vectors: np.ndarray, dim: int = 128) -> bool:
    return (
        vectors.dtype == np.float32
        and vectors.shape[1] == dim
        and bool(np.isfinite(vectors).all())
        and np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    )


def test_description_of_the_demo_space(demo_space):
    assert demo_space.dim == 128 and demo_space.metric == "cosine"
    assert demo_space.modalities == {"text", "image", "audio"}
    assert demo_space.can_embed("audio") and not demo_space.can_embed("video")
    arch, model, digest, pre, views, audio = demo_space.identity.split(":")
    assert (arch, model, pre, views) == ("open_clip", "demo-clip", "pre=1", "views=mirror")
    assert digest.startswith("sha256=") and len(digest) == len("sha256=") + 16
    assert audio.startswith("audio-sha256=")


def test_mirror_views_make_an_image_and_its_mirror_one_vector(demo_space):


    image = synth.render_image(np.random.default_rng(3), "red", "crescent", varied=True).image
    mirror = image.transpose(Image.FLIP_LEFT_RIGHT)
    both = demo_space.encode_images([image, mirror])
    assert unit_and_finite(both, 128) and float(both[0] @ both[1]) > 0.9999
    options = {k: v for k, v in DEFAULT_SPACES["demo"]["OPTIONS"].items() if k != "image_views"}
    plain = OpenClipSpace("plain", **options)
    single = plain.encode_images([image, mirror])
    # Without the option the two views are two vectors, and the space is another space.
    assert float(single[0] @ single[1]) < float(both[0] @ both[1])
    assert plain.identity != demo_space.identity and "views=" not in plain.identity
    with pytest.raises(EncoderError, match="image_views"):
        OpenClipSpace("bad", **options, image_views=["upside-down"])


def test_every_modality_gives_unit_finite_vectors(demo_space):
    samples = list(synth.image_samples(3, seed=5))
    assert unit_and_finite(demo_space.encode_texts(["a red circle", "", "x" * 2000]))
    assert unit_and_finite(demo_space.encode_images([s.image for s in samples] + [Image.new("L", (300, 20))]))
    assert unit_and_finite(demo_space.encode_audio([(tone(0.1), 16000), (tone(7.0, sr=44100), 44100)]))


def test_empty_inputs(demo_space):
    for vectors in (demo_space.encode_texts([]), demo_space.encode_images([]), demo_space.encode_audio([])):
        assert vectors.shape == (0, 128) and vectors.dtype == np.float32


def test_identical_input_gives_identical_vectors(demo_space):
    texts = [f"a {c} star" for c in synth.COLOURS] * 5
    batched = demo_space.encode_texts(texts)
    np.testing.assert_array_equal(batched, demo_space.encode_texts(texts))
    image = synth.render_image(np.random.default_rng(2)).image
    np.testing.assert_array_equal(demo_space.encode_images([image]), demo_space.encode_images([image.copy()]))
    clip = (tone(2.5, 300), 16000)
    np.testing.assert_array_equal(demo_space.encode_audio([clip]), demo_space.encode_audio([clip]))
    # Across batch sizes BLAS may sum in another order: equal up to float rounding.
    np.testing.assert_allclose(batched[0], batched[8], atol=1e-6)
    single = OpenClipSpace("one-by-one", **DEMO, batch_size=1).encode_texts(texts[:3])
    np.testing.assert_allclose(single, batched[:3], atol=1e-6)


def test_long_audio_gets_segments_and_a_pooled_item_vector(demo_space):
    wave = np.concatenate([tone(3.0, 150), tone(3.0, 2000)])
    [(item, segments)] = demo_space.encode_audio_with_segments([(wave, 16000)])
    assert [(s.start, s.end) for s in segments] == [(0, 2), (1, 3), (2, 4), (3, 5), (4, 6)]
    assert unit_and_finite(np.stack([s.vector for s in segments]))
    # The first window is all low tone and the last all high tone: they differ.
    assert segments[0].vector @ segments[-1].vector < 0.9
    np.testing.assert_allclose(item, demo_space.encode_audio([(wave, 16000)])[0], atol=1e-6)
    segment_only = demo_space.encode_audio_segments(wave, 16000)
    np.testing.assert_allclose(segment_only[2].vector, segments[2].vector, atol=1e-6)


def test_checkpoint_copied_elsewhere_gives_identical_vectors(demo_space, tmp_path):
    for name in ("demo-clip.pt", "demo-audio.pt"):
        shutil.copy(WEIGHTS_DIR / name, tmp_path / name)
    copy = OpenClipSpace(
        "copy",
        model="demo-clip",
        pretrained=str(tmp_path / "demo-clip.pt"),
        audio_tower=str(tmp_path / "demo-audio.pt"),
        image_views=DEMO["image_views"],
    )
    image = synth.render_image(np.random.default_rng(1)).image
    clip = (tone(2.5, 300), 16000)
    np.testing.assert_array_equal(copy.encode_texts(["a blue square"]), demo_space.encode_texts(["a blue square"]))
    np.testing.assert_array_equal(copy.encode_images([image]), demo_space.encode_images([image]))
    np.testing.assert_array_equal(copy.encode_audio([clip]), demo_space.encode_audio([clip]))
    assert copy.identity == demo_space.identity


def test_space_without_audio_tower_refuses_audio():
    space = OpenClipSpace("no-audio", model="demo-clip", pretrained=DEMO["pretrained"])
    with pytest.raises(UnsupportedModality, match="'no-audio' cannot embed 'audio'"):
        space.encode_audio([(tone(), 16000)])


def test_missing_weights_file_names_the_file_and_the_option(tmp_path):
    missing = str(tmp_path / "nowhere.pt")
    space = OpenClipSpace("broken", model="demo-clip", pretrained=missing)
    with pytest.raises(WeightsNotFound) as err:
        space.encode_texts(["x"])
    assert missing in str(err.value)
    assert "SEARCH_SPACES['broken']['OPTIONS']['pretrained']" in str(err.value)


def test_undownloadable_tag_names_the_url_to_fetch(monkeypatch):
    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(open_clip, "download_pretrained", offline)
    space = OpenClipSpace("vit", model="ViT-B-32", pretrained="laion2b_s34b_b79k")
    with pytest.raises(WeightsNotFound) as err:
        space.warmup()
    message = str(err.value)
    assert (
        "https://huggingface.co/laion/CLIP-ViT-B-32-laion2B-s34B-b79K/resolve/main/open_clip_pytorch_model.bin"
        in message
    )
    assert "SEARCH_SPACES['vit']['OPTIONS']['pretrained']" in message


def test_no_weights_is_an_error_unless_random_weights_are_allowed():
    with pytest.raises(WeightsNotFound, match="laion2b_s34b_b79k"):
        _ = OpenClipSpace("vit", model="ViT-B-32").identity
    a = OpenClipSpace("a", model="demo-clip", allow_random_weights=True)
    b = OpenClipSpace("b", model="demo-clip", allow_random_weights=True)
    assert a.identity == "open_clip:demo-clip:random-seed0:pre=1"
    np.testing.assert_array_equal(a.encode_texts(["same"]), b.encode_texts(["same"]))


def test_missing_audio_tower_names_the_option(tmp_path):
    space = OpenClipSpace("s", model="demo-clip", pretrained=DEMO["pretrained"], audio_tower=str(tmp_path / "t.pt"))
    with pytest.raises(WeightsNotFound, match=r"\['OPTIONS'\]\['audio_tower'\]"):
        _ = space.identity


def test_audio_tower_trained_for_other_weights_is_refused(tmp_path):
    tower = load_tower(DEMO["audio_tower"]).tower
    save_tower(tower, tmp_path / "other.pt", clip_model="demo-clip", clip_weights_sha256="0" * 64)
    space = OpenClipSpace("s", model="demo-clip", pretrained=DEMO["pretrained"], audio_tower=str(tmp_path / "other.pt"))
    with pytest.raises(EncoderError, match="retrain it"):
        space.encode_audio([(tone(), 16000)])


def test_unknown_architecture_and_bad_batch_size():
    with pytest.raises(EncoderError, match="unknown open_clip architecture 'ViT-Nope'"):
        OpenClipSpace("s", model="ViT-Nope")
    with pytest.raises(EncoderError, match="batch_size"):
        OpenClipSpace("s", model="demo-clip", batch_size=0)


def test_nan_from_the_model_raises_invalid_embedding(demo_space, monkeypatch):
    model = demo_space._load().model
    monkeypatch.setattr(model, "encode_text", lambda tokens: tokens.float()[:, :1].expand(-1, 128) * np.nan)
    with pytest.raises(InvalidEmbedding, match="non-finite"):
        demo_space.encode_texts(["x"])
