"""Weighted query parts: any weight in the documented range searches, with a visible label (issue 12, item 1)."""

import re

import pytest
from playwright.sync_api import expect

from tests.e2e.helpers import PHONE, result_items, shoot, wait_for_results

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("size", [{}, PHONE], ids=["desktop", "phone"])
def test_enter_and_search_work_with_parts_of_any_weight(make_page, demo, output_dir, size):
    page = make_page(**size)
    page.goto("/?q=circle")
    wait_for_results(page)
    page.locator("#results .card").first.get_by_role("link", name=re.compile("More like this")).click()
    expect(page.locator("#chips .chip-item")).to_have_count(1)
    wait_for_results(page)
    box = page.get_by_label("Search text, images and sounds")
    box.fill("red")
    page.get_by_role("button", name=re.compile("Add words")).click()
    expect(page.locator("#chips .chip")).to_have_count(2)
    wait_for_results(page)
    weight = page.get_by_role("spinbutton", name="Weight of “red”")
    expect(weight).to_be_visible()
    expect(page.locator("#chips .chip-weight-label").first).to_be_visible()  # a visible label, not only for readers
    for value in ["1", "2.5", "0.3", "7"]:
        weight.fill(value)
        weight.press("Enter")  # Enter in the weight box submits the form, which must not be blocked
        wait_for_results(page)
        assert page.locator("#results .notice-error").count() == 0
        assert weight.evaluate("input => input.checkValidity()"), value
    # Enter in the text box and the Search button both search with the parts as they are.
    box.fill("square")
    box.press("Enter")
    wait_for_results(page)
    assert result_items(page)
    page.get_by_role("button", name="Search", exact=True).click()
    wait_for_results(page)
    assert result_items(page)
    # A weight outside the range is refused with a message, never silently changed.
    weight.fill("500")
    weight.press("Tab")
    expect(page.locator("#results .notice-error")).to_contain_text("A weight is a number from 0 to 100")
    expect(weight).to_have_value("500")
    shoot(page, output_dir, f"weights-{'phone' if size else 'desktop'}")
