"""Add audio to an open_clip space: train an audio tower against its frozen text tower.

    python -m encoders.train_audio --model ViT-B-32 --pretrained laion2b_s34b_b79k \\
        --data pairs.csv --out var/towers/vit-b-32-audio.pt

``--data`` is a CSV (header ``path,caption``) or JSONL (``{"path": ..., "caption": ...}``
per line) of audio files and what they sound like; relative paths are relative
to the data file. Each step pairs one random window of each sampled clip with
its caption and applies open_clip's ``ClipLoss`` (CLAP/Wav2CLIP style). The text
tower is never updated, so existing text and image vectors of the space stay
valid; point the space's ``audio_tower`` option at ``--out`` afterwards.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import time
from pathlib import Path

import numpy as np
import open_clip
import torch
import torch.nn.functional as F

from encoders.audio.frontend import FrontendConfig, decode_audio
from encoders.audio.tower import AudioTower, TowerConfig, save_tower, sha256_file
from encoders.openclip import OpenClipSpace
from encoders.training import (
    audio_windows,
    clamp_logit_scales,
    cosine_lr,
    default_device,
    make_optimizer,
    pick_one_window_per_clip,
    seed_everything,
    set_lr,
    use_all_cores,
)

log = logging.getLogger("encoders.train_audio")


def read_pairs(data: Path) -> list[tuple[Path, str]]:
    with open(data, newline="") as f:
        if data.suffix == ".jsonl":
            rows = [json.loads(line) for line in f if line.strip()]
        else:
            rows = list(csv.DictReader(f))
    pairs = []
    for number, row in enumerate(rows, start=1):
        if not row.get("path") or not row.get("caption"):
            raise SystemExit(f"{data}: row {number} needs non-empty 'path' and 'caption'")
        pairs.append((data.parent / row["path"], row["caption"]))
    if not pairs:
        raise SystemExit(f"{data}: no (path, caption) rows")
    return pairs


def train_tower(
    tower: AudioTower,
    mels: torch.Tensor,
    owner: np.ndarray,
    text_vectors: torch.Tensor,
    *,
    steps: int,
    batch_size: int,
    lr: float,
    rng: np.random.Generator,
    log_every: int = 0,
) -> list[float]:
    """Optimise ``tower`` so window i lands near ``text_vectors[owner[i]]``; returns the losses."""
    device = text_vectors.device
    loss_fn = open_clip.ClipLoss()
    optimizer = make_optimizer(tower.parameters(), lr, weight_decay=0.05)
    n_clips = len(text_vectors)
    batch_size = min(batch_size, n_clips)
    losses = []
    tower.train()
    for step in range(steps):
        set_lr(optimizer, cosine_lr(step, steps, lr, warmup=min(100, steps // 10 + 1)))
        clip_ids = np.sort(rng.choice(n_clips, batch_size, replace=False))
        window_ids = pick_one_window_per_clip(rng, clip_ids, owner)
        audio = F.normalize(tower(mels[window_ids].to(device)), dim=-1)
        loss = loss_fn(audio, text_vectors[clip_ids], tower.logit_scale.exp())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        clamp_logit_scales(tower)
        losses.append(loss.item())
        if log_every and step % log_every == 0:
            log.info("step %d/%d  audio-text loss %.3f", step, steps, loss.item())
    tower.eval()
    return losses


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="open_clip architecture, e.g. ViT-B-32")
    parser.add_argument("--pretrained", required=True, help="open_clip pretrained tag or checkpoint file")
    parser.add_argument("--data", type=Path, required=True, help="CSV or JSONL of path,caption")
    parser.add_argument("--out", type=Path, required=True, help="audio tower checkpoint to write")
    parser.add_argument("--cache-dir", default=None, help="where open_clip keeps downloaded weights")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    defaults = FrontendConfig()
    parser.add_argument("--sample-rate", type=int, default=defaults.sample_rate)
    parser.add_argument("--n-mels", type=int, default=defaults.n_mels)
    parser.add_argument("--hop-length", type=int, default=defaults.hop_length)
    parser.add_argument("--window-seconds", type=float, default=10.0)
    parser.add_argument("--hop-seconds", type=float, default=5.0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s")
    log.setLevel(logging.INFO)
    use_all_cores()
    rng = seed_everything(args.seed)
    device = default_device()

    started = time.monotonic()
    space = OpenClipSpace(
        "train_audio", model=args.model, pretrained=args.pretrained, cache_dir=args.cache_dir, device=str(device)
    )
    pairs = read_pairs(args.data)
    cfg = FrontendConfig(
        sample_rate=args.sample_rate,
        n_mels=args.n_mels,
        hop_length=args.hop_length,
        window_seconds=args.window_seconds,
        hop_seconds=args.hop_seconds,
    )
    mels, owner = audio_windows((decode_audio(path) for path, _ in pairs), cfg)
    text_vectors = torch.from_numpy(space.encode_texts([caption for _, caption in pairs])).to(device)
    log.info("%d clips, %d windows, text features ready in %.0f s", len(pairs), len(mels), time.monotonic() - started)

    tower = AudioTower(TowerConfig(embed_dim=space.dim, frontend=cfg)).to(device)
    train_tower(
        tower,
        torch.from_numpy(mels),
        owner,
        text_vectors,
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        rng=rng,
        log_every=50,
    )
    save_tower(tower, args.out, clip_model=args.model, clip_weights_sha256=sha256_file(space.weights_path()))
    log.info(
        "saved %s after %.0f s; set the space's OPTIONS['audio_tower'] to it", args.out, time.monotonic() - started
    )


if __name__ == "__main__":
    main()
