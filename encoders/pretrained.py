"""Files of pretrained models: where they come from, finding them offline, hashing them.

Pretrained weights live on the Hugging Face Hub and are kept in its cache
(``$HF_HUB_CACHE``, by default ``$HF_HOME/hub``): ``models--org--name/snapshots/<rev>/<file>``.
A space describes what it needs as ``HubFiles`` and resolves them here, through
``huggingface_hub.hf_hub_download``: from the cache when they are there (always,
with ``HF_HUB_OFFLINE=1``), downloaded when not and the machine has internet.
``manage.py fetchmodels`` resolves the same ``HubFiles`` into a folder on a
machine with internet; a server without it points ``HF_HOME`` at a copy.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from encoders.base import WeightsNotFound

FETCH_HINT = (
    "on a machine with internet run `manage.py fetchmodels --to DIR` with the same SEARCH_SPACES_JSON, "
    "copy DIR here and set HF_HOME=DIR (and HF_HUB_OFFLINE=1)"
)


@dataclass(frozen=True)
class HubFiles:
    """What one space needs from one Hugging Face repository.

    ``required`` is a list of groups of alternatives: of each group the first
    file the repository has is used (``model.safetensors`` before
    ``pytorch_model.bin``). ``optional`` files are used when present.
    """

    repo_id: str
    required: tuple[tuple[str, ...], ...]
    optional: tuple[str, ...] = ()
    revision: str | None = None

    def describe(self) -> str:
        names = [" or ".join(group) for group in self.required] + [f"{name} if present" for name in self.optional]
        return f"{self.repo_id} ({', '.join(names)})"


def resolve(
    files: HubFiles,
    *,
    cache_dir: str | os.PathLike | None = None,
    space: str = "?",
    whole: HubFiles | None = None,
) -> dict[str, str]:
    """Local paths of the files, by name, all in one snapshot folder.

    Raises ``WeightsNotFound`` naming the repository and the files to fetch: those of
    ``whole`` when only a part of a model (its config) was asked for.
    """
    from huggingface_hub import hf_hub_download

    def get(filename: str) -> str:
        return hf_hub_download(files.repo_id, filename, revision=files.revision, cache_dir=cache_dir)

    paths: dict[str, str] = {}
    for group in files.required:
        errors = []
        for filename in group:
            try:
                paths[filename] = get(filename)
                break
            except Exception as exc:  # not cached, offline, not in the repository, no network: all "not here"
                errors.append(f"{filename}: {type(exc).__name__}")
        else:
            raise WeightsNotFound(
                f"space {space!r}: cannot find {' or '.join(group)} of Hugging Face repository "
                f"{files.repo_id!r} in the cache {hub_cache_dir(cache_dir)} nor download it ({'; '.join(errors)}). "
                f"It needs {(whole or files).describe()}; {FETCH_HINT}."
            )
    for filename in files.optional:
        try:
            paths[filename] = get(filename)
        except Exception:  # optional files are optional
            continue
    return paths


def hub_cache_dir(cache_dir: str | os.PathLike | None = None) -> str:
    """The Hugging Face cache that ``resolve`` reads (``cache_dir`` or ``$HF_HUB_CACHE``)."""
    if cache_dir is not None:
        return str(cache_dir)
    from huggingface_hub import constants

    return constants.HF_HUB_CACHE


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_files(paths: Iterable[str | os.PathLike]) -> str:
    """One hash over several files, by name and content (order does not matter)."""
    digest = hashlib.sha256()
    for name, file_digest in sorted((Path(p).name, sha256_file(p)) for p in paths):
        digest.update(f"{name}\0{file_digest}\n".encode())
    return digest.hexdigest()
