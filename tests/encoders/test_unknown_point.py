"""Where a model puts text it has no meaning for (EmbeddingSpace.unknown_text_point), on the shipped demo model."""

import numpy as np
import pytest

from encoders.base import EncoderError
from encoders.openclip import OpenClipSpace
from encoders.registry import DEFAULT_SPACES


@pytest.fixture(scope="module")
def demo():
    return OpenClipSpace("demo", **DEFAULT_SPACES["demo"]["OPTIONS"])


def test_ordinary_language_lands_on_the_demo_models_unknown_point_and_its_own_words_do_not(demo):
    point = demo.unknown_text_point()
    assert point.shape == (demo.dim,) and abs(float(np.linalg.norm(point)) - 1.0) < 1e-5
    # None of these sentences is among the ones that define the point.
    ordinary = demo.encode_texts(["my grandmother's recipe for apple pie", "the cat sat on the mat",
                                  "a receipt from the hardware store", "trees in autumn"])
    own = demo.encode_texts(["a red circle", "a blue square", "a high beep", "a low chord", "noise",
                             "a yellow triangle on white"])
    # Most ordinary language, not all: a sentence with a word the model half-knows lands in its world ("the cat sat
    # on the mat": 0.11; about 1 in 11 manual-page summaries do, docs/encoders.md).
    assert (ordinary @ point >= demo.unknown_similarity).sum() >= 3, ordinary @ point
    assert (own @ point < demo.unknown_similarity).all(), own @ point


def test_a_model_without_unknown_texts_has_no_unknown_point():
    options = {k: v for k, v in DEFAULT_SPACES["demo"]["OPTIONS"].items() if not k.startswith("unknown")}
    assert OpenClipSpace("plain", **options).unknown_text_point() is None


@pytest.mark.parametrize("options", [{"unknown_texts": "one string"}, {"unknown_texts": ["", "x"]},
                                     {"unknown_similarity": 0.0}, {"unknown_similarity": 1.5}])
def test_bad_unknown_options_are_refused_with_a_clear_error(options):
    base = {k: v for k, v in DEFAULT_SPACES["demo"]["OPTIONS"].items() if not k.startswith("unknown")}
    with pytest.raises(EncoderError, match="unknown_"):
        OpenClipSpace("bad", **base, **options)
