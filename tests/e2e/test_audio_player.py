"""Sounds in the results: one plays at a time, the waveform seeks on click and by keyboard and
shows a playhead (issue 12, item 5)."""

import pytest
from playwright.sync_api import expect

from tests.e2e.helpers import PHONE, shoot, wait_for_results

pytestmark = pytest.mark.e2e


def current_times(page) -> list[float]:
    return page.locator("#results audio").evaluate_all("els => els.map(a => a.currentTime)")


@pytest.mark.parametrize("size", [{}, PHONE], ids=["desktop", "phone"])
def test_one_sound_at_a_time_with_seek_and_playhead(make_page, demo, output_dir, size, settings):
    settings.SEARCH_MIN_RELEVANCE = 0.0  # several sounds on the page, whatever the relevance cutoff
    page = make_page(**size)
    page.goto("/?q=a+beeping+tone&modality=audio")
    wait_for_results(page)
    players = page.locator("#results audio")
    assert players.count() >= 2
    players.nth(0).evaluate("a => { a.muted = true; return a.play(); }")
    expect(page.locator("#results .wave.is-playing")).to_have_count(1)
    players.nth(1).evaluate("a => { a.muted = true; return a.play(); }")
    page.wait_for_function("() => document.querySelectorAll('#results audio')[0].paused")
    paused = players.evaluate_all("els => els.map(a => a.paused)")
    assert paused[0] and not paused[1], paused  # starting the second paused the first
    players.nth(1).evaluate("a => a.pause()")

    # Clicking at 75 % of the third waveform seeks there and moves the playhead.
    wave = page.locator("#results .wave[data-seek]").nth(2)
    wave.scroll_into_view_if_needed()
    box = wave.bounding_box()
    page.mouse.click(box["x"] + box["width"] * 0.75, box["y"] + box["height"] / 2)
    duration = float(wave.get_attribute("data-duration"))
    page.wait_for_function("() => document.querySelectorAll('#results audio')[2].currentTime > 0")
    at = current_times(page)[2]
    assert abs(at - 0.75 * duration) < 0.15 * duration + 0.1, (at, duration)
    head = wave.locator(".playhead").evaluate("h => parseFloat(h.style.left)")
    assert 60 < head < 90, head
    expect(wave).to_have_attribute("aria-valuenow", f"{at:.1f}")

    # The waveform is a keyboard control: Home, arrows, End.
    wave.focus()
    page.keyboard.press("Home")
    page.wait_for_function("() => document.querySelectorAll('#results audio')[2].currentTime === 0")
    page.keyboard.press("ArrowRight")
    page.wait_for_function("() => document.querySelectorAll('#results audio')[2].currentTime > 0")
    page.keyboard.press("Space")
    page.wait_for_function("() => !document.querySelectorAll('#results audio')[2].paused")
    page.keyboard.press("Space")
    page.wait_for_function("() => document.querySelectorAll('#results audio')[2].paused")
    shoot(page, output_dir, f"audio-{'phone' if size else 'desktop'}")
