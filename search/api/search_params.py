"""A search's parameters checked by hand in the common case, by the serializers otherwise.

SearchParamsSerializer and SearchBodySerializer stay what the API is (the schema, every message of a 400), but
building one costs a deep copy of its two dozen declared fields, and validating walks them all: together more CPU
than the rest of the request's Python. A request that gives only plain values of the usual fields (a query text,
raw vectors, k, page, space, mode, sort, modality, tag, collection, exact, include_weak, weight) is checked here
and gives the very dict the serializer's `validated_data` would; anything else (another field given, a value of
another type, a value out of range) returns None and the serializer decides, with its own messages.
tests/search/api/test_search_params.py checks the two agree on generated inputs.
"""

import math
import re

from django.conf import settings
from rest_framework.fields import BooleanField, empty

from search.api.serializers import SearchBodySerializer, SearchParamsSerializer
from search.engine.requests import MODES, SORTS
from search.models import Modality

# What a field given nothing becomes (the serializers' defaults), in their order.
_DEFAULTS = {
    "modality": list, "tag": list, "collection": "", "metadata": dict, "created_after": None, "created_before": None,
    "taken_after": None, "taken_before": None, "k": 10, "page": 1, "mode": "vector", "space": "", "exact": False,
    "min_relevance": None, "include_weak": False, "sort": "relevance", "facets": list,
}
_BODY_DEFAULTS = {"parts": list, "weight": 1.0}
# Fields that take their default only: given any value, the serializer checks the request.
_DEFAULT_ONLY = {"metadata", "created_after", "created_before", "taken_after", "taken_before", "min_relevance",
                 "facets", "file"}
_PART_FIELDS = ("text", "item", "vector")
_MODALITIES = frozenset(Modality.values)
_SORTS = frozenset(SORTS)
_MODES = frozenset(MODES)
_DIGITS = re.compile(r"[0-9]{1,9}")
# Lone surrogates (DRF's ProhibitSurrogateCharactersValidator refuses them) and NUL.
_REFUSED_CHARS = re.compile("[\x00\ud800-\udfff]")


class _Refer(Exception):
    """Not a plain request: the serializer decides."""


def search_params(data, *, body: bool) -> dict:
    """The validated parameters of a search: the GET query's (`body` False) or a POST body's; raises DRF's
    ValidationError as the serializer does."""
    if type(data) is dict:
        try:
            return _plain(data, body)
        except _Refer:
            pass
    serializer = (SearchBodySerializer if body else SearchParamsSerializer)(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def _plain(data: dict, body: bool) -> dict:
    out = {}
    q = data.get("q", empty)
    if q is not empty:
        out["q"] = _text(q, settings.SEARCH_MAX_QUERY_CHARS, blank=True)
    for name, default in (_DEFAULTS | _BODY_DEFAULTS if body else _DEFAULTS).items():
        value = data.get(name, empty)
        if value is empty:
            out[name] = default() if callable(default) else default
        elif name in _DEFAULT_ONLY:
            raise _Refer
        else:
            out[name] = _CHECKS[name](value)
    if body and "file" in data:
        raise _Refer
    # Keys the serializer does not declare are ignored by it, and so here.
    return out


def _text(value, limit: int, *, blank: bool) -> str:
    # CharField: a string, trimmed, at most `limit` characters after trimming, no NUL or lone surrogate.
    if type(value) is not str or _REFUSED_CHARS.search(value):
        raise _Refer
    value = value.strip()
    if len(value) > limit or (not blank and not value):
        raise _Refer
    return value


def _integer(value, maximum: int) -> int:
    if type(value) is str and _DIGITS.fullmatch(value):
        value = int(value)
    elif type(value) is not int:
        raise _Refer
    if not 1 <= value <= maximum:
        raise _Refer
    return value


def _choice(choices):
    def check(value):
        if type(value) is not str or value not in choices:
            raise _Refer
        return value
    return check


def _boolean(value) -> bool:
    if type(value) is bool:
        return value
    if type(value) is str:
        value = value.lower()
        if value in BooleanField.TRUE_VALUES:
            return True
        if value in BooleanField.FALSE_VALUES:
            return False
    raise _Refer


def _weight(value) -> float:
    if type(value) is not float and type(value) is not int:
        raise _Refer
    try:
        value = float(value)
    except OverflowError:  # an integer past float's range
        raise _Refer from None
    if not -100 <= value <= 100:
        raise _Refer
    return value


def _modalities(value) -> list:
    if type(value) is not list or len(value) > 3 or not all(type(m) is str and m in _MODALITIES for m in value):
        raise _Refer
    return list(value)


def _tags(value) -> list:
    if type(value) is not list or len(value) > 20:
        raise _Refer
    return [_text(tag, 64, blank=False) for tag in value]


def _vector(value) -> list:
    # VectorField's one-pass check of plain JSON numbers; anything else gets its per-element messages.
    if type(value) is not list or len(value) > 16_000:
        raise _Refer
    kinds = set(map(type, value))
    if kinds == {float} or not kinds:
        values = list(value)
    elif kinds <= {float, int}:
        try:
            values = [float(x) for x in value]
        except OverflowError:
            raise _Refer from None
    else:
        raise _Refer
    if not all(map(math.isfinite, values)):
        raise _Refer
    return values


def _parts(value) -> list:
    if type(value) is not list or len(value) > settings.SEARCH_MAX_QUERY_PARTS:
        raise _Refer
    parts = []
    for part in value:
        if type(part) is not dict:
            raise _Refer
        given = [name for name in _PART_FIELDS if name in part]
        if len(given) != 1:
            raise _Refer
        name = given[0]
        if name == "text":
            checked = {"text": _text(part["text"], 10_000, blank=False)}
        elif name == "item":
            item = part["item"]
            if type(item) is not int or item < 1:
                raise _Refer
            checked = {"item": item}
        else:
            checked = {"vector": _vector(part["vector"])}
        checked["weight"] = _weight(part["weight"]) if "weight" in part else 1.0
        parts.append(checked)
    return parts


_CHECKS = {
    "modality": _modalities, "tag": _tags,
    "collection": lambda value: _text(value, 100, blank=True),
    "k": lambda value: _integer(value, settings.SEARCH_MAX_K),
    "page": lambda value: _integer(value, settings.SEARCH_MAX_PAGE),
    "mode": _choice(_MODES), "space": lambda value: _text(value, 64, blank=True),
    "exact": _boolean, "include_weak": _boolean, "sort": _choice(_SORTS),
    "parts": _parts, "weight": _weight,
}
