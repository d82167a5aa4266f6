"""Retrieval quality of the shipped demo weights on held-out synthetic data, in two worlds.

The ``synth`` world is the training generator at a seed training never used; the
``independent`` world (``encoders.demo.synth_eval``) draws and synthesises the same
classes with other code, so these figures measure generalisation beyond the
training renderer, not memorisation. The out-of-domain checks use held-out
ordinary sentences that training never saw.
"""

import pytest

from encoders.demo.quality import (
    KEEP,
    audio_gallery,
    evaluate_world,
    hit_rate,
    image_gallery,
    precision_at_k,
    query_precision,
    text_to_audio_queries,
    text_to_image_queries,
)

TARGET = 0.9


def test_colour_and_shape_query_ranks_a_matching_image_first(demo_space, demo_images):
    texts, wanted = text_to_image_queries()
    assert len(texts) == 128
    queries = demo_space.encode_texts(texts)
    assert hit_rate(queries, wanted, demo_images, k=1) >= TARGET
    assert query_precision(queries, wanted, demo_images, k=5) >= TARGET


def test_attribute_query_ranks_a_matching_clip_first(demo_space, demo_clips):
    texts, wanted = text_to_audio_queries()
    assert len(texts) == 60
    queries = demo_space.encode_texts(texts)
    assert hit_rate(queries, wanted, demo_clips, k=1) >= TARGET
    assert query_precision(queries, wanted, demo_clips, k=5) >= TARGET


def test_image_neighbours_share_colour_and_shape(demo_images):
    assert precision_at_k(demo_images, 5) >= TARGET


def test_audio_neighbours_share_kind_and_pitch(demo_clips):
    assert precision_at_k(demo_clips, 5) >= TARGET


@pytest.fixture(scope="module")
def independent(demo_space):
    return evaluate_world(demo_space, world="independent")


@pytest.mark.parametrize(
    "metric",
    [
        "text->image top-1",
        "text->image precision@5",
        "image->image precision@5",
        "text->audio top-1",
        "text->audio precision@5",
        "audio->audio precision@5",
    ],
)
def test_the_independent_world_is_retrieved_as_well(independent, metric):
    assert independent.figures[metric] >= TARGET, independent.figures


@pytest.mark.parametrize("pair", ["text->image", "text->audio", "text->any"])
def test_out_of_domain_sentences_fall_below_a_cutoff_that_keeps_relevant_hits(independent, pair):
    separation = independent.separation[pair]
    assert (separation.relevant >= separation.threshold).mean() >= KEEP
    assert separation.ood_rejected >= TARGET, separation.summary()


def test_galleries_of_the_independent_world_hold_every_class(demo_space):
    images = image_gallery(demo_space, per_class=1, world="independent")
    clips = audio_gallery(demo_space, per_class=1, world="independent")
    assert len(set(images.keys)) == 64 and len(set(clips.keys)) == 15
