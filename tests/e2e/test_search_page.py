"""The search page in a real browser: text, image, audio and recorded queries, filters, chips,
"more like this", the item page, and plain search with JavaScript turned off."""

import base64
import io
import re

import numpy as np
import pytest
import soundfile
from playwright.sync_api import expect

from encoders.demo import synth
from tests.e2e.helpers import result_items, shoot, wait_for_results

pytestmark = pytest.mark.e2e


@pytest.fixture(autouse=True)
def _every_hit_counts(settings):
    # These tests are about the page's mechanics (uploads, chips, filters, paging), not the relevance
    # cutoff: the browser tests' small world is calibrated without a golden set, and the default cutoff
    # keeps only a few results there. Every hit counts as relevant here.
    settings.SEARCH_MIN_RELEVANCE = 0.0


def search_for(page, text: str) -> None:
    page.get_by_label("Search text, images and sounds").fill(text)
    page.get_by_role("button", name="Search", exact=True).click()
    wait_for_results(page)


def test_a_text_query_shows_matching_images(page, demo, output_dir):
    page.goto("/")
    expect(page.get_by_role("heading", name="Find things by what they mean")).to_be_visible()
    shoot(page, output_dir, "welcome")
    search_for(page, "a red shape")
    expect(page).to_have_url(re.compile(r"/\?q=a\+red\+shape$"))  # shareable, without a page load
    images = [item for item in result_items(page) if item.modality == "image"][:4]
    assert len(images) == 4
    assert sum("red" in item.tags for item in images) >= 3, [item.tags for item in images]
    first_image = page.locator("#results .card-image img").first
    expect(first_image).to_have_attribute("alt", images[0].title)
    assert first_image.evaluate("img => img.complete && img.naturalWidth > 0")
    shoot(page, output_dir, "text-query")
    # Hybrid mode ranks by the words too, and marks them.
    page.get_by_label("Match words too").check()
    # No stored item holds both "red" and "shape": the page does not claim a word match that did not happen.
    expect(page.locator("#results .summary")).not_to_contain_text("meaning and words")
    expect(page.locator("#results")).to_contain_text("No stored item contains these words")
    # An image's own title certainly matches words: now the page says so, and marks them.
    search_for(page, images[0].title)
    expect(page.locator("#results .summary")).to_contain_text("meaning and words")
    expect(page.locator("#results mark").first).to_be_visible()


def test_the_results_page_fits_a_phone(make_page, demo, output_dir):
    page = make_page(width=390, height=844)
    page.goto("/?q=a+blue+shape&modality=image")
    wait_for_results(page)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # nothing overflows sideways
    columns = page.locator("#results .grid").evaluate("g => getComputedStyle(g).gridTemplateColumns.split(' ').length")
    assert columns == 2
    shoot(page, output_dir, "phone")


def test_uploading_an_image_finds_similar_images(page, demo, tmp_path, output_dir):
    # A new drawing of a class the demo holds: the same colour and shape, a different picture.
    query = synth.render_image(np.random.default_rng(1234), colour="green", shape="star")
    path = tmp_path / "my green star.png"
    query.image.save(path)
    page.goto("/")
    page.set_input_files("#pick-image", str(path))
    expect(page.locator("#chips .chip-image")).to_contain_text("my green star.png")
    wait_for_results(page)
    images = [item for item in result_items(page) if item.modality == "image"][:5]
    assert {"green", "star"} <= set(images[0].tags), [item.tags for item in images]
    assert sum(bool({"green", "star"} & set(item.tags)) for item in images) >= 4, [item.tags for item in images]
    shoot(page, output_dir, "image-query")


def test_uploading_a_sound_finds_similar_sounds(page, demo, tmp_path, output_dir):
    query = synth.synth_audio(np.random.default_rng(4321), kind="chord", pitch="mid")
    path = tmp_path / "mid chord.wav"
    soundfile.write(path, query.waveform, query.samplerate)
    page.goto("/")
    page.get_by_label("Sounds", exact=True).check()
    page.set_input_files("#pick-audio", str(path))
    expect(page.locator("#chips .chip-audio")).to_contain_text("mid chord.wav")
    wait_for_results(page)
    sounds = result_items(page)[:3]
    assert {item.modality for item in sounds} == {"audio"}
    assert any({"chord", "mid"} <= set(item.tags) for item in sounds), [item.tags for item in sounds]
    assert sum("chord" in item.tags or "mid" in item.tags for item in sounds) >= 2, [i.tags for i in sounds]
    # A player starts at the best-matching moment at once (a #t= media fragment; the media view answers the
    # byte ranges that seeking needs).
    sources = page.locator("#results .card-audio audio").evaluate_all("ps => ps.map(p => p.getAttribute('src'))")
    assert all(src.startswith("/media/items/") for src in sources)
    start = max(float(src.rsplit("#t=", 1)[1]) for src in sources if "#t=" in src)
    player = page.locator(f"#results .card-audio audio[src$='#t={start:.2f}']").first
    player.scroll_into_view_if_needed()
    position, elapsed = player.evaluate("""async (player) => {
        const began = performance.now();
        player.muted = true;  // autoplay rules let a script start muted media only
        await player.play();
        const start = Number(player.getAttribute("src").split("#t=")[1]);
        while (player.currentTime < start && performance.now() - began < 3000) {
            await new Promise((resolve) => setTimeout(resolve, 20));
        }
        player.pause();
        return [player.currentTime, (performance.now() - began) / 1000];
    }""")
    assert start <= position < start + 0.5 and elapsed < start, (start, position, elapsed)
    shoot(page, output_dir, "audio-query")


def test_dropping_or_pasting_an_image_makes_it_the_query(page, demo, output_dir):
    image = synth.render_image(np.random.default_rng(99), colour="yellow", shape="circle").image
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    page.goto("/")

    def transfer(data: bytes, name: str):
        return page.evaluate_handle(
            """([b64, name]) => {
                const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
                const transfer = new DataTransfer();
                transfer.items.add(new File([bytes], name, {type: "image/png"}));
                return transfer;
            }""", [base64.b64encode(data).decode(), name])

    page.dispatch_event("#dropzone", "drop", {"dataTransfer": transfer(buffer.getvalue(), "dropped.png")})
    expect(page.locator("#chips .chip-image")).to_contain_text("dropped.png")
    wait_for_results(page)
    assert result_items(page)
    page.evaluate("t => document.dispatchEvent(new ClipboardEvent('paste', {clipboardData: t}))",
                  transfer(buffer.getvalue(), "pasted.png"))
    expect(page.locator("#chips .chip-image")).to_have_count(2)
    expect(page.locator("#chips .chip-weight-input").first).to_be_visible()  # two parts: weights show
    # A file that only pretends to be an image: the server's refusal is shown as it is.
    page.dispatch_event("#dropzone", "drop", {"dataTransfer": transfer(b"GIF89a but not really", "fake.png")})
    expect(page.get_by_role("alert")).to_contain_text("The query file was refused")
    shoot(page, output_dir, "drop-error")


def test_the_modality_filter_narrows_results(page, demo, output_dir):
    page.goto("/")
    search_for(page, "a high beeping sound")
    assert len({item.modality for item in result_items(page)}) > 1
    page.get_by_label("Sounds", exact=True).check()
    expect(page.locator("#results .card:not(.card-audio)")).to_have_count(0)
    wait_for_results(page)
    assert {item.modality for item in result_items(page)} == {"audio"}
    expect(page).to_have_url(re.compile(r"modality=audio"))
    page.get_by_label("Sounds", exact=True).uncheck()
    page.get_by_label("Texts", exact=True).check()
    expect(page.locator("#results .card:not(.card-text)")).to_have_count(0)
    shoot(page, output_dir, "modality-filter")


def test_chips_more_like_this_and_more_results(page, demo, output_dir):
    page.goto("/")
    search_for(page, "circle")
    first = result_items(page)[0]
    page.locator("#results .card").first.get_by_role("link", name=re.compile("More like this")).click()
    chip = page.locator("#chips .chip-item")
    expect(chip).to_contain_text(first.title[:20])
    expect(page).to_have_url(re.compile(rf"\?like={first.pk}$"))
    expect(page.get_by_label("Search text, images and sounds")).to_have_value("")
    wait_for_results(page)
    assert first.pk not in [item.pk for item in result_items(page)]
    # Words kept as a second chip make a weighted query; "minus" subtracts one part.
    page.get_by_label("Search text, images and sounds").fill("green")
    page.get_by_role("button", name="Add words").click()
    expect(page.locator("#chips .chip")).to_have_count(2)
    page.get_by_role("button", name="subtract “green”").click()
    expect(page.locator("#chips .chip.is-negative")).to_have_count(1)
    wait_for_results(page)
    assert page.locator("#chips .chip-weight-input").first.is_visible()
    # Infinite scroll: the next page arrives at the end of the grid.
    before = page.locator("#results .card").count()
    page.locator("button.more").scroll_into_view_if_needed()
    expect(page.locator("#results .card")).not_to_have_count(before)
    shoot(page, output_dir, "chips")
    page.get_by_role("button", name=re.compile("Remove “green”")).click()
    expect(page.locator("#chips .chip")).to_have_count(1)


def test_recording_from_the_microphone_searches_with_the_sound(page, demo, output_dir):
    page.context.grant_permissions(["microphone"])
    page.goto("/")
    page.get_by_role("button", name="Record").click()
    stop = page.get_by_role("button", name=re.compile("Stop recording"))
    expect(stop).to_be_visible()
    page.wait_for_timeout(1600)
    stop.click()
    expect(page.locator("#chips .chip-audio")).to_contain_text("recording")
    wait_for_results(page)
    assert result_items(page), page.locator("#results").inner_text()
    shoot(page, output_dir, "recording")


def test_the_item_page_shows_media_metadata_and_neighbours(page, demo, output_dir):
    page.goto("/?q=a+red+shape&modality=image")
    wait_for_results(page)
    item = result_items(page)[0]
    page.locator("#results .card-title a").first.click()
    expect(page).to_have_url(re.compile(rf"/items/{item.pk}/$"))
    expect(page.get_by_role("heading", level=1)).to_have_text(item.title)
    expect(page.get_by_role("heading", name="Similar images")).to_be_visible()
    expect(page.get_by_role("heading", name="Similar sounds")).to_be_visible()
    expect(page.locator(".neighbour-group .card")).to_have_count(18)
    assert page.locator(".item-media img").evaluate("img => img.complete && img.naturalWidth > 0")
    shoot(page, output_dir, "item-page")


def test_plain_search_works_without_javascript(make_page, demo, output_dir):
    page = make_page(javascript=False)
    page.goto("/")
    expect(page.locator("#pick-image")).to_be_hidden()  # file tools need the script
    page.get_by_label("Search text, images and sounds").fill("a green shape")
    page.get_by_label("Images", exact=True).check()
    page.get_by_role("button", name="Search", exact=True).click()
    expect(page).to_have_url(re.compile(r"\?q=a\+green\+shape&modality=image"))
    items = result_items(page)
    assert len(items) == 24 and {item.modality for item in items} == {"image"}
    assert sum("green" in item.tags for item in items[:4]) >= 3
    page.get_by_role("link", name="Next page →").click()
    expect(page).to_have_url(re.compile(r"page=2"))
    assert {item.modality for item in result_items(page)} == {"image"}
    shoot(page, output_dir, "no-javascript")
