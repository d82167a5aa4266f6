"""Train the shipped demo space from scratch on synthetic data.

    python -m encoders.demo.train --out encoders/weights --seed 0

Text, image and audio towers are trained jointly with one symmetric
contrastive loss between texts and items (images, clips and a learned "null"
item), sharing one text tower. With a pretrained open_clip model the text tower
already knows words like "shrill" or "rumble" and ``encoders.train_audio``
trains only the audio tower against it, frozen; our from-scratch text tower
has to learn the audio vocabulary, so here it learns from both modalities.

Generalisation comes from the data rather than the schedule: most training
images and clips are rendered with ``synth``'s varied renderer, every batch is
augmented again on the fly, every batch holds every class (each one a hard
negative of its neighbours), scene families differ only in shape or only in
colour, and out-of-domain sentences (``synth.ood_sentence``) are trained onto
the null item and below a similarity margin to every item and caption.

Everything is seeded and the schedule is defined by ``--steps``; the same
command on the same hardware reproduces the same weights.
"""

from __future__ import annotations

import argparse
import logging
import math
import multiprocessing
import os
import time
from pathlib import Path

import numpy as np
import open_clip
import torch
import torch.nn.functional as F
from PIL import Image

from encoders.audio.frontend import FrontendConfig
from encoders.audio.tower import AudioTower, TowerConfig, save_tower, sha256_file
from encoders.demo import synth
from encoders.demo.quality import report
from encoders.openclip import OpenClipSpace
from encoders.registry import DEFAULT_SPACES
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

log = logging.getLogger("encoders.demo.train")

MODEL = "demo-clip"
CLIP_FILE = "demo-clip.pt"
AUDIO_FILE = "demo-audio.pt"
# The demo clips are 2–4 s long, so windows are shorter than the 10 s a model
# for real recordings would use; a 20 ms hop is plenty for tones and beeps.
DEMO_FRONTEND = FrontendConfig(
    sample_rate=16000, n_fft=512, hop_length=320, n_mels=64, window_seconds=2.0, hop_seconds=1.0
)


# Share of the training data drawn by the varied renderer; the rest has the plain demo look.
VARIED = 0.6
# Per step: clips per audio class, out-of-domain sentences, scene families of each kind.
CLIPS_PER_CLASS = 4
OOD_PER_STEP = 32
# Out-of-domain text must stay below this cosine to every item and in-domain caption,
# and an in-domain caption above the other to its items: room for a relevance cutoff.
OOD_MARGIN = 0.1
MATCH_MARGIN = 0.5


# Rendering is pure Python and the slowest part of a run on a GPU, so the banks are built in
# chunks by a process pool. A chunk's seed depends only on the run's seed and the chunk's
# number, so the data (and the weights) do not depend on how many workers there are.
CHUNK = 400
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")


def _chunk_seed(seed: int, chunk: int) -> int:
    return seed * 100_003 + chunk


def _pixels(image, size: int) -> np.ndarray:
    """uint8 CHW at the model's input size, exactly as open_clip's preprocess resizes and crops.

    Kept as uint8 (a quarter of fp32) and normalised on the training device.
    """
    w, h = image.size
    scale = size / min(w, h)
    image = image.resize((max(size, round(w * scale)), max(size, round(h * scale))), Image.BICUBIC)
    left, top = (image.width - size) // 2, (image.height - size) // 2
    image = image.crop((left, top, left + size, top + size))
    return np.asarray(image.convert("RGB"), dtype=np.uint8).transpose(2, 0, 1)


def _image_chunk(args: tuple) -> tuple[np.ndarray, list[dict]]:
    n, seed, size = args
    samples = list(synth.image_samples(n, seed, varied=VARIED))
    return np.stack([_pixels(s.image, size) for s in samples]), [s.labels for s in samples]


def _family_chunk(args: tuple) -> list[tuple[np.ndarray, list[dict]]]:
    seed, first, count, size = args
    rng = np.random.default_rng(seed + 100)
    rng.integers(1 << 30, size=first)  # the families before this chunk's
    out = []
    for f in range(first, first + count):
        # Shape is the harder attribute (colour is right in 98% of neighbours without
        # help), so most families vary the shape.
        by_colour = f % 4 != 3
        options = list(synth.COLOURS) if by_colour else list(synth.SHAPES)
        attribute = options[int(rng.integers(1 << 30)) % len(options)]
        members = synth.scene_family(seed * 1000 + f, **({"colour": attribute} if by_colour else {"shape": attribute}))
        out.append((np.stack([_pixels(m.image, size) for m in members]), [m.labels for m in members]))
    return out


def _audio_chunk(args: tuple) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    n, seed = args
    samples = list(synth.audio_samples(n, seed, varied=VARIED))
    windows, owner = audio_windows(((s.waveform, s.samplerate) for s in samples), DEMO_FRONTEND)
    return windows, owner, [s.labels for s in samples]


def _run_chunks(function, jobs: list, workers: int) -> list:
    if workers <= 1 or len(jobs) <= 1:
        return [function(job) for job in jobs]
    # spawn, not fork: the parent has torch (and maybe CUDA) initialised. One thread per worker:
    # the workers are the parallelism, and numpy's or torch's own pools would oversubscribe the cores.
    context = multiprocessing.get_context("spawn")
    saved = {name: os.environ.get(name) for name in THREAD_VARIABLES}
    os.environ.update(dict.fromkeys(THREAD_VARIABLES, "1"))
    try:
        with context.Pool(min(workers, len(jobs))) as pool:
            return pool.map(function, jobs, chunksize=1)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _chunks(n: int) -> list[tuple[int, int]]:
    return [(index, min(CHUNK, n - start)) for index, start in enumerate(range(0, n, CHUNK))]


def build_image_bank(
    n: int, seed: int, size: int, families: int = 0, workers: int = 1
) -> tuple[torch.Tensor, list[dict], list]:
    """uint8 images at the model's input size, their labels, and the bank rows of each scene family."""
    parts = _run_chunks(_image_chunk, [(count, _chunk_seed(seed, i), size) for i, count in _chunks(n)], workers)
    pixels = [p for p, _ in parts]
    labels = [label for _, chunk in parts for label in chunk]
    per_job = max(1, -(-families // max(1, workers * 4)))
    jobs = [(seed, first, min(per_job, families - first), size) for first in range(0, families, per_job)]
    groups = []
    for chunk in _run_chunks(_family_chunk, jobs, workers):
        for members, member_labels in chunk:
            groups.append(list(range(len(labels), len(labels) + len(member_labels))))
            pixels.append(members)
            labels += member_labels
    return torch.from_numpy(np.concatenate(pixels)), labels, groups


def build_audio_bank(n: int, seed: int, workers: int = 1) -> tuple[torch.Tensor, np.ndarray, list[dict]]:
    parts = _run_chunks(_audio_chunk, [(count, _chunk_seed(seed, i)) for i, count in _chunks(n)], workers)
    windows, owners, labels = [], [], []
    for chunk_windows, chunk_owner, chunk_labels in parts:
        windows.append(chunk_windows)
        owners.append(chunk_owner + len(labels))
        labels += chunk_labels
    return torch.from_numpy(np.concatenate(windows)), np.concatenate(owners), labels


def normalise_pixels(batch: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    return (batch.float() / 255 - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)


def augment_images(batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """On-the-fly augmentation of normalised images: every change keeps colour and shape.

    Flips and quarter turns (every shape class is closed under them) and a
    shift of up to 6 px in one resampling pass (exact: whole pixels and right
    angles), then brightness and contrast, blur and noise. The random draws come
    from ``generator`` on the CPU, so a run replays on any device.
    """
    n, size, device = len(batch), batch.shape[-1], batch.device
    out = batch.float()
    flip = (torch.rand(n, generator=generator) < 0.5).float() * -2 + 1
    turns = torch.randint(0, 4, (n,), generator=generator).float() * (math.pi / 2)
    pad = 6
    shift = (torch.randint(0, 2 * pad + 1, (2, n), generator=generator).float() - pad) * 2 / size
    cos, sin = torch.cos(turns).round(), torch.sin(turns).round()
    theta = torch.stack([torch.stack([cos * flip, -sin, shift[0]], 1), torch.stack([sin * flip, cos, shift[1]], 1)], 1)
    grid = F.affine_grid(theta.to(device), list(out.shape), align_corners=False)
    out = F.grid_sample(out, grid, mode="nearest", padding_mode="border", align_corners=False)
    mean = out.mean(dim=(1, 2, 3), keepdim=True)
    contrast = 1 + (torch.rand(n, 1, 1, 1, generator=generator) - 0.5) * 0.4
    brightness = (torch.rand(n, 1, 1, 1, generator=generator) - 0.5) * 0.3
    out = (out - mean) * contrast.to(device) + mean + brightness.to(device)
    blur = (torch.rand(n, generator=generator) < 0.15).to(device)
    kernel = torch.tensor([1.0, 2.0, 1.0], device=device)
    kernel = (kernel[:, None] * kernel[None, :] / 16).expand(3, 1, 3, 3)
    blurred = F.conv2d(F.pad(out, (1, 1, 1, 1), mode="replicate"), kernel, groups=3)
    out = torch.where(blur.view(n, 1, 1, 1), blurred, out)
    noise = torch.rand(n, 1, 1, 1, generator=generator) * 0.08
    return out + (noise * torch.randn(out.shape, generator=generator)).to(device)


def augment_mels(mels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Log-mel windows with a random cyclic time shift and one masked time span (set to the floor)."""
    n, frames, device = mels.shape[0], mels.shape[-1], mels.device
    shifts = torch.randint(0, frames, (n,), generator=generator).to(device)
    t = torch.arange(frames, device=device)
    index = (t[None, :] - shifts[:, None]) % frames
    out = torch.gather(mels, -1, index.view(n, *([1] * (mels.dim() - 2)), frames).expand_as(mels))
    starts = torch.randint(0, frames, (n,), generator=generator).to(device)
    widths = torch.randint(0, frames // 8, (n,), generator=generator).to(device)
    mask = (t[None, :] >= starts[:, None]) & (t[None, :] < (starts + widths)[:, None])
    return out.masked_fill(mask.view(n, *([1] * (out.dim() - 2)), frames), -1.0)


def multi_positive_loss(logits: torch.Tensor, positives: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of each row against a uniform target over its positives (rows without any are skipped)."""
    rows = positives.any(dim=1)
    log_prob = F.log_softmax(logits[rows], dim=1)
    target = positives[rows].float()
    return -((log_prob * target).sum(1) / target.sum(1)).mean()


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
        steps: int,
        lr: float,
        device: torch.device,
        workers: int = 1,
        image_groups: int = 1,
    ):
        self.rng = seed_everything(seed)
        self.device = device
        self.steps = steps
        self.lr = lr
        self.image_groups = image_groups
        self.model = open_clip.create_model(MODEL, device=device)
        size = self.model.visual.image_size
        size = size[0] if isinstance(size, tuple | list) else size
        preprocess_cfg = open_clip.get_model_preprocess_cfg(self.model)
        self.pixel_mean = torch.tensor(preprocess_cfg["mean"], device=device)
        self.pixel_std = torch.tensor(preprocess_cfg["std"], device=device)
        self.tokenizer = open_clip.get_tokenizer(MODEL)
        self.tower = AudioTower(TowerConfig(embed_dim=self.model.text_projection.shape[1], frontend=DEMO_FRONTEND))
        self.tower.to(device)
        self.loss = open_clip.ClipLoss()
        # The item that out-of-domain text is trained onto; never shipped, only a target.
        self.null = torch.nn.Parameter(torch.randn(self.model.text_projection.shape[1], device=device))
        self.optimizer = make_optimizer(
            [*self.model.parameters(), *self.tower.parameters(), self.null], lr, weight_decay=0.05
        )
        self.generator = torch.Generator().manual_seed(seed)
        t0 = time.monotonic()
        # The banks live on the training device: a step indexes them there, with no copies per step.
        images, self.image_labels, self.families = build_image_bank(
            n_images, seed, size, families=max(2, n_images // 40), workers=workers
        )
        self.images = images.to(device)
        mels, self.owner, self.audio_labels = build_audio_bank(n_audio, seed + 1, workers=workers)
        self.mels = mels.to(device)
        keys = np.asarray([f"{labels['colour']} {labels['shape']}" for labels in self.image_labels])
        plain = np.arange(n_images)
        self.class_names = sorted(set(keys))
        self.image_classes = [plain[keys[:n_images] == key] for key in self.class_names]
        self.image_keys = keys
        audio_keys = np.asarray([f"{labels['pitch']} {labels['kind']}" for labels in self.audio_labels])
        self.audio_classes = [np.flatnonzero(audio_keys == key) for key in sorted(set(audio_keys))]
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
        # of the losses: two red circles on the same side would be each
        # other's negatives, rewarding the model for telling them apart by
        # background and position. Across sides they are positives (an
        # image↔image term), which is what groups same-class images as
        # neighbours; image↔caption alone left them spread by background.
        # With more than one image group, each further group is another such set of
        # pairs for the image↔image term alone (a GPU takes the larger batch for free).
        groups = []
        for _ in range(self.image_groups):
            pairs = np.array([rng.choice(members, 2, replace=False) for members in self.image_classes])
            # Hard negatives: two scene families take over their classes' first side, so
            # those images differ from each other only in shape (or only in colour).
            for family in rng.choice(len(self.families), 2, replace=False):
                for row in self.families[family]:
                    pairs[self.class_names.index(self.image_keys[row]), 0] = row
            groups.append(pairs)
        image_ids = groups[0][:, 0]
        n_images = len(image_ids)
        # Every sound class, a few clips each: same-class clips are positives of
        # each other's captions, never negatives.
        clip_ids = np.concatenate(
            [rng.choice(members, CLIPS_PER_CLASS, replace=False) for members in self.audio_classes]
        )
        window_ids = pick_one_window_per_clip(rng, clip_ids, self.owner)
        # Captions are re-drawn every step, so each image is seen with many phrasings.
        captions = [synth.image_caption(rng, self.image_labels[i]) for i in image_ids]
        captions += [synth.audio_caption(rng, self.audio_labels[i]) for i in clip_ids]
        captions += [synth.ood_sentence(rng) for _ in range(OOD_PER_STEP)]
        n_clips, n_in_domain = len(clip_ids), len(captions) - OOD_PER_STEP

        self.model.train()
        self.tower.train()
        text = self.model.encode_text(self.tokenizer(captions).to(self.device), normalize=True)
        chosen = torch.as_tensor(np.concatenate([pairs.T.ravel() for pairs in groups]), device=self.device)
        pixels = augment_images(normalise_pixels(self.images[chosen], self.pixel_mean, self.pixel_std), self.generator)
        images = self.model.encode_image(pixels, normalize=True).view(len(groups), 2, n_images, -1)
        image = images[0, 0]
        mels = augment_mels(self.mels[torch.as_tensor(window_ids, device=self.device)], self.generator)
        audio = F.normalize(self.tower(mels), dim=-1)
        null = F.normalize(self.null, dim=-1)[None]
        items = torch.cat([image, audio, null])

        # Which text matches which item: caption i its image, an audio caption every
        # clip of its class, an out-of-domain sentence only the null item.
        positives = torch.zeros(len(captions), len(items), dtype=torch.bool, device=self.device)
        positives[torch.arange(n_images), torch.arange(n_images)] = True
        audio_class = torch.as_tensor(np.repeat(np.arange(len(self.audio_classes)), CLIPS_PER_CLASS))
        positives[n_images:n_in_domain, n_images : n_images + n_clips] = (
            audio_class[:, None] == audio_class[None, :]
        ).to(self.device)
        positives[n_in_domain:, -1] = True
        scale = self.model.logit_scale.exp()
        sims = text @ items.T
        logits = scale * sims
        match_loss = (multi_positive_loss(logits, positives) + multi_positive_loss(logits.T, positives.T)) / 2
        image_loss = sum(self.loss(group[0], group[1], scale) for group in images) / len(groups)
        # Absolute room for a cutoff: out-of-domain text below OOD_MARGIN to every
        # real item and caption, in-domain captions above MATCH_MARGIN to their items.
        ood = text[n_in_domain:]
        ood_best = torch.cat([sims[n_in_domain:, :-1], ood @ text[:n_in_domain].T], dim=1).max(dim=1).values
        matched = (sims[:n_in_domain, :-1] * positives[:n_in_domain, :-1]).sum(1) / positives[:n_in_domain, :-1].sum(1)
        margin_loss = F.relu(ood_best - OOD_MARGIN).mean() + F.relu(MATCH_MARGIN - matched).mean()
        self.optimizer.zero_grad(set_to_none=True)
        (match_loss + image_loss + 2 * margin_loss).backward()
        self.optimizer.step()
        clamp_logit_scales(self.model, self.tower)
        return match_loss.item(), image_loss.item(), margin_loss.item()

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
    parser.add_argument("--steps", type=int, default=2368)
    parser.add_argument(
        "--minutes",
        type=float,
        default=None,
        help="fit the schedule into this wall time: after the first 100 steps, --steps is lowered to what fits "
        "(the log says the number; pass it as --steps to reproduce the run)",
    )
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)), help="processes that render")
    parser.add_argument("--image-groups", type=int, default=1,
                        help="sets of same-class image pairs per step for the image-image term")
    parser.add_argument("--images", type=int, default=48000, help="synthetic training images")
    parser.add_argument("--audio", type=int, default=6000, help="synthetic training clips")
    parser.add_argument("--lr", type=float, default=1e-3)
    args = parser.parse_args(argv)
    # open_clip logs every loading step at INFO; only our progress is wanted here.
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s")
    log.setLevel(logging.INFO)
    use_all_cores()

    started = time.monotonic()
    trainer = DemoTrainer(
        args.seed, args.images, args.audio, args.steps, args.lr, default_device(), args.workers,
        args.image_groups,
    )
    trained_from = time.monotonic()
    every = max(50, args.steps // 40)
    step = 0
    while step < trainer.steps:
        match_loss, image_loss, margin_loss = trainer.step(step)
        if step == 100 and args.minutes:
            per_step = (time.monotonic() - trained_from) / 101
            # Room for saving and the evaluation at the end.
            fits = int((args.minutes * 60 - (time.monotonic() - started) - 60) / per_step) + 101
            if fits < trainer.steps:
                log.warning("%.0f ms a step: %d steps fit in --minutes %.1f (pass --steps %d to reproduce)",
                            per_step * 1000, fits, args.minutes, fits)
                trainer.steps = fits
        if step % every == 0 or step == trainer.steps - 1:
            log.info(
                "step %d/%d  text-item loss %.3f  image-image loss %.3f  margin loss %.3f  (%.0f s)",
                step,
                trainer.steps,
                match_loss,
                image_loss,
                margin_loss,
                time.monotonic() - started,
            )
        step += 1
    clip_path, audio_path = trainer.save(args.out)
    log.info(
        "saved %s (%.1f MB) and %s (%.1f MB) after %.0f s",
        clip_path,
        clip_path.stat().st_size / 1e6,
        audio_path,
        audio_path.stat().st_size / 1e6,
        time.monotonic() - started,
    )

    space = OpenClipSpace("trained", model=MODEL, pretrained=str(clip_path), audio_tower=str(audio_path),
                          image_views=DEFAULT_SPACES["demo"]["OPTIONS"]["image_views"])
    print(report(space), flush=True)


if __name__ == "__main__":
    main()
