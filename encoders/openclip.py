"""Text and image (and optionally audio) through an open_clip model.

Weights come from a local checkpoint file, an open_clip pretrained tag, or a
whole ``hf-hub:org/name`` repository (``open_clip_config.json`` and weights). A
tag or repository is read from the Hugging Face cache (``cache_dir``, else
``$HF_HUB_CACHE``) and downloaded when the machine has internet; when it cannot
be, the error names the exact files to fetch elsewhere and the option to point
at them. Random weights are never a silent fallback: searching with them returns
confident nonsense, so they need ``allow_random_weights=True`` (benchmarks and
tests only).
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import open_clip
import torch
from PIL import Image

from encoders import pretrained as hub
from encoders.audio import frontend
from encoders.audio.tower import AudioTower, load_tower, sha256_file
from encoders.base import (
    AudioClip,
    EmbeddingSpace,
    EncoderError,
    ImageDecodeError,
    Modality,
    WeightsNotFound,
)

MODEL_CONFIG_DIR = Path(__file__).resolve().parent / "model_configs"
open_clip.add_model_config(MODEL_CONFIG_DIR)

IMAGE_VIEWS = frozenset({"mirror"})
# Bump when our own preprocessing around open_clip changes (tokenisation,
# image conversion, audio windowing/pooling): stored vectors become stale.
PREPROCESS_VERSION = 1

# Seed for allow_random_weights, so "random" is still reproducible and two
# processes agree on the vectors (and on the identity string).
RANDOM_WEIGHTS_SEED = 0


def hub_download_url(tag_cfg: dict) -> str:
    """The URL open_clip would download a pretrained tag from."""
    if tag_cfg.get("hf_hub"):
        repo, filename = os.path.split(tag_cfg["hf_hub"])
        return f"https://huggingface.co/{repo}/resolve/main/{filename or open_clip.constants.HF_WEIGHTS_NAME}"
    return tag_cfg.get("url") or tag_cfg.get("file", "")


HF_HUB_PREFIX = "hf-hub:"
HUB_CONFIG = open_clip.constants.HF_CONFIG_NAME
# open_clip's own order: safetensors first when a repository has both.
HUB_WEIGHTS = (open_clip.constants.HF_SAFE_WEIGHTS_NAME, open_clip.constants.HF_WEIGHTS_NAME)


def tag_files(tag_cfg: dict) -> hub.HubFiles:
    """The Hugging Face file(s) behind a pretrained tag, in the order open_clip tries them."""
    repo, filename = os.path.split(tag_cfg["hf_hub"])
    if not filename or filename == open_clip.constants.HF_WEIGHTS_NAME:
        return hub.HubFiles(repo, (HUB_WEIGHTS,))
    if filename.endswith((".bin", ".pth")):
        return hub.HubFiles(repo, ((filename[:-4] + ".safetensors", filename),))
    return hub.HubFiles(repo, ((filename,),))


def repo_files(repo_id: str) -> hub.HubFiles:
    """An ``hf-hub:`` open_clip repository: its config and weights."""
    return hub.HubFiles(repo_id, ((HUB_CONFIG,), HUB_WEIGHTS))


@dataclass
class _Loaded:
    model: Any
    preprocess: Any
    tokenizer: Any
    audio: AudioTower | None


class OpenClipSpace(EmbeddingSpace):
    """OPTIONS: ``model`` (open_clip architecture, or ``hf-hub:org/name`` for a repository with
    its own config and weights, where ``pretrained`` is not used), ``pretrained`` (tag or file),
    ``audio_tower`` (checkpoint from ``encoders.train_audio``), ``device``,
    ``batch_size``, ``precision``, ``cache_dir``, ``allow_random_weights``,
    ``image_views`` (``["mirror"]``: an image's vector is the mean of it and its
    mirror image, test-time augmentation for a model trained to ignore the
    difference; twice the image encoding time), ``unknown_texts`` and
    ``unknown_similarity`` (where the model puts text it has no meaning for:
    ``EmbeddingSpace.unknown_text_point``).
    """

    def __init__(
        self,
        name: str,
        *,
        model: str,
        pretrained: str | None = None,
        audio_tower: str | None = None,
        device: str | None = None,
        batch_size: int = 32,
        precision: str = "fp32",
        cache_dir: str | None = None,
        allow_random_weights: bool = False,
        image_views: list[str] | tuple[str, ...] = (),
        unknown_texts: list[str] | tuple[str, ...] = (),
        unknown_similarity: float = 0.9,
    ):
        super().__init__(name)
        if isinstance(unknown_texts, str) or not all(isinstance(t, str) and t.strip() for t in unknown_texts):
            raise EncoderError(f"space {name!r}: unknown_texts must be a list of sentences")
        if not 0.0 < float(unknown_similarity) <= 1.0:
            raise EncoderError(f"space {name!r}: unknown_similarity must be in (0, 1], got {unknown_similarity!r}")
        self.unknown_texts = tuple(unknown_texts)
        self.unknown_similarity = float(unknown_similarity)
        # Re-entrant: loading resolves (and may download) weights under the same lock.
        self._lock = threading.RLock()
        self.model_name = model
        self.cache_dir = cache_dir
        self.hub_repo = model[len(HF_HUB_PREFIX) :] if model.startswith(HF_HUB_PREFIX) else None
        self._hub_config: str | None = None
        if self.hub_repo:
            # Only the small config here (for ``dim``); the weights are resolved on first use.
            [self._hub_config] = self._hub_files((HUB_CONFIG,)).values()
            with open(self._hub_config, encoding="utf-8") as f:
                config = json.load(f).get("model_cfg")
            if not config:
                raise EncoderError(f"space {name!r}: {HUB_CONFIG} of {model} has no 'model_cfg'")
        else:
            config = open_clip.get_model_config(model)
        if config is None:
            raise EncoderError(
                f"space {name!r}: unknown open_clip architecture {model!r} "
                f"(known: {', '.join(open_clip.list_models())})"
            )
        if batch_size < 1:
            raise EncoderError(f"space {name!r}: batch_size must be at least 1, got {batch_size}")
        self.pretrained = pretrained
        self.audio_tower_path = audio_tower
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.batch_size = batch_size
        self.precision = precision
        self.allow_random_weights = allow_random_weights
        unknown = set(image_views) - IMAGE_VIEWS
        if unknown or isinstance(image_views, str):
            raise EncoderError(
                f"space {name!r}: image_views must be a list of {sorted(IMAGE_VIEWS)}, got {image_views!r}"
            )
        self.image_views = tuple(sorted(set(image_views)))
        self.dim = int(config["embed_dim"])
        self.modalities = frozenset({Modality.TEXT, Modality.IMAGE} | ({Modality.AUDIO} if audio_tower else set()))
        self._weights: tuple[str | None, dict] | None = None
        self._identity: str | None = None
        self._clip_digest: str | None = None
        self._loaded: _Loaded | None = None

    @classmethod
    def required_files(cls, name: str, options: dict) -> list[hub.HubFiles]:
        model, tag = options.get("model", ""), options.get("pretrained")
        if model.startswith(HF_HUB_PREFIX):
            return [repo_files(model[len(HF_HUB_PREFIX) :])]
        if tag and not os.path.isfile(tag) and (tag_cfg := open_clip.get_pretrained_cfg(model, tag)):
            return [tag_files(tag_cfg)]
        return []

    # ------------------------------------------------------------------ loading

    def _hub_files(self, alternatives: tuple[str, ...]) -> dict[str, str]:
        """One file of the ``hf-hub:`` repository: the first of ``alternatives`` it has."""
        return hub.resolve(
            hub.HubFiles(self.hub_repo, (alternatives,)),
            cache_dir=self.cache_dir,
            space=self.name,
            whole=repo_files(self.hub_repo),
        )

    def _resolve_weights(self) -> tuple[str | None, dict]:
        """Local checkpoint path (None for random weights) and the tag's config."""
        with self._lock:
            if self._weights is None:
                self._weights = self._find_weights()
            return self._weights

    def _find_weights(self) -> tuple[str | None, dict]:
        option = f"SEARCH_SPACES[{self.name!r}]['OPTIONS']['pretrained']"
        if self.hub_repo:
            [path] = self._hub_files(HUB_WEIGHTS).values()
            return path, {}
        tags = open_clip.list_pretrained_tags_by_model(self.model_name)
        if not self.pretrained:
            if not self.allow_random_weights:
                raise WeightsNotFound(
                    f"space {self.name!r}: no weights configured for open_clip model {self.model_name!r}; "
                    f"set {option} to a checkpoint file"
                    + (f" or one of its pretrained tags ({', '.join(tags)})" if tags else "")
                )
            return None, {}
        if os.path.isfile(self.pretrained):
            return self.pretrained, {}
        if tag_cfg := open_clip.get_pretrained_cfg(self.model_name, self.pretrained):
            try:
                path = open_clip.download_pretrained(tag_cfg, cache_dir=self.cache_dir)
            except Exception as exc:  # network, hub and filesystem errors all mean "not here"
                raise WeightsNotFound(
                    f"space {self.name!r}: cannot download open_clip weights {self.model_name}/{self.pretrained} "
                    f"({type(exc).__name__}: {exc}). On a machine with internet access fetch "
                    f"{hub_download_url(tag_cfg)} , copy it here and set {option} to the file's path; "
                    f"or {hub.FETCH_HINT}."
                ) from exc
            return path, tag_cfg
        raise WeightsNotFound(
            f"space {self.name!r}: weights file {self.pretrained!r} does not exist and is not a "
            f"pretrained tag of {self.model_name!r}"
            + (f" (tags: {', '.join(tags)})" if tags else "")
            + f"; set {option} to an existing checkpoint file"
        )

    def weights_path(self) -> str | None:
        """Local checkpoint file of the CLIP weights (downloading a tag if needed)."""
        return self._resolve_weights()[0]

    def _load(self) -> _Loaded:
        if self._loaded is not None:
            return self._loaded
        with self._lock:
            if self._loaded is None:
                self._loaded = self._build()
        return self._loaded

    def _build(self) -> _Loaded:
        path, tag_cfg = self._resolve_weights()
        # Seeded so random weights are reproducible, in a forked RNG so the
        # host process's own random state is left alone.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(RANDOM_WEIGHTS_SEED)
            if self.hub_repo:
                return self._build_from_hub(path)
            model, _, preprocess = open_clip.create_model_and_transforms(
                self.model_name,
                pretrained=path,
                precision=self.precision,
                device=self.device,
                cache_dir=self.cache_dir,
                # Loading a tag's file by path skips open_clip's tag handling, so
                # carry over what the tag knows about activation and preprocessing.
                force_quick_gelu=bool(tag_cfg.get("quick_gelu", False)),
                image_mean=tag_cfg.get("mean"),
                image_std=tag_cfg.get("std"),
                image_interpolation=tag_cfg.get("interpolation"),
                image_resize_mode=tag_cfg.get("resize_mode"),
            )
        model.eval()
        return _Loaded(model, preprocess, open_clip.get_tokenizer(self.model_name), self._audio_if_used())

    def _build_from_hub(self, weights: str) -> _Loaded:
        # Config and preprocessing come from the repository's open_clip_config.json; the weights
        # are loaded from the very file the identity hashed, so open_clip is not left to look
        # for them itself (it would carry on with random weights, logging a warning, if it missed).
        model, _, preprocess = open_clip.create_model_and_transforms(
            self.model_name, load_weights=False, precision=self.precision, device=self.device, cache_dir=self.cache_dir
        )
        open_clip.load_checkpoint(model, weights)  # read on the CPU, copied into the model's device
        model.eval()
        tokenizer = open_clip.get_tokenizer(self.model_name, cache_dir=self.cache_dir)
        return _Loaded(model, preprocess, tokenizer, self._audio_if_used())

    def _audio_if_used(self) -> AudioTower | None:
        # A space restricted to text+image never loads (or needs) its tower.
        return self._load_audio_tower() if self.audio_tower_path and self.can_embed(Modality.AUDIO) else None

    def _check_audio_tower_exists(self) -> None:
        if not os.path.isfile(self.audio_tower_path):
            raise WeightsNotFound(
                f"space {self.name!r}: audio tower checkpoint {self.audio_tower_path!r} does not exist; "
                "train one with `python -m encoders.train_audio` and set "
                f"SEARCH_SPACES[{self.name!r}]['OPTIONS']['audio_tower'] to its path"
            )

    def _clip_sha256(self) -> str:
        """Hash of the CLIP weights file ("random" without one); hashed once."""
        with self._lock:
            if self._clip_digest is None:
                path = self.weights_path()
                self._clip_digest = sha256_file(path) if path else "random"
            return self._clip_digest

    def _load_audio_tower(self) -> AudioTower:
        self._check_audio_tower_exists()
        loaded = load_tower(self.audio_tower_path, self.device)
        clip_sha = self._clip_sha256()
        # A tower only lives in the space of the text tower it was trained
        # against; pairing it with other weights gives plausible-looking garbage.
        if loaded.clip_model != self.model_name or loaded.clip_weights_sha256 != clip_sha:
            raise EncoderError(
                f"space {self.name!r}: audio tower {self.audio_tower_path} was trained for "
                f"{loaded.clip_model} weights sha256={loaded.clip_weights_sha256[:16]}, not "
                f"{self.model_name} sha256={clip_sha[:16]}; retrain it with encoders.train_audio"
            )
        return loaded.tower

    @property
    def identity(self) -> str:
        if self._identity is None:
            digest = self._clip_sha256()
            parts = [
                "open_clip",
                self.model_name,
                f"sha256={digest[:16]}" if digest != "random" else f"random-seed{RANDOM_WEIGHTS_SEED}",
                f"pre={PREPROCESS_VERSION}",
            ]
            if self.hub_repo:
                # The repository's config carries the preprocessing (mean, std, size): part of the space too.
                parts.insert(3, f"config-sha256={sha256_file(self._hub_config)[:16]}")
            if self.image_views:
                parts.append(f"views={'+'.join(self.image_views)}")
            if self.audio_tower_path and self.can_embed(Modality.AUDIO):
                self._check_audio_tower_exists()
                parts.append(f"audio-sha256={sha256_file(self.audio_tower_path)[:16]}")
            self._identity = ":".join(parts)
        return self._identity

    # ------------------------------------------------------------------ encoding

    def _batches(self, n: int):
        return (slice(i, i + self.batch_size) for i in range(0, n, self.batch_size))

    def passage_tokens(self) -> int | None:
        tokenizer = self._load().tokenizer
        context = getattr(tokenizer, "context_length", None) or 77
        # Start and end-of-text tokens take two places.
        return max(1, int(context) - 2)

    def count_tokens(self, text: str) -> int:
        tokenizer = self._load().tokenizer
        if hasattr(tokenizer, "encode"):  # open_clip's own BPE tokenizer
            return len(tokenizer.encode(text))
        inner = getattr(tokenizer, "tokenizer", None)  # open_clip's HFTokenizer wraps a transformers one
        if inner is not None:
            return len(inner(text, add_special_tokens=False)["input_ids"])
        return super().count_tokens(text)

    def _encode_texts(self, texts: list[str]) -> np.ndarray:
        loaded = self._load()
        out = []
        with torch.inference_mode():
            for batch in self._batches(len(texts)):
                tokens = loaded.tokenizer(texts[batch]).to(self.device)
                out.append(loaded.model.encode_text(tokens).float().cpu().numpy())
        return np.concatenate(out)

    def _encode_images(self, images: list[Image.Image]) -> np.ndarray:
        loaded = self._load()
        out = []
        with torch.inference_mode():
            for batch in self._batches(len(images)):
                pixels = []
                for offset, image in enumerate(images[batch], start=batch.start):
                    try:
                        pixels.append(loaded.preprocess(image.convert("RGB")))
                    except (OSError, SyntaxError, ValueError) as exc:
                        raise ImageDecodeError(f"image {offset} cannot be decoded ({exc})") from exc
                tensor = torch.stack(pixels).to(self.device)
                if "mirror" in self.image_views:
                    # One pass over both views; each is normalised so neither dominates the mean.
                    both = loaded.model.encode_image(torch.cat([tensor, tensor.flip(-1)])).float()
                    both = torch.nn.functional.normalize(both, dim=-1)
                    out.append((both[: len(tensor)] + both[len(tensor) :]).cpu().numpy())
                else:
                    out.append(loaded.model.encode_image(tensor).float().cpu().numpy())
        return np.concatenate(out)

    def _encode_audio_windows(self, clips: list[AudioClip]) -> list[tuple[np.ndarray, list[tuple[float, float]]]]:
        tower = self._load().audio
        cfg = tower.config.frontend
        per_clip = [frontend.features(wave, sr, cfg) for wave, sr in clips]
        # Windows of all clips are batched together: a long recording and many
        # short ones cost the same number of forward passes per window.
        mels = np.concatenate([mel for mel, _ in per_clip])
        vectors = []
        with torch.inference_mode():
            for batch in self._batches(len(mels)):
                vectors.append(tower(torch.from_numpy(mels[batch]).to(self.device)).float().cpu().numpy())
        flat = np.concatenate(vectors)
        results, start = [], 0
        for mel, spans in per_clip:
            results.append((flat[start : start + len(mel)], spans))
            start += len(mel)
        return results
