import numpy as np
import pytest

from encoders.base import InvalidEmbedding, Modality, UnknownSpace, UnsupportedModality, finalize


def test_modality_values_are_plain_strings():
    assert {m.value for m in Modality} == {"text", "image", "audio"}
    assert Modality.AUDIO == "audio"


def test_finalize_normalises_rows_to_float32():
    out = finalize(np.array([[3.0, 4.0], [0.0, -2.0]]), "test")
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [[0.6, 0.8], [0.0, -1.0]], rtol=1e-6)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_finalize_rejects_non_finite_rows(bad):
    with pytest.raises(InvalidEmbedding, match=r"row\(s\) \[1\]"):
        finalize(np.array([[1.0, 0.0], [bad, 1.0]]), "test")


def test_finalize_rejects_zero_rows():
    with pytest.raises(InvalidEmbedding, match="zero vector"):
        finalize(np.zeros((1, 4)), "test")


def test_unsupported_modality_names_space_and_modality():
    err = UnsupportedModality("clip", "audio", frozenset({"text", "image"}))
    assert "'clip'" in str(err) and "'audio'" in str(err) and "image, text" in str(err)


def test_unknown_space_is_a_key_error_with_a_readable_message():
    err = UnknownSpace("unknown embedding space 'x'")
    assert isinstance(err, KeyError)
    assert str(err) == "unknown embedding space 'x'"
