import pytest

import encoders
from encoders.base import EncoderError, UnknownSpace
from encoders.fake import FakeSpace
from encoders.openclip import OpenClipSpace


@pytest.fixture(autouse=True)
def _clean_registry():
    encoders.reset()
    yield
    encoders.reset()


def test_demo_space_works_without_configuration():
    assert encoders.list_spaces() == ["demo", "text"]
    space = encoders.get_space("demo")
    assert isinstance(space, OpenClipSpace)
    assert space.modalities == {"text", "image", "audio"}


def test_configure_builds_spaces_from_options_and_caches_them():
    encoders.configure({"fast": {"ENCODER": "encoders.fake.FakeSpace", "OPTIONS": {"dim": 8}}})
    space = encoders.get_space("fast")
    assert isinstance(space, FakeSpace) and space.dim == 8 and space.name == "fast"
    assert encoders.get_space("fast") is space
    assert encoders.list_spaces() == ["fast"]


def test_unknown_space_names_the_configured_ones():
    encoders.configure({"fast": {"ENCODER": "encoders.fake.FakeSpace"}})
    with pytest.raises(UnknownSpace, match=r"'nope'.*configured: fast"):
        encoders.get_space("nope")
    with pytest.raises(KeyError):
        encoders.get_space("nope")


@pytest.mark.parametrize(
    "entry, message",
    [
        ({"OPTIONS": {}}, "needs an 'ENCODER'"),
        ({"ENCODER": "encoders.fake.FakeSpace", "OPTION": {}}, "unknown keys"),
    ],
)
def test_configure_rejects_malformed_entries(entry, message):
    with pytest.raises(EncoderError, match=message):
        encoders.configure({"x": entry})


@pytest.mark.parametrize("dotted", ["encoders.fake.Nope", "no_such_module.Space", "encoders.base.Modality"])
def test_bad_encoder_paths_fail_on_first_use(dotted):
    encoders.configure({"x": {"ENCODER": dotted}})
    with pytest.raises(EncoderError, match="cannot import|not an EmbeddingSpace"):
        encoders.get_space("x")


def test_reset_restores_the_defaults():
    encoders.configure({"fast": {"ENCODER": "encoders.fake.FakeSpace"}})
    encoders.reset()
    assert encoders.list_spaces() == ["demo", "text"]
