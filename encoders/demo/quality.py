"""Retrieval quality of a space on held-out synthetic data, and how far it keeps unrelated text.

    python -m encoders.demo.quality [--space demo] [--seed 10000] [--world synth|independent|both]

Two worlds of the same classes: ``synth`` is the training generator at a seed
training never uses (0 and 1 are training's), ``independent`` is
``encoders.demo.synth_eval``, drawn and synthesised by other code and never used in
training. Figures per world: text->image and text->audio top-1 and
precision@5, image->image and audio->audio precision@5.

The out-of-domain report scores held-out ordinary sentences
(``synth_eval.ood_sentences``) against the same galleries: the cutoff that keeps
90% of the relevant hits in the top 5 of in-domain queries, and the share of
out-of-domain sentences whose best match falls below it.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import numpy as np

from encoders.base import EmbeddingSpace
from encoders.demo import synth, synth_eval
from encoders.registry import get_space

HELD_OUT_SEED = 10_000
WORLDS = ("synth", "independent")
# Share of in-domain relevant top-5 hits a cutoff must keep.
KEEP = 0.9


@dataclass
class Gallery:
    vectors: np.ndarray
    keys: list[str]
    samples: list


def image_gallery(
    space: EmbeddingSpace, per_class: int = 6, seed: int = HELD_OUT_SEED, world: str = "synth"
) -> Gallery:
    if world == "independent":
        samples = list(synth_eval.image_samples(per_class, seed + 7))
    else:
        samples = list(synth.image_samples(per_class * len(synth.COLOURS) * len(synth.SHAPES), seed))
    return Gallery(space.encode_images([s.image for s in samples]), [s.key for s in samples], samples)


def audio_gallery(
    space: EmbeddingSpace, per_class: int = 8, seed: int = HELD_OUT_SEED, world: str = "synth"
) -> Gallery:
    if world == "independent":
        samples = list(synth_eval.audio_samples(per_class, seed + 8))
    else:
        samples = list(synth.audio_samples(per_class * len(synth.AUDIO_KINDS) * len(synth.PITCHES), seed + 1))
    return Gallery(space.encode_audio([(s.waveform, s.samplerate) for s in samples]), [s.key for s in samples], samples)


def text_gallery(space: EmbeddingSpace, per_class: int = 2, seed: int = HELD_OUT_SEED) -> Gallery:
    """In-domain captions, as the demo site stores them as text items."""
    rng = np.random.default_rng(seed + 4)
    texts, keys = [], []
    for colour in synth.COLOURS:
        for shape in synth.SHAPES:
            for _ in range(per_class):
                texts.append(synth.image_caption(rng, synth.image_labels(rng, colour, shape)))
                keys.append(f"{colour} {shape}")
    for kind in synth.AUDIO_KINDS:
        for pitch in synth.PITCHES:
            for _ in range(per_class * 2):
                texts.append(synth.audio_caption(rng, synth.audio_labels(rng, kind, pitch)))
                keys.append(f"{pitch} {kind}")
    return Gallery(space.encode_texts(texts), keys, texts)


def hit_rate(queries: np.ndarray, wanted: list[str], gallery: Gallery, k: int) -> float:
    """Share of queries with an item of the wanted class among the top ``k``."""
    top = np.argsort(-(queries @ gallery.vectors.T), axis=1)[:, :k]
    keys = np.asarray(gallery.keys)
    return float(np.mean([want in keys[row] for want, row in zip(wanted, top, strict=True)]))


def query_precision(queries: np.ndarray, wanted: list[str], gallery: Gallery, k: int = 5) -> float:
    """Mean share of each query's top ``k`` that is of the wanted class."""
    top = np.argsort(-(queries @ gallery.vectors.T), axis=1)[:, :k]
    keys = np.asarray(gallery.keys)
    return float((keys[top] == np.asarray(wanted)[:, None]).mean())


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


def relevant_top_k_similarities(queries: np.ndarray, wanted: list[str], gallery: Gallery, k: int = 5) -> np.ndarray:
    """Similarities of the relevant items among each query's top ``k``: the hits a cutoff should keep."""
    sims = queries @ gallery.vectors.T
    top = np.argsort(-sims, axis=1)[:, :k]
    keys = np.asarray(gallery.keys)
    relevant = keys[top] == np.asarray(wanted)[:, None]
    return np.take_along_axis(sims, top, axis=1)[relevant]


def best_similarities(queries: np.ndarray, gallery: Gallery) -> np.ndarray:
    return (queries @ gallery.vectors.T).max(axis=1)


@dataclass
class Separation:
    """In-domain relevant hits against out-of-domain best matches, for one query -> item pair."""

    relevant: np.ndarray  # similarity of each relevant top-5 hit of an in-domain query
    ood_best: np.ndarray  # best similarity of each out-of-domain sentence

    @property
    def threshold(self) -> float:
        return float(np.quantile(self.relevant, 1 - KEEP, method="lower")) if len(self.relevant) else float("nan")

    @property
    def ood_rejected(self) -> float:
        """Share of out-of-domain sentences with no item at or above the threshold."""
        return float((self.ood_best < self.threshold).mean())

    def summary(self) -> dict[str, float]:
        return {
            "in-domain relevant median": float(np.median(self.relevant)),
            "in-domain relevant p10": self.threshold,
            "ood best median": float(np.median(self.ood_best)),
            "ood best p90": float(np.quantile(self.ood_best, 0.9)),
            "ood best max": float(self.ood_best.max()),
            "ood below threshold": self.ood_rejected,
        }


@dataclass
class WorldResult:
    figures: dict[str, float]
    separation: dict[str, Separation]


def evaluate_world(
    space: EmbeddingSpace, seed: int = HELD_OUT_SEED, world: str = "synth", ood: list[str] | None = None
) -> WorldResult:
    ood = synth_eval.ood_sentences(seed=seed) if ood is None else ood
    ood_vectors = space.encode_texts(ood)
    images = image_gallery(space, seed=seed, world=world)
    texts, wanted = text_to_image_queries(seed)
    queries = space.encode_texts(texts)
    figures = {
        "text->image top-1": hit_rate(queries, wanted, images, k=1),
        "text->image precision@5": query_precision(queries, wanted, images, k=5),
        "image->image precision@5": precision_at_k(images, 5),
    }
    separation = {
        "text->image": Separation(
            relevant_top_k_similarities(queries, wanted, images), best_similarities(ood_vectors, images)
        )
    }
    all_relevant = [separation["text->image"].relevant]
    all_ood = [separation["text->image"].ood_best]
    if space.can_embed("audio"):
        clips = audio_gallery(space, seed=seed, world=world)
        texts, wanted = text_to_audio_queries(seed)
        queries = space.encode_texts(texts)
        figures["text->audio top-1"] = hit_rate(queries, wanted, clips, k=1)
        figures["text->audio precision@5"] = query_precision(queries, wanted, clips, k=5)
        figures["audio->audio precision@5"] = precision_at_k(clips, 5)
        separation["text->audio"] = Separation(
            relevant_top_k_similarities(queries, wanted, clips), best_similarities(ood_vectors, clips)
        )
        all_relevant.append(separation["text->audio"].relevant)
        all_ood.append(separation["text->audio"].ood_best)
    # One cutoff for every item, as a search over all modalities would apply.
    separation["text->any"] = Separation(np.concatenate(all_relevant), np.max(np.stack(all_ood), axis=0))
    return WorldResult(figures, separation)


def text_separation(space: EmbeddingSpace, seed: int = HELD_OUT_SEED, ood: list[str] | None = None) -> Separation:
    """Out-of-domain sentences against in-domain captions stored as text items."""
    ood = synth_eval.ood_sentences(seed=seed) if ood is None else ood
    captions = text_gallery(space, seed=seed)
    queries, wanted = [], []
    for texts_wanted in (text_to_image_queries(seed), text_to_audio_queries(seed)):
        queries += texts_wanted[0]
        wanted += texts_wanted[1]
    return Separation(
        relevant_top_k_similarities(space.encode_texts(queries), wanted, captions),
        best_similarities(space.encode_texts(ood), captions),
    )


def evaluate(space: EmbeddingSpace, seed: int = HELD_OUT_SEED, world: str = "synth") -> dict[str, float]:
    """The retrieval figures of one world (see ``evaluate_world`` for the out-of-domain separation too)."""
    return evaluate_world(space, seed, world).figures


def report(space: EmbeddingSpace, seed: int = HELD_OUT_SEED, worlds: tuple[str, ...] = WORLDS) -> str:
    lines = []
    ood = synth_eval.ood_sentences(seed=seed)
    for world in worlds:
        result = evaluate_world(space, seed, world, ood)
        lines.append(f"== {world} world (seed {seed})")
        lines += [f"{metric}: {value:.3f}" for metric, value in result.figures.items()]
        lines.append(
            f"out-of-domain separation ({len(ood)} held-out sentences; cutoff keeps {KEEP:.0%} of in-domain "
            "relevant top-5 hits):"
        )
        for pair, sep in result.separation.items():
            s = sep.summary()
            lines.append(
                f"  {pair}: relevant median {s['in-domain relevant median']:.3f}, "
                f"cutoff {s['in-domain relevant p10']:.3f} | ood best median {s['ood best median']:.3f}, "
                f"p90 {s['ood best p90']:.3f}, max {s['ood best max']:.3f}"
                f" | ood below cutoff {s['ood below threshold']:.3f}"
            )
    s = text_separation(space, seed, ood).summary()
    lines.append(
        f"text->text (in-domain captions): relevant median {s['in-domain relevant median']:.3f}, cutoff "
        f"{s['in-domain relevant p10']:.3f} | ood best median {s['ood best median']:.3f}, p90 {s['ood best p90']:.3f}"
        f" | ood below cutoff {s['ood below threshold']:.3f}"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--space", default="demo")
    parser.add_argument("--seed", type=int, default=HELD_OUT_SEED)
    parser.add_argument("--world", choices=[*WORLDS, "both"], default="both")
    args = parser.parse_args(argv)
    worlds = WORLDS if args.world == "both" else (args.world,)
    print(report(get_space(args.space), args.seed, worlds))


if __name__ == "__main__":
    main()
