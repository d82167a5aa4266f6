"""The item page: players that fit, only meaningful cross-modal neighbours, a text shown once (issue 12, item 7)."""

import re

import pytest
from playwright.sync_api import expect

from search.models import Item
from tests.e2e.helpers import PHONE, shoot

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("size", [{}, PHONE], ids=["desktop", "phone"])
def test_audio_neighbours_fit_their_cards(make_page, demo, output_dir, size):
    page = make_page(**size)
    sound = Item.objects.filter(modality="audio").order_by("id").first()
    page.goto(f"/items/{sound.pk}/")
    expect(page.get_by_role("heading", name="Similar sounds")).to_be_visible()
    for player in page.locator(".neighbour-group audio").all():
        audio, card = player.bounding_box(), player.locator("xpath=ancestor::li[1]").bounding_box()
        assert audio["width"] >= 200, audio  # wide enough for play, time and volume
        assert audio["x"] >= card["x"] - 1 and audio["x"] + audio["width"] <= card["x"] + card["width"] + 1
    assert page.evaluate("document.documentElement.scrollWidth") <= page.viewport_size["width"]
    shoot(page, output_dir, f"item-audio-{'phone' if size else 'desktop'}")


def test_cross_modal_neighbours_are_shown_only_when_close(page, demo):
    image = Item.objects.filter(modality="image").order_by("id").first()
    page.goto(f"/items/{image.pk}/")
    expect(page.get_by_role("heading", name="Similar images")).to_be_visible()
    # Every cross-modal card shown is at least 50 % similar (the figure on the card is its similarity).
    for group in page.locator(".neighbour-group").all():
        if group.get_by_role("heading", name="Similar images").count():
            continue
        for figure in group.locator(".score-value").all_inner_texts():
            assert int(re.match(r"\d+", figure)[0]) >= 50, figure


def test_a_text_item_shows_its_text_once(page, demo):
    text = Item.objects.filter(modality="text").order_by("id").first()
    page.goto(f"/items/{text.pk}/")
    body = page.locator("main").inner_text()
    assert body.count(text.text.strip()) == 1, body[:500]
    heading = page.get_by_role("heading", level=1).inner_text()
    assert not re.match(r"Text \w+$", heading)
    assert text.text.strip().startswith(heading.rstrip("…").strip())
