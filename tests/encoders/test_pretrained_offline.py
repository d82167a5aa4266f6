"""Pretrained open_clip weights loaded through the production path, with downloads disabled.

Small randomly initialised models are saved in the layouts a download leaves: an
``hf-hub:org/name`` repository (``open_clip_config.json`` + weights) and a pretrained
tag's file, both in the Hugging Face cache under a temporary ``HF_HOME``.
"""

import json
import shutil

import numpy as np
import open_clip
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

import encoders
from encoders import pretrained
from encoders.base import WeightsNotFound
from encoders.openclip import OpenClipSpace

from .hub_layout import use_offline_hub, write_hub_repo

TINY = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 16, "head_width": 16},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}
PREPROCESS = {"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25], "interpolation": "bicubic"}
REPO = "test-org/tiny-clip"


@pytest.fixture
def offline_hub(tmp_path, monkeypatch):
    return use_offline_hub(tmp_path, monkeypatch)


def tiny_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return {k: v.contiguous() for k, v in open_clip.CLIP(**TINY).state_dict().items()}


def write_open_clip_repo(cache, tmp_path, *, fmt: str = "bin", seed: int = 0, repo: str = REPO):
    src = tmp_path / f"src-{repo.replace('/', '-')}-{fmt}-{seed}"
    src.mkdir(parents=True, exist_ok=True)
    (src / "open_clip_config.json").write_text(json.dumps({"model_cfg": TINY, "preprocess_cfg": PREPROCESS}))
    if fmt == "bin":
        weights = src / "open_clip_pytorch_model.bin"
        torch.save(tiny_state_dict(seed), weights)
    else:
        weights = src / "open_clip_model.safetensors"
        save_file(tiny_state_dict(seed), str(weights))
    return write_hub_repo(cache, repo, {"open_clip_config.json": src / "open_clip_config.json", weights.name: weights})


def sample_image() -> Image.Image:
    return Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 50, 3), dtype=np.uint8))


@pytest.mark.parametrize("fmt", ["bin", "safetensors"])
def test_hf_hub_repository_loads_offline_through_the_registry(offline_hub, tmp_path, fmt):
    snapshot = write_open_clip_repo(offline_hub, tmp_path, fmt=fmt)
    encoders.configure({"clip": {"ENCODER": "encoders.openclip.OpenClipSpace", "OPTIONS": {"model": f"hf-hub:{REPO}"}}})
    try:
        space = encoders.get_space("clip")
        assert space.dim == 32 and space.modalities == {"text", "image"}
        texts = space.encode_texts(["a photo of a dog", "a cat"])
        images = space.encode_images([sample_image()])
        assert texts.shape == (2, 32) and images.shape == (1, 32)
        assert np.allclose(np.linalg.norm(texts, axis=1), 1, atol=1e-5)
        # The weights really are the checkpoint's: compare with open_clip loading the file directly.
        model = open_clip.CLIP(**TINY)
        weights = next(p for p in snapshot.iterdir() if p.name != "open_clip_config.json")
        open_clip.load_checkpoint(model, str(weights))
        tokens = open_clip.get_tokenizer(f"hf-hub:{REPO}")(["a cat"])
        with torch.inference_mode():
            direct = model.encode_text(tokens)[0].numpy()
        assert np.allclose(texts[1], direct / np.linalg.norm(direct), atol=1e-5)
        identity = space.identity
        assert identity.startswith(f"open_clip:hf-hub:{REPO}:sha256=")
        assert "config-sha256=" in identity
    finally:
        encoders.reset()
    # A fresh process (here: a fresh instance) reading the same files agrees.
    assert OpenClipSpace("clip", model=f"hf-hub:{REPO}").identity == identity


def test_changed_weights_change_the_identity(offline_hub, tmp_path):
    write_open_clip_repo(offline_hub, tmp_path, seed=0)
    before = OpenClipSpace("clip", model=f"hf-hub:{REPO}")
    identity, vector = before.identity, before.encode_texts(["a cat"])
    assert OpenClipSpace("clip", model=f"hf-hub:{REPO}").identity == identity
    # A new revision of the repository (what a re-download after an upstream change leaves).
    shutil.rmtree(offline_hub / f"models--{REPO.replace('/', '--')}")
    write_open_clip_repo(offline_hub, tmp_path, seed=1)
    after = OpenClipSpace("clip", model=f"hf-hub:{REPO}")
    assert after.identity != identity
    assert not np.allclose(after.encode_texts(["a cat"]), vector)


def test_missing_repository_names_what_to_fetch(offline_hub):
    with pytest.raises(WeightsNotFound) as err:
        OpenClipSpace("clip", model="hf-hub:test-org/absent")
    message = str(err.value)
    assert "test-org/absent" in message and "open_clip_config.json" in message
    assert "fetchmodels --to DIR" in message and "HF_HOME=DIR" in message


def test_repository_without_weights_names_the_weight_files(offline_hub, tmp_path):
    config = tmp_path / "open_clip_config.json"
    config.write_text(json.dumps({"model_cfg": TINY}))
    write_hub_repo(offline_hub, REPO, {"open_clip_config.json": config})
    space = OpenClipSpace("clip", model=f"hf-hub:{REPO}")  # the config alone is enough to describe it
    assert space.dim == 32
    with pytest.raises(WeightsNotFound, match="open_clip_model.safetensors or open_clip_pytorch_model.bin"):
        space.encode_texts(["a cat"])


@pytest.fixture
def tiny_tag(tmp_path, monkeypatch):
    """A pretrained tag ``tiny-test-clip/tiny`` that lives on the hub like ``ViT-B-32/laion2b_s34b_b79k``."""
    config_dir = tmp_path / "configs"
    config_dir.mkdir()
    (config_dir / "tiny-test-clip.json").write_text(json.dumps(TINY))
    open_clip.add_model_config(config_dir)
    monkeypatch.setitem(
        open_clip.pretrained._PRETRAINED,
        "tiny-test-clip",
        {"tiny": open_clip.pretrained._pcfg(hf_hub="test-org/tiny-clip-tag/", quick_gelu=False)},
    )
    return "test-org/tiny-clip-tag"


def test_pretrained_tag_loads_from_the_hub_cache_offline(offline_hub, tmp_path, tiny_tag):
    weights = tmp_path / "open_clip_pytorch_model.bin"
    torch.save(tiny_state_dict(3), weights)
    write_hub_repo(offline_hub, tiny_tag, {"open_clip_pytorch_model.bin": weights})
    space = OpenClipSpace("clip", model="tiny-test-clip", pretrained="tiny")
    assert space.encode_texts(["a cat"]).shape == (1, 32)
    assert space.identity == f"open_clip:tiny-test-clip:sha256={pretrained.sha256_file(weights)[:16]}:pre=1"


def test_pretrained_tag_not_in_the_cache_names_url_and_fetchmodels(offline_hub, tiny_tag):
    space = OpenClipSpace("clip", model="tiny-test-clip", pretrained="tiny")
    with pytest.raises(WeightsNotFound) as err:
        space.warmup()
    message = str(err.value)
    assert "https://huggingface.co/test-org/tiny-clip-tag/resolve/main/open_clip_pytorch_model.bin" in message
    assert "fetchmodels" in message


def test_required_files_of_open_clip_spaces():
    [tag] = OpenClipSpace.required_files("clip", {"model": "ViT-B-32", "pretrained": "laion2b_s34b_b79k"})
    assert tag.repo_id == "laion/CLIP-ViT-B-32-laion2B-s34B-b79K"
    assert tag.required == (("open_clip_model.safetensors", "open_clip_pytorch_model.bin"),)
    [repo] = OpenClipSpace.required_files("clip", {"model": "hf-hub:org/name"})
    assert repo.repo_id == "org/name" and repo.required[0] == ("open_clip_config.json",)
    assert OpenClipSpace.required_files("demo", encoders.DEFAULT_SPACES["demo"]["OPTIONS"]) == []
