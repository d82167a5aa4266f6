"""ClapSpace with a tiny random CLAP saved by ``save_pretrained``: in a folder, and in the hub cache offline."""

import shutil

import numpy as np
import pytest
import torch
from PIL import Image

import encoders
from encoders.base import UnsupportedModality, WeightsNotFound
from encoders.clap import ClapSpace

from .conftest import tone
from .hub_layout import use_offline_hub, write_hub_repo

REPO = "test-org/tiny-clap"


@pytest.fixture
def offline_hub(tmp_path, monkeypatch):
    return use_offline_hub(tmp_path, monkeypatch)


def save_tiny_clap(folder, seed: int = 0):
    from transformers import ClapConfig, ClapFeatureExtractor, ClapModel, ClapProcessor, RobertaTokenizer

    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, "<mask>": 4}
    for c in "abcdefghijklmnopqrstuvwxyz":
        vocab.setdefault(c, len(vocab))
        vocab.setdefault("Ġ" + c, len(vocab))
    config = ClapConfig(
        text_config={
            "vocab_size": len(vocab),
            "hidden_size": 32,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "intermediate_size": 37,
            "max_position_embeddings": 34,
            "pad_token_id": 1,
        },
        audio_config={
            "window_size": 4,
            "num_mel_bins": 16,
            "spec_size": 64,
            "patch_size": 2,
            "patch_stride": 2,
            "hidden_size": 32,
            "patch_embeds_hidden_size": 16,
            "depths": [1, 1],
            "num_attention_heads": [2, 2],
            "num_hidden_layers": 2,
            "projection_dim": 24,
        },
        projection_dim=24,
    )
    torch.manual_seed(seed)
    ClapModel(config).save_pretrained(folder)
    # One-second windows at 16 kHz (LAION's CLAP: ten seconds at 48 kHz, 64 mel bins).
    features = ClapFeatureExtractor(
        feature_size=16,
        sampling_rate=16000,
        hop_length=160,
        max_length_s=1,
        fft_window_size=400,
        frequency_max=8000,
        truncation="rand_trunc",
    )
    ClapProcessor(feature_extractor=features, tokenizer=RobertaTokenizer(vocab=vocab, merges=[])).save_pretrained(
        folder
    )
    return folder


@pytest.fixture(scope="module")
def clap_folder(tmp_path_factory):
    return save_tiny_clap(tmp_path_factory.mktemp("clap") / "tiny-clap")


@pytest.fixture(scope="module")
def clap(clap_folder):
    return ClapSpace("sounds", model=str(clap_folder), batch_size=3)


def in_hub_cache(cache, folder, repo=REPO):
    return write_hub_repo(cache, repo, {p.name: p for p in folder.iterdir() if p.is_file()})


def test_texts_and_audio_give_unit_vectors(clap):
    assert clap.dim == 24 and clap.modalities == {"text", "audio"}
    texts = clap.encode_texts(["a dog barking", "", "x" * 2000])  # the long one is truncated to the model
    audio = clap.encode_audio([(tone(1.0), 16000), (tone(0.3, 880, 44100), 44100)])
    for vectors in (texts, audio):
        assert vectors.dtype == np.float32 and vectors.shape[1] == 24
        assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    assert not np.allclose(texts[0], texts[1])
    with pytest.raises(UnsupportedModality):
        clap.encode_images([Image.new("RGB", (8, 8))])


def test_windows_and_moments(clap):
    stereo = np.stack([tone(3.5, 300), tone(3.5, 500)], axis=1)  # (frames, channels)
    [(item, segments)] = clap.encode_audio_with_segments([(stereo, 16000)])
    # One-second windows every half second; the last one ends with the recording.
    assert [(s.start, s.end) for s in segments] == [(x / 2, x / 2 + 1) for x in range(6)]
    mean = np.mean([s.vector for s in segments], axis=0)
    assert np.allclose(item, mean / np.linalg.norm(mean), atol=1e-5)
    [short] = clap.encode_audio_segments(tone(0.25), 16000)  # repeat-padded to one window
    assert (short.start, short.end) == (0.0, 0.25)
    # Batching across clips and windows changes nothing.
    together = clap.encode_audio([(tone(2.2, 300), 16000), (tone(0.4, 600), 16000), (tone(1.7, 900), 16000)])
    alone = [clap.encode_audio([clip])[0] for clip in [(tone(2.2, 300), 16000), (tone(0.4, 600), 16000)]]
    assert np.allclose(together[:2], alone, atol=1e-5)


def test_identity_hashes_the_files(clap, clap_folder, tmp_path):
    identity = clap.identity
    assert identity.startswith("clap:sha256=") and identity.endswith(":window=1/0.5:pre=1")
    copy = shutil.copytree(clap_folder, tmp_path / "elsewhere")
    assert ClapSpace("x", model=str(copy)).identity == identity
    assert ClapSpace("x", model=str(copy), hop_seconds=0.25).identity != identity
    config = copy / "config.json"
    config.write_text(config.read_text().replace("{", '{"a_setting_nobody_reads": 1, ', 1))
    assert ClapSpace("x", model=str(copy)).identity != identity


def test_hub_id_loads_offline_through_the_registry(clap, clap_folder, offline_hub):
    in_hub_cache(offline_hub, clap_folder)
    encoders.configure({"sounds": {"ENCODER": "encoders.clap.ClapSpace", "OPTIONS": {"model": REPO}}})
    try:
        space = encoders.get_space("sounds")
        assert space.identity == clap.identity  # same files, same space
        clip = [(tone(1.3, 440), 16000)]
        assert np.allclose(space.encode_audio(clip), clap.encode_audio(clip), atol=1e-5)
        assert np.allclose(space.encode_texts(["a bell"]), clap.encode_texts(["a bell"]), atol=1e-5)
    finally:
        encoders.reset()


def test_changed_weights_in_the_hub_cache_change_the_identity(clap, tmp_path, offline_hub):
    in_hub_cache(offline_hub, save_tiny_clap(tmp_path / "other", seed=1))
    other = ClapSpace("sounds", model=REPO)
    assert other.identity != clap.identity
    assert not np.allclose(other.encode_texts(["a bell"]), clap.encode_texts(["a bell"]))


def test_missing_hub_model_names_what_to_fetch(offline_hub):
    with pytest.raises(WeightsNotFound) as err:
        ClapSpace("sounds", model="laion/clap-htsat-unfused")
    message = str(err.value)
    assert "laion/clap-htsat-unfused" in message and "config.json" in message
    assert "model.safetensors or pytorch_model.bin" in message and "fetchmodels --to DIR" in message


def test_hub_cache_without_weights_fails_on_first_use(clap_folder, tmp_path, offline_hub):
    partial = {p.name: p for p in clap_folder.iterdir() if p.is_file() and p.suffix != ".safetensors"}
    write_hub_repo(offline_hub, REPO, partial)
    space = ClapSpace("sounds", model=REPO)
    with pytest.raises(WeightsNotFound, match="model.safetensors or pytorch_model.bin"):
        space.encode_texts(["a bell"])


def test_required_files():
    [files] = ClapSpace.required_files("sounds", {"model": "laion/clap-htsat-unfused"})
    assert files.repo_id == "laion/clap-htsat-unfused" and ("config.json",) in files.required
