"""Model repositories written in the exact on-disk layout a Hugging Face download leaves.

``models--org--name/blobs/<hash>`` holds the content, ``snapshots/<commit>/<file>`` is a
relative symlink to it and ``refs/main`` names the commit: what ``hf_hub_download`` and
``snapshot_download`` read with ``HF_HUB_OFFLINE=1``.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest


def write_hub_repo(cache: Path, repo_id: str, files: dict[str, Path], revision: str | None = None) -> Path:
    """Copy ``files`` (name → source file) into the cache as ``repo_id``; returns the snapshot folder."""
    revision = revision or hashlib.sha1(repo_id.encode()).hexdigest()
    repo = Path(cache) / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / revision
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    (repo / "refs").mkdir(exist_ok=True)
    snapshot.mkdir(parents=True, exist_ok=True)
    for name, source in files.items():
        data = Path(source).read_bytes()
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        link = snapshot / name
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(os.path.relpath(blob, link.parent))
    (repo / "refs" / "main").write_text(revision)
    return snapshot


def use_offline_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """HF_HOME in tmp and downloads disabled, for this process and any it starts; returns the hub cache."""
    from huggingface_hub import constants

    home = tmp_path / "hf-home"
    cache = home / "hub"
    cache.mkdir(parents=True)
    for var, value in {"HF_HOME": home, "HF_HUB_CACHE": cache, "HF_HUB_OFFLINE": "1"}.items():
        monkeypatch.setenv(var, str(value))
    # huggingface_hub reads its environment once, at import: mirror it.
    monkeypatch.setattr(constants, "HF_HOME", str(home))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return cache
