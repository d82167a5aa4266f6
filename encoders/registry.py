"""Named embedding spaces built from a settings dict, like Django's ``CACHES``.

    encoders.configure({
        "demo": {"ENCODER": "encoders.openclip.OpenClipSpace",
                 "OPTIONS": {"model": "demo-clip", "pretrained": "/path/demo-clip.pt"}},
    })
    space = encoders.get_space("demo")

Instances are created on first use and cached for the process; models inside
them load lazily on first encode (or ``warmup()``).
"""

from __future__ import annotations

import copy
import importlib
import threading
from pathlib import Path

from encoders.base import EmbeddingSpace, EncoderError, UnknownSpace

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"

DEFAULT_SPACES: dict[str, dict] = {
    "demo": {
        "ENCODER": "encoders.openclip.OpenClipSpace",
        "OPTIONS": {
            "model": "demo-clip",
            "pretrained": str(WEIGHTS_DIR / "demo-clip.pt"),
            "audio_tower": str(WEIGHTS_DIR / "demo-audio.pt"),
        },
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
        unknown = set(entry) - {"ENCODER", "OPTIONS"}
        if unknown:
            raise EncoderError(f"space {name!r} has unknown keys {sorted(unknown)}; use ENCODER and OPTIONS")
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
            _instances[name] = _import(entry["ENCODER"])(name, **entry.get("OPTIONS", {}))
        return _instances[name]


def list_spaces() -> list[str]:
    return list(_config)


def reset() -> None:
    """Back to ``DEFAULT_SPACES`` with no cached instances (for tests)."""
    configure(DEFAULT_SPACES)
