"""Retrieval quality of a space on held-out synthetic data.

    python -m encoders.evaluate [--space demo] [--seed 10000]

Training draws its data from seeds 0 and 1; the default seed here is far away
from those, so every image, clip and query is new to the model.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import numpy as np

from encoders import synth
from encoders.base import EmbeddingSpace
from encoders.registry import get_space

HELD_OUT_SEED = 10_000


@dataclass
class Gallery:
    vectors: np.ndarray
    keys: list[str]
    samples: list


def image_gallery(space: EmbeddingSpace, per_class: int = 6, seed: int = HELD_OUT_SEED) -> Gallery:
    samples = list(synth.image_samples(per_class * len(synth.COLOURS) * len(synth.SHAPES), seed))
    return Gallery(space.encode_images([s.image for s in samples]), [s.key for s in samples], samples)


def audio_gallery(space: EmbeddingSpace, per_class: int = 8, seed: int = HELD_OUT_SEED) -> Gallery:
    samples = list(synth.audio_samples(per_class * len(synth.AUDIO_KINDS) * len(synth.PITCHES), seed + 1))
    return Gallery(space.encode_audio([(s.waveform, s.samplerate) for s in samples]), [s.key for s in samples], samples)


def hit_rate(queries: np.ndarray, wanted: list[str], gallery: Gallery, k: int) -> float:
    """Share of queries with an item of the wanted class among the top ``k``."""
    top = np.argsort(-(queries @ gallery.vectors.T), axis=1)[:, :k]
    keys = np.asarray(gallery.keys)
    return float(np.mean([want in keys[row] for want, row in zip(wanted, top, strict=True)]))


def precision_at_k(gallery: Gallery, k: int = 5) -> float:
    """Mean share of each item's ``k`` nearest other items that share its class."""
    sims = gallery.vectors @ gallery.vectors.T
    np.fill_diagonal(sims, -np.inf)
    top = np.argsort(-sims, axis=1)[:, :k]
    keys = np.asarray(gallery.keys)
    return float((keys[top] == keys[:, None]).mean())


def text_to_image_queries(seed: int = HELD_OUT_SEED, per_class: int = 2) -> tuple[list[str], list[str]]:
    rng = np.random.default_rng(seed + 2)
    pairs = [(c, s) for c in synth.COLOURS for s in synth.SHAPES for _ in range(per_class)]
    return [synth.image_query(rng, c, s) for c, s in pairs], [f"{c} {s}" for c, s in pairs]


def text_to_audio_queries(seed: int = HELD_OUT_SEED, per_class: int = 4) -> tuple[list[str], list[str]]:
    rng = np.random.default_rng(seed + 3)
    pairs = [(k, p) for k in synth.AUDIO_KINDS for p in synth.PITCHES for _ in range(per_class)]
    return [synth.audio_query(rng, k, p) for k, p in pairs], [f"{p} {k}" for k, p in pairs]


def evaluate(space: EmbeddingSpace, seed: int = HELD_OUT_SEED) -> dict[str, float]:
    images = image_gallery(space, seed=seed)
    texts, wanted = text_to_image_queries(seed)
    results = {
        "text->image top-1": hit_rate(space.encode_texts(texts), wanted, images, k=1),
        "image->image precision@5": precision_at_k(images, 5),
    }
    if space.can_embed("audio"):
        clips = audio_gallery(space, seed=seed)
        texts, wanted = text_to_audio_queries(seed)
        results["text->audio top-3"] = hit_rate(space.encode_texts(texts), wanted, clips, k=3)
        results["audio->audio precision@5"] = precision_at_k(clips, 5)
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--space", default="demo")
    parser.add_argument("--seed", type=int, default=HELD_OUT_SEED)
    args = parser.parse_args(argv)
    for metric, value in evaluate(get_space(args.space), args.seed).items():
        print(f"{metric}: {value:.3f}")


if __name__ == "__main__":
    main()
