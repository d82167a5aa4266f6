import pytest

import encoders
from search.engine.rankers import clear_centroids
from search.ingest.ingester import Ingester, IngestInput
from search.models import Item
from tests.search.helpers import png_bytes
from tests.search.object_store import s3_endpoint, s3_media  # noqa: F401 (fixtures: a local S3 server, issue 29)
from tests.search.users import make_user


@pytest.fixture(autouse=True)
def _fresh_centroids():
    # Modality baselines are cached per process; each test builds its own world.
    clear_centroids()

FAKE_SPACES = {"fake": {"ENCODER": "encoders.fake.FakeSpace", "OPTIONS": {"dim": 32}}}


# The fake with a small context, so texts of a few sentences already have passages (issue 17).
PASSAGE_SPACES = {"fake": {"ENCODER": "encoders.fake.FakeSpace", "OPTIONS": {"dim": 64, "passage_tokens": 24}}}


def _use_fake(settings, spaces: dict):
    original = settings.SEARCH_SPACES
    settings.SEARCH_SPACES = spaces
    settings.SEARCH_DEFAULT_SPACE = "fake"
    # The fake's vectors carry no meaning a relevance could be calibrated on: plumbing tests see every
    # result, and the cutoff's own tests (test_relevance.py) set min_relevance explicitly.
    settings.SEARCH_MIN_RELEVANCE = 0.0
    encoders.configure(spaces)
    return original


@pytest.fixture
def fake_spaces(settings):
    """Swap the real model for the fast deterministic fake (plumbing tests only)."""
    original = _use_fake(settings, FAKE_SPACES)
    yield FAKE_SPACES
    encoders.configure(original)


@pytest.fixture
def passage_spaces(settings):
    """The fake, splitting texts into passages of 24 words and marks."""
    original = _use_fake(settings, PASSAGE_SPACES)
    yield PASSAGE_SPACES
    encoders.configure(original)


# The owner of the items the hostile-input tests attack, and those items (one image, one hidden text).
@pytest.fixture
def owner():
    return make_user("owner")


@pytest.fixture
def stored(owner):
    """A visible image and a hidden text, both owned by `owner`."""
    image = Ingester().ingest(IngestInput(data=png_bytes(seed=7), title="Visible picture", owner_id=owner.pk)).item
    hidden = Ingester().ingest(IngestInput(text="a secret memo about the merger", title="Secret memo",
                                           owner_id=owner.pk, metadata={"k": "v"})).item
    Item.objects.filter(pk=hidden.pk).update(hidden=True)
    hidden.refresh_from_db()
    return image, hidden

