"""Encoder throughput: texts/s, images/s and audio seconds/s, at batch 1 and 32.

    python bench/bench_encoders.py            # writes docs/benchmarks/encoders.md
    python bench/bench_encoders.py --quick    # smoke run (tiny batches, one pass)

Spaces: the shipped demo model, and ViT-B-32 with random weights (same cost as
any pretrained ViT-B-32) plus a random audio tower with 10 s windows (the size
``encoders.train_audio`` produces for real recordings).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from encoders.audio.frontend import FrontendConfig  # noqa: E402
from encoders.audio.tower import AudioTower, TowerConfig, save_tower  # noqa: E402
from encoders.base import EmbeddingSpace  # noqa: E402
from encoders.demo import synth  # noqa: E402  (needs the repository root on sys.path)
from encoders.openclip import OpenClipSpace  # noqa: E402
from encoders.registry import DEFAULT_SPACES  # noqa: E402

AUDIO_CLIP_SECONDS = 10.0


def call_times(work: Callable[[], object], min_seconds: float, min_calls: int) -> list[float]:
    """Seconds per call, after one untimed warm-up call."""
    work()
    times: list[float] = []
    while len(times) < min_calls or sum(times) < min_seconds:
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return times


def rate(work: Callable[[], object], units: float, min_seconds: float) -> float:
    # The median call, not the mean: on a shared machine a few calls stall
    # behind other processes, and the mean would report their scheduling.
    return units / float(np.median(call_times(work, min_seconds, min_calls=3)))


def vit_b_32_space(batch_size: int, tower_dir: Path) -> OpenClipSpace:
    tower_path = tower_dir / "vit-b-32-random-audio.pt"
    if not tower_path.exists():
        torch.manual_seed(0)
        frontend = FrontendConfig(window_seconds=10.0, hop_seconds=5.0)
        save_tower(
            AudioTower(TowerConfig(embed_dim=512, frontend=frontend)),
            tower_path,
            clip_model="ViT-B-32",
            clip_weights_sha256="random",
        )
    return OpenClipSpace(
        "vit-b-32", model="ViT-B-32", allow_random_weights=True, audio_tower=str(tower_path), batch_size=batch_size
    )


def measure(space: EmbeddingSpace, batch: int, min_seconds: float) -> dict[str, float]:
    rng = np.random.default_rng(0)
    texts = [synth.image_caption(rng, synth.image_labels(rng)) for _ in range(batch)]
    images = [s.image for s in synth.image_samples(batch, seed=0)]
    clip = synth.synth_audio(rng, "beeps", "high", seconds=AUDIO_CLIP_SECONDS)
    clips = [(clip.waveform, clip.samplerate)] * batch
    return {
        "texts/s": rate(lambda: space.encode_texts(texts), batch, min_seconds),
        "images/s": rate(lambda: space.encode_images(images), batch, min_seconds),
        "audio s/s": rate(lambda: space.encode_audio(clips), batch * AUDIO_CLIP_SECONDS, min_seconds),
    }


def _number(value: float) -> str:
    return f"{value:.0f}" if value >= 100 else f"{value:.3g}"


def run(quick: bool) -> str:
    batches = (1, 4) if quick else (1, 32)
    min_seconds = 0.0 if quick else 3.0
    rows = []
    single_query_ms = None
    with tempfile.TemporaryDirectory() as tmp:
        for label, make in (
            ("demo-clip (shipped)", lambda b: OpenClipSpace("demo", **DEFAULT_SPACES["demo"]["OPTIONS"], batch_size=b)),
            ("ViT-B-32 (random weights)", lambda b: vit_b_32_space(b, Path(tmp))),
        ):
            for batch in batches:
                space = make(batch)
                space.warmup()
                figures = measure(space, batch, min_seconds)
                rows.append((label, batch, figures))
                if single_query_ms is None:
                    single_query_ms = 1000 / rate(
                        lambda s=space: s.encode_texts(["a high beeping tone"]), 1, min_seconds
                    )
    device = "cuda" if torch.cuda.is_available() else "cpu"
    lines = [
        "## Encoders",
        "",
        f"{platform.processor() or platform.machine()}, {len(os.sched_getaffinity(0))} CPUs, "
        f"torch {torch.__version__} on {device} with {torch.get_num_threads()} threads, "
        f"load average {os.getloadavg()[0]:.1f} at the end. Median of repeated calls. "
        f'Audio is {AUDIO_CLIP_SECONDS:.0f} s clips; "batch" is items per call and the space\'s batch size.'
        + (" Quick smoke run: figures are not meaningful." if quick else ""),
        "",
        "| space | batch | texts/s | images/s | audio s/s |",
        "|---|---:|---:|---:|---:|",
    ]
    for label, batch, figures in rows:
        cells = " | ".join(_number(figures[key]) for key in ("texts/s", "images/s", "audio s/s"))
        lines.append(f"| {label} | {batch} | {cells} |")
    lines += ["", f"Single text query with the demo model: {single_query_ms:.1f} ms.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny smoke run")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks" / "encoders.md")
    args = parser.parse_args(argv)
    table = run(args.quick)
    print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(table)


if __name__ == "__main__":
    main()
