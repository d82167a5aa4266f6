import pytest

import encoders

FAKE_SPACES = {"fake": {"ENCODER": "encoders.fake.FakeSpace", "OPTIONS": {"dim": 32}}}


@pytest.fixture
def fake_spaces(settings):
    """Swap the real model for the fast deterministic fake (plumbing tests only)."""
    original = settings.SEARCH_SPACES
    settings.SEARCH_SPACES = FAKE_SPACES
    settings.SEARCH_DEFAULT_SPACE = "fake"
    encoders.configure(FAKE_SPACES)
    yield FAKE_SPACES
    encoders.configure(original)
