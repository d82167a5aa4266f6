"""The filter bar on a phone and tags people type (issue 12, items 8 and 9)."""

import pytest
from playwright.sync_api import expect

from search.models import Item
from tests.e2e.helpers import PHONE, result_items, shoot, wait_for_results

pytestmark = pytest.mark.e2e


def test_a_long_collection_name_does_not_widen_a_phone_page(make_page, demo, output_dir):
    Item.objects.filter(pk=Item.objects.order_by("id").first().pk).update(
        collection="A collection with a very long name that nobody would ever want to type on a phone, 2026")
    page = make_page(**PHONE)
    page.goto("/?q=a+red+shape")
    wait_for_results(page)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.get_by_role("button", name="Filters").click()
    expect(page.get_by_label("Collection")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    shoot(page, output_dir, "phone-filters-open")


def test_on_a_phone_results_start_near_the_top_and_no_drop_hint(make_page, demo, output_dir):
    page = make_page(**PHONE)
    page.goto("/?q=a+red+shape")
    wait_for_results(page)
    expect(page.locator("#drop-hint")).to_be_hidden()  # nothing can be dropped or pasted on a phone
    expect(page.get_by_label("Collection")).to_be_hidden()  # folded behind "Filters"
    first = page.locator("#results .card").first.bounding_box()
    assert first["y"] < 844 / 2, first  # the first result is in the top half of the screen
    shoot(page, output_dir, "phone-results")


def test_the_drop_hint_shows_on_a_desktop(page, demo):
    page.goto("/")
    expect(page.locator("#drop-hint")).to_be_visible()


def test_a_tag_filter_that_empties_the_list_says_which(page, demo, output_dir):
    page.goto("/?q=a+shape&tag=red+circle")
    wait_for_results(page)
    notice = page.locator("#results .notice-empty")
    expect(notice).to_contain_text("No item has the tag “red circle” (tags are separated by commas)")
    shoot(page, output_dir, "tag-empty")


def test_tags_are_suggested_as_you_type(page, demo):
    page.goto("/?q=circle")
    wait_for_results(page)
    tags = page.get_by_label("Tags")
    tags.fill("red, ci")
    tags.dispatch_event("input")
    options = page.locator("#tag-options option").evaluate_all("os => os.map(o => o.value)")
    assert "red, circle" in options, options
    tags.fill("red, circle")
    tags.press("Enter")
    wait_for_results(page)
    items = result_items(page)
    assert items and all({"red", "circle"} <= set(item.tags) for item in items)


def test_the_welcome_suggests_example_queries(page, demo):
    page.goto("/")
    examples = page.locator(".suggestions .suggestion").all_inner_texts()
    assert len(examples) >= 3
    assert all(len(e.split()) >= 2 for e in examples), examples  # queries, not single words
    page.locator(".suggestions .suggestion").first.click()
    wait_for_results(page)
    assert result_items(page)
