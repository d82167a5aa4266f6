"""Curation in a real browser: a staff user hides an item in the admin and search drops it."""

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import expect

from tests.e2e.helpers import result_items, shoot, wait_for_results

pytestmark = pytest.mark.e2e


@pytest.fixture(autouse=True)
def _every_hit_counts(settings):
    # These tests are about the page's mechanics (uploads, chips, filters, paging), not the relevance
    # cutoff: the browser tests' small world is calibrated without a golden set, and the default cutoff
    # keeps only a few results there. Every hit counts as relevant here.
    settings.SEARCH_MIN_RELEVANCE = 0.0


def test_a_curator_hides_an_item_and_it_leaves_search(page, demo, output_dir):
    User.objects.create_superuser("curator", "curator@example.com", "pw-curator-e2e")
    page.goto("/?q=a+yellow+shape")
    wait_for_results(page)
    target = result_items(page)[0]

    page.goto("/admin/")
    page.get_by_label("Username").fill("curator")
    page.get_by_label("Password").fill("pw-curator-e2e")
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("link", name="Items").first.click()
    page.locator("#searchbar").fill(target.title)
    page.locator("#searchbar").press("Enter")
    row = page.locator("#result_list tbody tr", has=page.get_by_role("link", name=target.title, exact=True))
    row.locator("input.action-select").check()
    page.locator("select[name=action]").select_option("hide")
    page.get_by_title("Run the selected action").click()
    expect(page.locator(".messagelist")).to_contain_text("Hid 1 item.")
    shoot(page, output_dir, "admin-hide")

    page.goto("/?q=a+yellow+shape")
    wait_for_results(page)
    assert target.pk not in [item.pk for item in result_items(page)]

    # The item's form shows its vectors and the items nearest to it, for spotting duplicates.
    page.goto(f"/admin/search/item/{target.pk}/change/")
    expect(page.locator(".field-vectors table")).to_contain_text("demo")
    expect(page.locator(".field-neighbours .admin-hits li")).to_have_count(8)
    shoot(page, output_dir, "admin-item")
