"""Train the shipped demo space from scratch on synthetic data.

    python -m encoders.train --out encoders/weights --seed 0

Text, image and audio towers are trained jointly: image↔caption and
audio↔caption pairs, each with open_clip's ``ClipLoss`` (symmetric InfoNCE),
sharing one text tower. With a pretrained open_clip model the text tower
already knows words like "shrill" or "rumble" and ``encoders.train_audio``
trains only the audio tower against it, frozen; our from-scratch text tower
has to learn the audio vocabulary, so here it learns from both losses.

Everything is seeded and the schedule is defined by ``--steps``; the same
command on the same hardware reproduces the same weights.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np
import open_clip
import torch
import torch.nn.functional as F

from encoders import synth
from encoders.audio.frontend import FrontendConfig
from encoders.audio.tower import AudioTower, TowerConfig, save_tower, sha256_file
from encoders.evaluate import evaluate
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

log = logging.getLogger("encoders.train")

MODEL = "demo-clip"
CLIP_FILE = "demo-clip.pt"
AUDIO_FILE = "demo-audio.pt"
# The demo clips are 2–4 s long, so windows are shorter than the 10 s a model
# for real recordings would use; a 20 ms hop is plenty for tones and beeps.
DEMO_FRONTEND = FrontendConfig(
    sample_rate=16000, n_fft=512, hop_length=320, n_mels=64, window_seconds=2.0, hop_seconds=1.0
)


def build_image_bank(n: int, seed: int, preprocess) -> tuple[torch.Tensor, list[dict]]:
    pixels, labels = [], []
    for sample in synth.image_samples(n, seed):
        pixels.append(preprocess(sample.image))
        labels.append(sample.labels)
    return torch.stack(pixels), labels


def build_audio_bank(n: int, seed: int, cfg: FrontendConfig) -> tuple[torch.Tensor, np.ndarray, list[dict]]:
    samples = list(synth.audio_samples(n, seed))
    windows, owner = audio_windows(((s.waveform, s.samplerate) for s in samples), cfg)
    return torch.from_numpy(windows), owner, [s.labels for s in samples]


def save_clip(model: torch.nn.Module, path: Path) -> None:
    """fp16 on disk keeps the committed demo weights small; loading upcasts."""
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().half() if v.is_floating_point() else v.cpu() for k, v in model.state_dict().items()}
    torch.save({"state_dict": state}, path)


class DemoTrainer:
    """Joint text/image/audio contrastive training; ``step`` is one optimiser step."""

    def __init__(
        self,
        seed: int,
        n_images: int,
        n_audio: int,
        audio_batch: int,
        steps: int,
        lr: float,
        device: torch.device,
    ):
        self.rng = seed_everything(seed)
        self.device = device
        self.steps = steps
        self.lr = lr
        self.audio_batch = audio_batch
        self.model, _, preprocess = open_clip.create_model_and_transforms(MODEL, device=device)
        self.tokenizer = open_clip.get_tokenizer(MODEL)
        self.tower = AudioTower(TowerConfig(embed_dim=self.model.text_projection.shape[1], frontend=DEMO_FRONTEND))
        self.tower.to(device)
        self.loss = open_clip.ClipLoss()
        self.optimizer = make_optimizer([*self.model.parameters(), *self.tower.parameters()], lr, weight_decay=0.05)
        t0 = time.monotonic()
        self.images, self.image_labels = build_image_bank(n_images, seed, preprocess)
        self.mels, self.owner, self.audio_labels = build_audio_bank(n_audio, seed + 1, DEMO_FRONTEND)
        keys = [f"{labels['colour']} {labels['shape']}" for labels in self.image_labels]
        self.image_classes = [np.flatnonzero(np.asarray(keys) == key) for key in sorted(set(keys))]
        log.info(
            "synthesised %d images and %d clips (%d windows) in %.0f s",
            n_images,
            n_audio,
            len(self.mels),
            time.monotonic() - t0,
        )

    def step(self, step: int) -> tuple[float, float]:
        rng = self.rng
        set_lr(self.optimizer, cosine_lr(step, self.steps, self.lr, warmup=min(100, self.steps // 10 + 1)))
        # Two images per colour×shape class. Each class appears once per side
        # of every ClipLoss: two red circles on the same side would be each
        # other's negatives, rewarding the model for telling them apart by
        # background and position. Across sides they are positives (an
        # image↔image term), which is what groups same-class images as
        # neighbours; image↔caption alone left them spread by background.
        pairs = np.array([rng.choice(members, 2, replace=False) for members in self.image_classes])
        image_ids = pairs[:, 0]
        n_images = len(image_ids)
        clip_ids = np.sort(rng.choice(len(self.audio_labels), self.audio_batch, replace=False))
        window_ids = pick_one_window_per_clip(rng, clip_ids, self.owner)
        # Captions are re-drawn every step, so each image is seen with many phrasings.
        captions = [synth.image_caption(rng, self.image_labels[i]) for i in image_ids]
        captions += [synth.audio_caption(rng, self.audio_labels[i]) for i in clip_ids]

        self.model.train()
        self.tower.train()
        text = self.model.encode_text(self.tokenizer(captions).to(self.device), normalize=True)
        images = self.model.encode_image(self.images[pairs.T.ravel()].to(self.device), normalize=True)
        image, other = images[:n_images], images[n_images:]
        audio = F.normalize(self.tower(self.mels[window_ids].to(self.device)), dim=-1)
        scale = self.model.logit_scale.exp()
        image_loss = self.loss(image, text[:n_images], scale) + self.loss(image, other, scale)
        audio_loss = self.loss(audio, text[n_images:], self.tower.logit_scale.exp())
        self.optimizer.zero_grad(set_to_none=True)
        (image_loss + audio_loss).backward()
        self.optimizer.step()
        clamp_logit_scales(self.model, self.tower)
        return image_loss.item(), audio_loss.item()

    def save(self, out: Path) -> tuple[Path, Path]:
        self.model.eval()
        self.tower.eval()
        clip_path, audio_path = out / CLIP_FILE, out / AUDIO_FILE
        save_clip(self.model, clip_path)
        save_tower(self.tower, audio_path, clip_model=MODEL, clip_weights_sha256=sha256_file(clip_path))
        return clip_path, audio_path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="directory for demo-clip.pt and demo-audio.pt")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=800)
    parser.add_argument(
        "--minutes",
        type=float,
        default=None,
        help="wall-time cap; stopping early breaks reproducibility, so it is only a guard",
    )
    parser.add_argument("--images", type=int, default=8000, help="synthetic training images")
    parser.add_argument("--audio", type=int, default=2000, help="synthetic training clips")
    parser.add_argument("--audio-batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    args = parser.parse_args(argv)
    # open_clip logs every loading step at INFO; only our progress is wanted here.
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s")
    log.setLevel(logging.INFO)
    use_all_cores()

    started = time.monotonic()
    trainer = DemoTrainer(args.seed, args.images, args.audio, args.audio_batch, args.steps, args.lr, default_device())
    for step in range(args.steps):
        image_loss, audio_loss = trainer.step(step)
        if step % 50 == 0 or step == args.steps - 1:
            log.info(
                "step %d/%d  image loss (text + image) %.3f  audio-text loss %.3f  (%.0f s)",
                step,
                args.steps,
                image_loss,
                audio_loss,
                time.monotonic() - started,
            )
        if args.minutes and time.monotonic() - started > args.minutes * 60:
            log.warning("stopping at step %d: --minutes %.1f reached", step, args.minutes)
            break
    clip_path, audio_path = trainer.save(args.out)
    log.info(
        "saved %s (%.1f MB) and %s (%.1f MB) after %.0f s",
        clip_path,
        clip_path.stat().st_size / 1e6,
        audio_path,
        audio_path.stat().st_size / 1e6,
        time.monotonic() - started,
    )

    space = OpenClipSpace("trained", model=MODEL, pretrained=str(clip_path), audio_tower=str(audio_path))
    for metric, value in evaluate(space).items():
        log.info("held-out %s: %.3f", metric, value)


if __name__ == "__main__":
    main()
