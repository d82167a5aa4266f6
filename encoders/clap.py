"""Text and audio through a CLAP model (LAION's ``laion/clap-htsat-unfused``) from ``transformers``.

``model`` is a local folder written by ``save_pretrained`` or a Hugging Face id, read from the
Hugging Face cache (``cache_dir``, else ``$HF_HUB_CACHE``) and downloaded where there is
internet; offline, the error names the repository and files to fetch.

Audio goes through the same windows as the other spaces: the recording is resampled to the
model's rate and cut into windows of the model's input length (10 s for LAION's CLAP) every
``hop_seconds`` (half a window by default), a clip shorter than a window is repeat-padded (as
CLAP was trained), and each window is one segment with its start and end; the item vector is
the normalised mean of the window vectors. Every window is exactly the model's input length,
so the feature extractor never crops at random.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from encoders import pretrained as hub
from encoders.audio import frontend
from encoders.base import AudioClip, EmbeddingSpace, EncoderError, Modality, WeightsNotFound

# Bump when our preprocessing around the model changes (windowing, pooling, text truncation).
PREPROCESS_VERSION = 1
# Tokens per passage of a long text (see ClapSpace.passage_tokens).
PASSAGE_TOKENS = 75

FILES = (
    ("config.json",),
    ("model.safetensors", "pytorch_model.bin"),
    # transformers 5 writes processor_config.json; older repositories (LAION's) have preprocessor_config.json.
    ("preprocessor_config.json", "processor_config.json"),
    ("tokenizer.json", "vocab.json"),
)
OPTIONAL_FILES = ("vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json")


def hub_files(repo_id: str, revision: str | None = None) -> hub.HubFiles:
    return hub.HubFiles(repo_id, FILES, OPTIONAL_FILES, revision)


def folder_files(folder: Path) -> list[Path]:
    """The files of a local model folder that make up the model, by the same rule as on the hub."""
    chosen = []
    for group in FILES:
        found = next((folder / name for name in group if (folder / name).is_file()), None)
        if found is None:
            raise WeightsNotFound(f"CLAP model folder {folder} has none of {', '.join(group)}")
        chosen.append(found)
    return chosen + [folder / name for name in OPTIONAL_FILES if (folder / name).is_file()]


@dataclass
class _Loaded:
    model: Any
    tokenizer: Any
    features: Any  # ClapFeatureExtractor
    window: frontend.FrontendConfig
    max_tokens: int


class ClapSpace(EmbeddingSpace):
    """OPTIONS: ``model`` (local folder or Hugging Face id), ``revision``, ``cache_dir``, ``device``,
    ``batch_size`` (texts or audio windows per forward pass), ``hop_seconds`` (between windows)."""

    def __init__(
        self,
        name: str,
        *,
        model: str,
        revision: str | None = None,
        cache_dir: str | None = None,
        device: str | None = None,
        batch_size: int = 8,
        hop_seconds: float | None = None,
    ):
        super().__init__(name)
        if batch_size < 1:
            raise EncoderError(f"space {name!r}: batch_size must be at least 1, got {batch_size}")
        if hop_seconds is not None and hop_seconds <= 0:
            raise EncoderError(f"space {name!r}: hop_seconds must be positive, got {hop_seconds}")
        self.model_name = model
        self.revision = revision
        self.cache_dir = cache_dir
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.batch_size = batch_size
        self.hop_seconds = hop_seconds
        self.modalities = frozenset({Modality.TEXT, Modality.AUDIO})
        self._lock = threading.RLock()
        self._files: list[Path] | None = None
        self._identity: str | None = None
        self._loaded: _Loaded | None = None
        self.local = os.path.isdir(model)
        # Only config.json here (for ``dim``); weights are resolved on first use.
        if self.local:
            config_path = Path(model) / "config.json"
            if not config_path.is_file():
                raise WeightsNotFound(f"space {name!r}: CLAP model folder {model} has no config.json")
        else:
            config_path = hub.resolve(
                hub.HubFiles(model, (("config.json",),), revision=revision),
                cache_dir=cache_dir,
                space=name,
                whole=hub_files(model, revision),
            )["config.json"]
        config = json.loads(Path(config_path).read_text(encoding="utf-8"))
        self.dim = int(config.get("projection_dim", 512))

    @classmethod
    def required_files(cls, name: str, options: dict) -> list[hub.HubFiles]:
        model = options.get("model", "")
        return [] if os.path.isdir(model) else [hub_files(model, options.get("revision"))]

    # ------------------------------------------------------------------ loading

    def files(self) -> list[Path]:
        """The model's files on disk (downloading them where there is internet)."""
        with self._lock:
            if self._files is None:
                if self.local:
                    self._files = folder_files(Path(self.model_name))
                else:
                    paths = hub.resolve(
                        hub_files(self.model_name, self.revision), cache_dir=self.cache_dir, space=self.name
                    )
                    self._files = [Path(p) for p in paths.values()]
            return self._files

    def _load(self) -> _Loaded:
        if self._loaded is None:
            with self._lock:
                if self._loaded is None:
                    self._loaded = self._build()
        return self._loaded

    def _build(self) -> _Loaded:
        from transformers import AutoTokenizer, ClapFeatureExtractor, ClapModel

        # Every file sits in one folder (a snapshot of the hub cache): load from it, never the network.
        folder = self.files()[0].parent
        model = ClapModel.from_pretrained(folder, local_files_only=True).to(self.device).eval()
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        features = ClapFeatureExtractor.from_pretrained(folder, local_files_only=True)
        window_seconds = features.nb_max_samples / features.sampling_rate
        window = frontend.FrontendConfig(
            sample_rate=features.sampling_rate,
            window_seconds=window_seconds,
            hop_seconds=self.hop_seconds or window_seconds / 2,
        )
        # RoBERTa positions start after the padding index: two fewer than the table holds.
        max_tokens = min(tokenizer.model_max_length, model.config.text_config.max_position_embeddings - 2)
        return _Loaded(model, tokenizer, features, window, max_tokens)

    @property
    def identity(self) -> str:
        # The hash covers config, weights, tokenizer and feature-extractor files: the same files
        # from a folder or from the hub give the same identity.
        if self._identity is None:
            loaded = self._load()
            digest = hub.sha256_files(self.files())
            window = loaded.window
            self._identity = (
                f"clap:sha256={digest[:16]}:window={window.window_seconds:g}/{window.hop_seconds:g}"
                f":pre={PREPROCESS_VERSION}"
            )
        return self._identity

    # ------------------------------------------------------------------ encoding

    def _batches(self, n: int):
        return (slice(i, i + self.batch_size) for i in range(0, n, self.batch_size))

    @staticmethod
    def _pooled(output) -> torch.Tensor:
        # transformers 5 returns a model output with the projected vector as pooler_output; 4.x a tensor.
        return getattr(output, "pooler_output", output)

    def passage_tokens(self) -> int | None:
        # RoBERTa reads 512 tokens, but CLAP learnt from captions of a sentence or two: passages of
        # CLIP's length match how it was trained.
        return min(self._load().max_tokens - 2, PASSAGE_TOKENS)

    def count_tokens(self, text: str) -> int:
        return len(self._load().tokenizer(text, add_special_tokens=False)["input_ids"])

    def _encode_texts(self, texts: list[str]) -> np.ndarray:
        loaded = self._load()
        out = []
        with torch.inference_mode():
            for batch in self._batches(len(texts)):
                tokens = loaded.tokenizer(
                    texts[batch], padding=True, truncation=True, max_length=loaded.max_tokens, return_tensors="pt"
                ).to(self.device)
                out.append(self._pooled(loaded.model.get_text_features(**tokens)).float().cpu().numpy())
        return np.concatenate(out)

    def _windows(self, waveform: np.ndarray, samplerate: int, cfg: frontend.FrontendConfig):
        """Window starts (in samples at the model's rate) and the mono waveform they index."""
        mono = frontend.resample(frontend.to_mono(waveform), samplerate, cfg.sample_rate)
        if mono.shape[0] <= cfg.window_samples:
            windows, spans = frontend.split_windows(mono, cfg)
            return windows[0], [0], spans
        # Long recordings: same starts as frontend.split_windows, cut a batch at a time below.
        size, hop = cfg.window_samples, cfg.hop_samples
        starts = list(range(0, mono.shape[0] - size + 1, hop))
        if starts[-1] + size < mono.shape[0]:
            starts.append(mono.shape[0] - size)
        spans = [(s / cfg.sample_rate, (s + size) / cfg.sample_rate) for s in starts]
        return mono, starts, spans

    def _encode_audio_windows(self, clips: list[AudioClip]) -> list[tuple[np.ndarray, list[tuple[float, float]]]]:
        loaded = self._load()
        cfg, size = loaded.window, loaded.window.window_samples
        per_clip = [self._windows(wave, sr, cfg) for wave, sr in clips]
        # Windows of all clips go through the model together, batch_size at a time.
        jobs = [(mono, start) for mono, starts, _ in per_clip for start in starts]
        vectors = []
        with torch.inference_mode():
            for batch in self._batches(len(jobs)):
                windows = [mono[start : start + size] for mono, start in jobs[batch]]
                inputs = loaded.features(windows, sampling_rate=cfg.sample_rate, return_tensors="pt")
                inputs = {k: v.to(self.device) for k, v in inputs.items()}
                vectors.append(self._pooled(loaded.model.get_audio_features(**inputs)).float().cpu().numpy())
        flat = np.concatenate(vectors)
        results, offset = [], 0
        for _, starts, spans in per_clip:
            results.append((flat[offset : offset + len(starts)], spans))
            offset += len(starts)
        return results
