"""The API's limits hold against a client that lies: throttling identity, Range headers, caption caps (issue 11)."""


import pytest
from django.core.cache import cache
from django.test import Client

from tests.search.attack_helpers import api

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fake_spaces")]


@pytest.fixture(autouse=True)
def _fresh_throttles():
    cache.clear()



def test_x_forwarded_for_does_not_choose_the_throttling_identity(settings):
    settings.SEARCH_THROTTLE_RATES = {"search": "3/min", "write": "60/min"}
    codes = [api().get("/api/search/", {"q": "red"}, HTTP_X_FORWARDED_FOR=f"10.0.0.{n}").status_code
             for n in range(5)]
    assert codes[-1] == 429


def test_an_absurd_range_header_is_ignored_not_a_crash(stored):
    image, _ = stored
    response = Client().get(f"/media/{image.media.name}", HTTP_RANGE="bytes=" + "9" * 5000 + "-")
    assert response.status_code in (200, 416)


def test_editing_a_caption_has_the_same_cap_as_creating_one(stored, owner, settings):
    image, _ = stored
    client = api(owner, token=True)
    response = client.patch(f"/api/items/{image.pk}/", {"text": "x" * (settings.SEARCH_MAX_TEXT_CHARS + 1)},
                            format="json")
    assert response.status_code == 400
    assert "limit" in response.json()["text"][0]
    response = client.patch(f"/api/items/{image.pk}/", {"text": "  a sunny beach  ", "tags": [" Beach ", "beach"]},
                            format="json")
    assert response.status_code == 200
    assert (response.json()["text"], response.json()["tags"]) == ("a sunny beach", ["beach"])

