"""The search's parameters checked by hand (search.api.search_params) give exactly the serializers' answer.

For any input the hand check accepts, its dict equals the serializer's validated_data; whatever the serializer
refuses, the hand check refers to it (so every 400 keeps the serializer's message).
"""

import math

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from rest_framework.exceptions import ValidationError

from search.api import search_params as lean
from search.api.serializers import SearchBodySerializer, SearchParamsSerializer

TEXTS = st.one_of(
    st.sampled_from(["a red circle", "  padded  ", "", "   ", "x" * 1000, " " + "x" * 1000 + " ", "x" * 1001,
                     "nul\x00", "lone \udc00", "émoji 🎈", "\t\n"]),
    st.text(max_size=30),
)
NUMBERS = st.one_of(
    st.integers(-5, 120), st.sampled_from(["10", "010", "0", "-1", "1.0", " 5", "99999999999", "abc", "", "101"]),
    st.booleans(), st.floats(allow_nan=True, allow_infinity=True), st.none(), st.just(10**400),
)
BOOLEANS = st.one_of(st.booleans(), st.sampled_from(["true", "True", "FALSE", "1", "0", "yes", "off", "maybe", ""]),
                     st.integers(-1, 2), st.none())
CHOICES = st.one_of(st.sampled_from(["vector", "hybrid", "lexical", "relevance", "newest", "title", "Vector", ""]),
                    st.integers(0, 2), st.none())
MODALITIES = st.lists(st.one_of(st.sampled_from(["image", "audio", "text", "video", "", "IMAGE"]), st.integers()),
                      max_size=5)
TAGS = st.lists(TEXTS, max_size=22)
VECTORS = st.one_of(
    st.lists(st.floats(allow_nan=False, allow_infinity=False, width=32), max_size=8),
    st.lists(st.one_of(st.floats(), st.integers(-3, 3), st.booleans(), st.none(), st.just("0.5")), max_size=5),
    st.just(16_001).map(lambda n: [1.0] * n), st.just([10**400]), st.just("0.1,0.2"),
)
WEIGHTS = st.one_of(st.floats(), st.integers(-200, 200), st.sampled_from(["1", None, True, 10**400]))
PARTS = st.lists(
    st.fixed_dictionaries({}, optional={
        "text": TEXTS, "item": NUMBERS, "vector": VECTORS, "weight": WEIGHTS, "other": st.integers()}),
    max_size=10,
)
PLAIN = {"q": TEXTS, "k": NUMBERS, "page": NUMBERS, "space": TEXTS, "collection": TEXTS, "mode": CHOICES,
         "sort": CHOICES, "exact": BOOLEANS, "include_weak": BOOLEANS, "modality": MODALITIES, "tag": TAGS,
         "unknown": st.integers()}
OTHER = {"min_relevance": st.floats(0, 1), "metadata": st.just({"a": 1}), "facets": st.just(["modality"]),
         "created_after": st.just("2020-01-01T00:00:00Z")}
BODY = {"parts": PARTS, "weight": WEIGHTS, "file": st.just("not a file")}


def _same(data, serializer_class, body):
    serializer = serializer_class(data=data)
    valid = serializer.is_valid()
    try:
        by_hand = lean._plain(data, body)
    except lean._Refer:
        by_hand = None
    if by_hand is not None:
        assert valid, (data, serializer.errors)
        assert by_hand == dict(serializer.validated_data)
        assert [dict(part) for part in serializer.validated_data.get("parts", [])] == by_hand.get("parts", [])
    # Through the public function, the answer or the error is the serializer's.
    try:
        got = lean.search_params(data, body=body)
    except ValidationError as exc:
        assert not valid and exc.detail == serializer.errors
    else:
        assert valid and got == dict(serializer.validated_data)
    return by_hand is not None


@hsettings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.fixed_dictionaries({}, optional=PLAIN))
def test_query_string_parameters_checked_by_hand_equal_the_serializer(data):
    _same(data, SearchParamsSerializer, body=False)


@hsettings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.fixed_dictionaries({}, optional=PLAIN | BODY | {"rare": st.fixed_dictionaries({}, optional=OTHER)}))
def test_body_parameters_checked_by_hand_equal_the_serializer(data):
    data = data | data.pop("rare", {})
    _same(data, SearchBodySerializer, body=True)


@pytest.mark.parametrize(("data", "body"), [
    ({"q": "a red circle", "modality": [], "tag": []}, False),
    ({"q": " red ", "k": "20", "page": "2", "mode": "hybrid", "modality": ["image", "audio"], "tag": ["x"],
      "exact": "true", "include_weak": "False", "sort": "newest", "space": "demo", "collection": "c"}, False),
    ({"parts": [{"vector": [0.5, 1, -2.25e-3]}], "k": 10, "space": "peer"}, True),
    ({"q": "circle", "parts": [{"text": "red", "weight": 2}, {"item": 7, "weight": -0.5}], "weight": 1}, True),
])
def test_the_usual_requests_take_the_hand_check(data, body):
    assert _same(data, SearchBodySerializer if body else SearchParamsSerializer, body)


@pytest.mark.parametrize("data", [
    {"parts": [{"vector": [1.0, math.inf]}]}, {"parts": [{"vector": [1.0], "text": "x"}]}, {"k": 0}, {"k": 101},
    {"q": "x" * 1001}, {"metadata": {"a": 1}}, {"mode": "fast"}, {"parts": [{"text": ""}]}, {"weight": 10**400},
])
def test_anything_else_gets_the_serializers_answer(data):
    assert not _same(data, SearchBodySerializer, body=True)
