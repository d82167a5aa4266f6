"""The metrics behind the quality tests, checked on galleries small enough to do by hand."""

import numpy as np
import pytest

from encoders.demo import synth
from encoders.demo.quality import (
    Gallery,
    Separation,
    hit_rate,
    precision_at_k,
    query_precision,
    relevant_top_k_similarities,
    text_to_audio_queries,
    text_to_image_queries,
)


def gallery(vectors, keys) -> Gallery:
    vectors = np.asarray(vectors, dtype=np.float32)
    return Gallery(vectors / np.linalg.norm(vectors, axis=1, keepdims=True), keys, [])


def test_hit_rate_counts_a_query_when_its_class_is_in_the_top_k():
    g = gallery([[1, 0], [0.8, 0.6], [0, 1]], ["a", "b", "c"])
    queries = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    assert hit_rate(queries, ["a", "b", "a"], g, k=1) == 1 / 3
    assert hit_rate(queries, ["a", "b", "a"], g, k=2) == 2 / 3


def test_precision_at_k_excludes_the_item_itself():
    g = gallery([[1, 0], [0.99, 0.1], [0, 1], [0.1, 0.99]], ["x", "x", "y", "y"])
    assert precision_at_k(g, 1) == 1.0
    assert precision_at_k(g, 2) == 0.5


def test_queries_cover_every_class_and_only_name_its_attributes():
    texts, wanted = text_to_image_queries()
    assert set(wanted) == {f"{c} {s}" for c in synth.COLOURS for s in synth.SHAPES}
    for text, key in zip(texts, wanted, strict=True):
        colour, shape = key.split()
        assert any(w in text for w in synth.COLOURS[colour][1]) and any(w in text for w in synth.SHAPES[shape])
    texts, wanted = text_to_audio_queries()
    assert set(wanted) == {f"{p} {k}" for k in synth.AUDIO_KINDS for p in synth.PITCHES}


def test_query_precision_is_the_share_of_the_wanted_class_in_the_top_k():
    g = gallery([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9]], ["a", "a", "b", "b"])
    queries = np.array([[1.0, 0.0], [0.0, 1.0]])
    assert query_precision(queries, ["a", "b"], g, k=2) == 1.0
    assert query_precision(queries, ["a", "a"], g, k=2) == 0.5


def test_the_cutoff_keeps_ninety_percent_of_relevant_hits():
    separation = Separation(relevant=np.linspace(0.5, 0.9, 101), ood_best=np.array([0.1, 0.2, 0.53, 0.6]))
    assert 0.53 <= separation.threshold <= 0.54  # about the 10th of 101 from the bottom
    assert (separation.relevant >= separation.threshold).mean() >= 0.9
    assert separation.ood_rejected == 0.75
    g = gallery([[1, 0], [0.6, 0.8], [0, 1]], ["a", "b", "a"])
    sims = relevant_top_k_similarities(np.array([[1.0, 0.0]]), ["a"], g, k=2)
    assert sims.tolist() == pytest.approx([1.0])  # the relevant hit in the top 2, not the one at rank 3
