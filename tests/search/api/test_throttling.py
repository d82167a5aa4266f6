"""Throttles by tier: anonymous per address, token holders and staff per account, each with its own rate."""

import pytest
from django.conf import settings as django_settings
from django.core.cache import cache
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests.search.users import make_user

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fake_spaces")]

DEFAULT_RATES = dict(django_settings.SEARCH_THROTTLE_RATES)  # as configured, before any test changes them
RATES = {"search": "2/min", "search.user": "4/min", "search.staff": None, "write": "3/min", "write.staff": None}


@pytest.fixture(autouse=True)
def _rates(settings):
    cache.clear()
    settings.SEARCH_THROTTLE_RATES = RATES


def client_for(user=None) -> APIClient:
    client = APIClient()
    if user is not None:
        client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


def searches(client, n: int, **extra) -> list[int]:
    return [client.get("/api/search/", {"q": "red"}, **extra).status_code for _ in range(n)]


def test_each_tier_has_its_own_search_rate():
    assert searches(client_for(), 3) == [200, 200, 429]
    assert searches(client_for(make_user("ann")), 5) == [200] * 4 + [429]
    assert searches(client_for(make_user("sam", staff=True)), 8) == [200] * 8  # None: no limit


def test_anonymous_clients_are_counted_per_address_behind_the_declared_proxies(settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    from rest_framework.settings import api_settings

    api_settings.reload()
    try:
        client = client_for()
        assert searches(client, 3, HTTP_X_FORWARDED_FOR="203.0.113.1") == [200, 200, 429]
        assert searches(client, 2, HTTP_X_FORWARDED_FOR="203.0.113.2") == [200, 200]  # another client
    finally:
        settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 0}
        api_settings.reload()


def test_a_batch_upload_counts_as_one_write_and_staff_writes_are_not_limited():
    client = client_for(make_user("int"))
    codes = [client.post("/api/items/batch/", {"items": [{"text": f"b{n}-{i}"} for i in range(50)]},
                         format="json").status_code for n in range(4)]
    assert codes == [202, 202, 202, 429]
    staff = client_for(make_user("ops", staff=True))
    assert {staff.post("/api/items/", {"text": f"s{n}"}, format="json").status_code for n in range(6)} == {201}


def test_the_default_rates_let_an_integration_store_hundreds_a_minute(settings):
    settings.SEARCH_THROTTLE_RATES = DEFAULT_RATES
    client = client_for(make_user("bulk"))
    created = {client.post("/api/items/", {"text": f"item {n}"}, format="json").status_code for n in range(150)}
    assert created == {201}  # the integration was stopped after 60
