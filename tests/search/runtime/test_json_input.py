"""JSON from strangers: parsed at C speed, and each refusal still names what is wrong."""

import pytest

from search.runtime import json_input


@pytest.mark.parametrize(("text", "message"), [
    ('{"parts": [{"vector": [0.5, 1e400]}]}', "the number 1e400 is out of range"),
    ("[-1e999]", "the number -1e999 is out of range"),
    ('{"a": NaN}', "NaN is not a number JSON allows"),
    ('["\\udc00"]', "unpaired UTF-16 surrogate"),
    ("[" * 40 + "]" * 40, "nested too deeply"),
    ('{"a": ', "not valid JSON"),
])
def test_refusals_name_the_fault(text, message):
    with pytest.raises(json_input.UntrustedJSONError, match=message):
        json_input.loads(text)


def test_plain_numbers_come_back_as_python_numbers():
    assert json_input.loads('{"v": [0.25, -1, 3e-5], "k": 10}') == {"v": [0.25, -1, 3e-5], "k": 10}


@pytest.mark.parametrize("values", [[1e308, 1e308, 0.5], [10**400, 0.5], [1, True, None, "x", 2.5], []])
def test_lists_whose_sum_says_nothing_are_looked_at_element_by_element(values):
    json_input.check(values)  # finite, whatever their sum


def test_a_non_finite_number_among_others_is_found():
    with pytest.raises(json_input.UntrustedJSONError, match="finite"):
        json_input.check([0.5, float("-inf"), 1.0])
