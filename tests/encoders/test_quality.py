"""Retrieval quality of the shipped demo weights on held-out synthetic data.

The galleries and queries come from ``encoders.evaluate`` with a seed the
training never used, so these are generalisation figures, not memorisation.
"""

from encoders.evaluate import hit_rate, precision_at_k, text_to_audio_queries, text_to_image_queries


def test_colour_and_shape_query_ranks_a_matching_image_first(demo_space, demo_images):
    texts, wanted = text_to_image_queries()
    assert len(texts) == 128
    assert hit_rate(demo_space.encode_texts(texts), wanted, demo_images, k=1) >= 0.9


def test_attribute_query_finds_a_matching_clip_in_the_top_3(demo_space, demo_clips):
    texts, wanted = text_to_audio_queries()
    assert len(texts) == 60
    assert hit_rate(demo_space.encode_texts(texts), wanted, demo_clips, k=3) >= 0.9


def test_image_neighbours_share_colour_and_shape(demo_images):
    assert precision_at_k(demo_images, 5) >= 0.9


def test_audio_neighbours_share_kind_and_pitch(demo_clips):
    assert precision_at_k(demo_clips, 5) >= 0.9
