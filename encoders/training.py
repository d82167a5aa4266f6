"""Pieces shared by the training commands (``train`` and ``train_audio``)."""

from __future__ import annotations

import math
import os
import random
from collections.abc import Iterable

import numpy as np
import torch
from torch import nn

from encoders.audio import frontend

# CLIP clamps its learned temperature at 100 so logits cannot blow up.
MAX_LOGIT_SCALE = math.log(100)


def seed_everything(seed: int) -> np.random.Generator:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return np.random.default_rng(seed)


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def use_all_cores() -> None:
    # torch defaults to physical cores, which on small VMs can be fewer than
    # the CPUs we are allowed to use; training is compute bound, so take them all
    # unless OMP_NUM_THREADS says otherwise (a machine shared with other work).
    threads = os.environ.get("OMP_NUM_THREADS", "")
    torch.set_num_threads(int(threads) if threads.isdigit() and int(threads) > 0 else len(os.sched_getaffinity(0)))


def make_optimizer(params: Iterable[nn.Parameter], lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW with no decay on gains, biases, embeddings' scales and temperatures.

    Same split as open_clip's training script: decaying 1-D parameters (norms,
    biases, logit scale) only hurts.
    """
    params = [p for p in params if p.requires_grad]
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    return torch.optim.AdamW(
        [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=lr,
        betas=(0.9, 0.98),
        eps=1e-6,
    )


def cosine_lr(step: int, total: int, base: float, warmup: int) -> float:
    if step < warmup:
        return base * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return base * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def clamp_logit_scales(*modules: nn.Module) -> None:
    with torch.no_grad():
        for module in modules:
            module.logit_scale.clamp_(0, MAX_LOGIT_SCALE)


def audio_windows(
    clips: Iterable[tuple[np.ndarray, int]], cfg: frontend.FrontendConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Log-mel windows of every clip, through the same front end as inference.

    Returns ``(windows, owner)`` where ``owner[i]`` is the clip index of window i.
    """
    mels, owner = [], []
    for index, (wave, sr) in enumerate(clips):
        mel, _ = frontend.features(wave, sr, cfg)
        mels.append(mel)
        owner.extend([index] * len(mel))
    return np.concatenate(mels), np.asarray(owner)


def pick_one_window_per_clip(rng: np.random.Generator, clip_ids: np.ndarray, owner: np.ndarray) -> np.ndarray:
    """For each clip id, a random index into the windows that belong to it."""
    starts = np.searchsorted(owner, clip_ids, side="left")
    ends = np.searchsorted(owner, clip_ids, side="right")
    return starts + (rng.random(len(clip_ids)) * (ends - starts)).astype(int)
