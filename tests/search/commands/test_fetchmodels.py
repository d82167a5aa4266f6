"""`manage.py fetchmodels`: what it plans for a configuration, and how it behaves without network."""

import pytest
from django.core.management import CommandError, call_command

from encoders.openclip import OpenClipSpace
from encoders.registry import DEFAULT_SPACES
from tests.encoders.hub_layout import use_offline_hub
from tests.encoders.test_pretrained_offline import REPO as TINY_REPO
from tests.encoders.test_pretrained_offline import write_open_clip_repo

REAL = {
    "pics": {
        "ENCODER": "encoders.openclip.OpenClipSpace",
        "OPTIONS": {"model": "ViT-B-32", "pretrained": "laion2b_s34b_b79k", "modalities": ["text", "image"]},
    },
    "sounds": {"ENCODER": "encoders.clap.ClapSpace", "OPTIONS": {"model": "laion/clap-htsat-unfused"}},
}


@pytest.fixture
def offline_hub(tmp_path, monkeypatch):
    return use_offline_hub(tmp_path, monkeypatch)


def run(*args) -> str:
    from io import StringIO

    out = StringIO()
    call_command("fetchmodels", *args, stdout=out)
    return out.getvalue()


def test_dry_run_lists_what_the_spaces_need(settings):
    settings.SEARCH_SPACES = REAL
    out = run("--dry-run")
    assert (
        "pics: laion/CLIP-ViT-B-32-laion2B-s34B-b79K (open_clip_model.safetensors or open_clip_pytorch_model.bin)"
        in out
    )
    assert "sounds: laion/clap-htsat-unfused (config.json, model.safetensors or pytorch_model.bin," in out
    assert "sounds" not in run("--dry-run", "--space", "pics")


def test_local_files_need_nothing(settings, tmp_path):
    settings.SEARCH_SPACES = {
        "demo": DEFAULT_SPACES["demo"],
        "clap": {"ENCODER": "encoders.clap.ClapSpace", "OPTIONS": {"model": str(tmp_path)}},  # a local folder
    }
    assert "Nothing to fetch" in run("--to", str(tmp_path / "models"))


def test_two_spaces_on_one_model_fetch_it_once(settings):
    settings.SEARCH_SPACES = {"a": REAL["pics"], "b": REAL["pics"] | {"OPTIONS": {**REAL["pics"]["OPTIONS"]}}}
    assert run("--dry-run").count("laion/CLIP-ViT-B-32") == 1


def test_without_network_the_error_names_what_to_fetch(settings, offline_hub, tmp_path):
    settings.SEARCH_SPACES = REAL
    with pytest.raises(CommandError) as err:
        run("--to", str(tmp_path / "models"))
    message = str(err.value)
    assert "laion/CLIP-ViT-B-32-laion2B-s34B-b79K" in message and "for space 'pics'" in message
    assert "laion/clap-htsat-unfused" in message and "for space 'sounds'" in message
    assert "https://huggingface.co" in message and "HF_HUB_OFFLINE" in message


def test_bad_arguments(settings):
    settings.SEARCH_SPACES = REAL
    with pytest.raises(CommandError, match="unknown space"):
        run("--dry-run", "--space", "nope")
    with pytest.raises(CommandError, match="--to DIR"):
        run()


def test_a_fetched_folder_serves_an_offline_server(settings, offline_hub, tmp_path, monkeypatch):
    # What a fetch on a connected machine leaves in DIR/hub (written here, as there is no network).
    models = tmp_path / "models"
    write_open_clip_repo(models / "hub", tmp_path, fmt="safetensors")
    settings.SEARCH_SPACES = {
        "clip": {"ENCODER": "encoders.openclip.OpenClipSpace", "OPTIONS": {"model": f"hf-hub:{TINY_REPO}"}}
    }
    out = run("--to", str(models))  # everything is there already: nothing to download
    assert f"fetched {TINY_REPO}: 2 files" in out and f"HF_HOME={models}" in out
    # The server: HF_HOME=DIR, no network.
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(models / "hub"))
    assert OpenClipSpace("clip", model=f"hf-hub:{TINY_REPO}").encode_texts(["a cat"]).shape == (1, 32)
