"""The map page in a real browser."""

import re

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import DEMO_COUNTS
from tests.e2e.helpers import shoot

pytestmark = pytest.mark.e2e


def test_the_map_renders_every_item_with_previews(page, demo, output_dir):
    page.goto("/map/")
    points = page.locator("#map .pt")
    expect(points).to_have_count(sum(DEMO_COUNTS.values()))
    expect(page.locator("#map .pt-image")).to_have_count(DEMO_COUNTS["n_images"])
    image = page.locator("#map .pt-image").first
    image.hover()
    tip = page.locator("#map-tip")
    expect(tip).to_be_visible()
    expect(tip.locator("img")).to_have_attribute("src", re.compile(r"^/media/previews/"))
    shoot(page, output_dir, "map")
    page.get_by_label(re.compile("Sounds")).uncheck()
    expect(page.locator("#map .pt-audio").first).to_be_hidden()
    image.click()
    expect(page).to_have_url(re.compile(r"/items/\d+/$"))
