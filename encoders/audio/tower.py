"""A small CNN that maps log-mel windows into an existing CLIP text space.

The tower is trained CLAP/Wav2CLIP-style against a text tower (see
``encoders.train_audio``), so a checkpoint only makes sense next to the
open_clip model it was trained with; the checkpoint records which one.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from encoders.audio.frontend import FrontendConfig

CHECKPOINT_FORMAT = "encoders.audio_tower/1"


@dataclass(frozen=True)
class TowerConfig:
    embed_dim: int
    channels: tuple[int, ...] = (16, 32, 64, 128)
    frontend: FrontendConfig = field(default_factory=FrontendConfig)

    def to_dict(self) -> dict:
        return {"embed_dim": self.embed_dim, "channels": list(self.channels), "frontend": self.frontend.to_dict()}

    @classmethod
    def from_dict(cls, data: dict) -> TowerConfig:
        return cls(
            embed_dim=int(data["embed_dim"]),
            channels=tuple(int(c) for c in data["channels"]),
            frontend=FrontendConfig(**data["frontend"]),
        )


class _ConvBlock(nn.Sequential):
    def __init__(self, cin: int, cout: int):
        super().__init__(
            nn.Conv2d(cin, cout, 3, padding=1, bias=False),
            nn.BatchNorm2d(cout),
            nn.GELU(),
            nn.AvgPool2d(2),
        )


class AudioTower(nn.Module):
    """Log-mel ``(batch, n_mels, frames)`` → unnormalised ``(batch, embed_dim)``."""

    def __init__(self, config: TowerConfig):
        super().__init__()
        self.config = config
        blocks, cin = [], 1
        for cout in config.channels:
            blocks.append(_ConvBlock(cin, cout))
            cin = cout
        self.blocks = nn.Sequential(*blocks)
        # Mean and max pooling over time: mean captures steady timbre and pitch,
        # max keeps short events (a single beep) from being averaged away.
        self.proj = nn.Sequential(nn.LayerNorm(2 * cin), nn.Linear(2 * cin, config.embed_dim))
        # Same initial temperature as CLIP (1/0.07); trained with the tower.
        self.logit_scale = nn.Parameter(torch.tensor(np.log(1 / 0.07), dtype=torch.float32))

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        x = self.blocks(mel.unsqueeze(1))
        x = x.mean(dim=2)
        pooled = torch.cat([x.mean(dim=-1), x.amax(dim=-1)], dim=-1)
        return self.proj(pooled)


def save_tower(tower: AudioTower, path: str | Path, *, clip_model: str, clip_weights_sha256: str) -> None:
    """Save in fp16 (the tower is tiny, but the demo weights are committed)."""
    state = {k: v.detach().cpu().half() if v.is_floating_point() else v.cpu() for k, v in tower.state_dict().items()}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {
            "format": CHECKPOINT_FORMAT,
            "config": tower.config.to_dict(),
            "clip_model": clip_model,
            "clip_weights_sha256": clip_weights_sha256,
            "state_dict": state,
        },
        path,
    )


@dataclass(frozen=True)
class LoadedTower:
    tower: AudioTower
    clip_model: str
    clip_weights_sha256: str


def load_tower(path: str | Path, device: torch.device | str = "cpu") -> LoadedTower:
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not an audio tower checkpoint ({CHECKPOINT_FORMAT})")
    tower = AudioTower(TowerConfig.from_dict(checkpoint["config"]))
    tower.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in checkpoint["state_dict"].items()})
    tower.to(device).eval()
    return LoadedTower(tower, checkpoint["clip_model"], checkpoint["clip_weights_sha256"])


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
