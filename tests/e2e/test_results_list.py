"""The results list as people read it: scores on a bounded scale, text cards titled by their words,
an infinite scroll that ends and says why, a true heading and focus that stays put (issue 12, items 3, 4, 6)."""

import re

import pytest
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import expect

from search.web import pages
from tests.e2e.helpers import PHONE, result_items, shoot, wait_for_results

pytestmark = pytest.mark.e2e


def scroll_to_the_end(page, rounds: int = 12) -> None:
    for _ in range(rounds):
        more = page.locator("#results button.more")
        if not more.count():
            return
        before = page.locator("#results .card").count()
        try:
            more.scroll_into_view_if_needed(timeout=5000)
        except PlaywrightError:
            # The button came into view by itself and the next batch replaced it: that is the point.
            pass
        expect(page.locator("#results .card")).not_to_have_count(before)
        wait_for_results(page)


@pytest.mark.parametrize("size", [{}, PHONE], ids=["desktop", "phone"])
def test_scores_are_shown_between_0_and_100_percent(make_page, demo, output_dir, size):
    page = make_page(**size)
    page.goto("/?q=a+red+circle")
    wait_for_results(page)
    figures = page.locator("#results .score-value").all_inner_texts()
    assert figures, "no scores shown"
    for figure in figures:
        match = re.fullmatch(r"(\d+)%\s*match", figure.strip())
        assert match and 0 <= int(match[1]) <= 100, figure
    bars = page.locator("#results .score-bar span").evaluate_all("els => els.map(e => parseFloat(e.style.width))")
    assert all(0 <= b <= 100 for b in bars)


def test_text_results_have_a_real_title(page, demo, settings):
    settings.SEARCH_MIN_RELEVANCE = 0.0  # the texts of the demo, even those not relevant to the query
    page.goto("/?q=a+high+beeping+tone&modality=text")
    wait_for_results(page)
    titles = page.locator("#results .card-text .card-title").all_inner_texts()
    assert titles
    for title in titles:
        assert not re.match(r"Text #\d+", title), title
        assert len(title.split()) >= 2


def test_infinite_scroll_ends_at_the_cap_and_says_so(page, demo, output_dir, monkeypatch, settings):
    monkeypatch.setattr(pages, "SCROLL_MAX_RESULTS", 48)
    settings.SEARCH_MIN_RELEVANCE = 0.0  # every item counts as relevant: only the cap can end the list
    page.goto("/?q=circle")
    wait_for_results(page)
    expect(page.locator("#results .summary")).to_contain_text("Results 1–24")
    more = page.locator("#results button.more")
    more.focus()
    scroll_to_the_end(page)
    cards = page.locator("#results .card")
    expect(cards).to_have_count(48)
    # The heading counts what is on the page, the end says why there is no more.
    expect(page.locator("#results .summary")).to_contain_text("Results 1–48")
    expect(page.locator("#results .end-note")).to_contain_text("48 closest results")
    expect(page.locator("#results button.more")).to_have_count(0)
    # Focus did not jump into the new cards.
    assert page.evaluate("() => !document.activeElement.closest('.grid')")
    expect(page.locator("#search-status")).to_contain_text("Loaded results 25–48")
    shoot(page, output_dir, "scroll-end")


def test_infinite_scroll_stops_where_results_stop_being_relevant(page, demo):
    page.goto("/?q=a+red+circle")
    wait_for_results(page)
    scroll_to_the_end(page)
    count = page.locator("#results .card").count()
    assert count < 70, "the scroll went on to items that are not relevant"
    summary = page.locator("#results .summary").inner_text()
    assert re.search(rf"(Results 1–{count}|{count} results?)\b", summary), summary
    if count > 24:
        expect(page.locator("#results .end-note")).to_be_visible()


@pytest.mark.parametrize("size", [{}, PHONE], ids=["desktop", "phone"])
def test_captions_do_not_crowd_out_what_a_query_describes(make_page, demo, output_dir, size, settings):
    settings.SEARCH_MIN_RELEVANCE = 0.0  # the whole demo ranked: the order is what is tested
    page = make_page(**size)
    page.goto("/?q=a+high+beeping+tone")
    wait_for_results(page)
    kinds = [item.modality for item in result_items(page)][:12]
    assert kinds[0] == "audio", kinds
    assert all(not (a == b == "text") for a, b in zip(kinds, kinds[1:], strict=False)), kinds
    # "More like this" on an image: pictures first, not their captions.
    page.goto("/?q=a+red+circle")
    wait_for_results(page)
    page.locator("#results .card-image").first.get_by_role("link", name=re.compile("More like this")).click()
    wait_for_results(page)
    page.wait_for_function("() => document.querySelector('#chips .chip-item')")
    wait_for_results(page)
    assert result_items(page)[0].modality == "image"
    shoot(page, output_dir, f"mixed-list-{'phone' if size else 'desktop'}")
