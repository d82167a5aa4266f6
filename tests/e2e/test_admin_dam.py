"""The admin as a curation desk: branded, columns that fit 1280 px, search by meaning in the item list,
many files dropped at once with a result each, and the near-duplicate review (issue 12, curation)."""

import io
import re

import numpy as np
import pytest
import soundfile
from playwright.sync_api import expect

from encoders.demo import synth
from search.models import Item
from tests.e2e.helpers import shoot

pytestmark = pytest.mark.e2e


def test_the_item_list_fits_1280_and_searches_by_meaning(curator_page, output_dir):
    page = curator_page
    expect(page.locator("#site-name")).to_contain_text("Multimodal search · Curate")
    page.goto("/admin/search/item/")
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280
    page.locator("#searchbar").fill("a red circle")
    page.locator("#searchbar").press("Enter")
    expect(page.locator(".admin-search-note")).to_contain_text("by meaning")
    titles = page.locator("#result_list .field-title_or_name a").all_inner_texts()
    assert titles
    # Ranked by the search service: the first row is a red circle, whatever its words.
    first = Item.objects.get(title=titles[0])
    assert {"red", "circle"} <= set(first.tags), (titles[:3], first.tags)
    shoot(page, output_dir, "admin-search")


def test_many_files_dropped_at_once_each_with_a_result(curator_page, tmp_path, output_dir):
    page = curator_page
    rng = np.random.default_rng(99)
    paths = []
    for n, (colour, shape) in enumerate([("green", "star"), ("blue", "circle")]):
        path = tmp_path / f"new {n}.png"
        synth.render_image(rng, colour=colour, shape=shape).image.save(path)
        paths.append(path)
    buffer = io.BytesIO()
    soundfile.write(buffer, np.sin(np.linspace(0, 2000, 16000)).astype("float32"), 16000, format="WAV")
    (tmp_path / "tone.wav").write_bytes(buffer.getvalue())
    (tmp_path / "notes.png").write_text("not a picture")  # words in a file named .png: refused
    (tmp_path / "minutes.txt").write_text("The minutes of the meeting.")  # a document: stored as a text
    paths += [tmp_path / "tone.wav", tmp_path / "notes.png", tmp_path / "minutes.txt"]
    page.goto("/admin/search/item/")
    page.get_by_role("link", name="Upload files").click()
    page.set_input_files("#upload-files", [str(p) for p in paths])
    rows = page.locator("#upload-results tr")
    expect(rows).to_have_count(5)
    expect(page.locator("#upload-results tr.upload-pending")).to_have_count(0, timeout=60_000)
    expect(page.locator("#upload-results tr.upload-added")).to_have_count(4)
    expect(page.locator("#upload-results tr.upload-refused")).to_contain_text("notes.png")
    shoot(page, output_dir, "admin-upload")
    page.locator("#upload-results tr.upload-added a").first.click()
    expect(page).to_have_url(re.compile(r"/admin/search/item/\d+/change/$"))


def test_near_duplicates_are_listed_and_hidden_in_bulk(curator_page, output_dir):
    page = curator_page
    page.goto("/admin/search/item/")
    page.get_by_role("link", name="Review near-duplicates").click()
    page.get_by_label("Pairs closer than cosine distance").fill("0.3")
    page.get_by_role("button", name="Show").click()
    # The button loads a new page: wait for it (and its rows) before counting; the page it replaces, at the
    # default distance, may list none, and a count taken mid-navigation read that page (CI, once).
    expect(page).to_have_url(re.compile(r"[?&]distance=0\.3"))
    pairs = page.locator(".duplicate-pairs tbody tr")
    expect(pairs.first).to_be_visible()
    shoot(page, output_dir, "admin-duplicates")
    # An item in several pairs is ticked in each: it is hidden once.
    boxes = page.locator(".duplicate-pairs input[name=hide]:checked")
    ticked = len(set(boxes.evaluate_all("els => els.map(e => e.value)")))
    page.get_by_role("button", name="Hide the ticked items").click()
    expect(page.locator(".messagelist")).to_contain_text(re.compile(rf"Hid {ticked} duplicates?\."))


def test_the_evaluation_runs_from_a_button(curator_page):
    from search.models import Job

    # The run itself (manage.py evaluate, minutes) is the evaluation's own tests' business: here, the button
    # queues it as a job, the message links to the job, and the space's page says it is waiting.
    page = curator_page
    page.goto("/admin/search/embeddingspace/")
    page.get_by_role("link", name="demo", exact=True).click()
    page.get_by_role("button", name="Run the evaluation").click()
    expect(page.locator(".messagelist")).to_contain_text("the evaluation is queued as job")
    [job] = Job.objects.filter(kind=Job.Kind.EVALUATE)
    assert job.params == {"space": "demo"}
    expect(page.locator("body")).to_contain_text("queued at")
    Job.objects.filter(pk=job.pk).update(status=Job.Status.CANCELLED)
