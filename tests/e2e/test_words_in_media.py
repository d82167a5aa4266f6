"""Words inside media through the pages (issue 27): a curator uploads a photo of a sign, a scanned letter (an image-only
PDF) and a voice memo on the upload page; once the extraction job their upload queued has run, as the worker runs
it, the search page finds each by what it says, marks the words on the photo, shows the words said and starts the
player where they are said. The real models throughout (RapidOCR, PocketSphinx, the demo and text spaces)."""

import hashlib

import pytest
from playwright.sync_api import expect

from bench import _extraction_cases as cases
from search.engine import calibration
from search.jobs import runner
from search.models import Item, Job
from tests.e2e.helpers import shoot, wait_for_results

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(not cases.espeak_available(), reason="espeak-ng speaks the memo")]

SIGN = ["PLATFORM FOUR", "TRAINS TO BOSTON"]
MEMO = "Please call me after the meeting on Tuesday morning."


def test_a_sign_a_scanned_letter_and_a_memo_uploaded_on_the_page_are_found_by_their_words(curator_page, tmp_path,
                                                                                          output_dir):
    page = curator_page
    lines, _ = cases.LETTER
    files = {"holiday.jpg": cases.sign_picture(SIGN, seed=5), "letter.pdf": cases.scanned_pdf([lines], seed=2),
             "memo.wav": cases.spoken_wav(MEMO, lead_seconds=2.0)}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    page.goto("/admin/search/item/upload/")
    page.set_input_files("#upload-files", [str(tmp_path / name) for name in files])
    expect(page.locator("#upload-results tr.upload-pending")).to_have_count(0, timeout=60_000)
    expect(page.locator("#upload-results tr.upload-added")).to_have_count(3)
    sign, letter, memo = (Item.objects.get(sha256=hashlib.sha256(data).hexdigest()) for data in files.values())

    jobs = Job.objects.filter(kind=Job.Kind.EXTRACT)
    assert jobs.exists()
    for job in jobs:
        runner.run(job.pk)
    calibration.clear_cache()  # which spaces hold what is kept a minute per process; the page asks at once
    assert all(item.extraction_status == "done" for item in Item.objects.filter(pk__in=[sign.pk, letter.pk, memo.pk]))

    page.goto("/?q=trains+to+boston")
    wait_for_results(page)
    card = page.locator(f'#results li.card[data-item="{sign.pk}"]')
    expect(card).to_be_visible()
    expect(card.locator(".found-words")).to_contain_text("BOSTON", ignore_case=True)
    assert card.locator(".word-box").count() >= 1  # the words marked on the photo
    shoot(page, output_dir, "words-in-a-photo")

    page.goto("/?q=thank+you+for+the+invoice")
    wait_for_results(page)
    # A scanned letter is a text: its card quotes the words read from its page.
    expect(page.locator(f'#results li.card[data-item="{letter.pk}"]')).to_contain_text("invoice of March")

    page.goto("/?q=the+meeting+on+tuesday")
    wait_for_results(page)
    card = page.locator(f'#results li.card[data-item="{memo.pk}"]')
    expect(card.locator(".found-words")).to_contain_text("tuesday", ignore_case=True)
    said = next(word for word in Item.objects.get(pk=memo.pk).extraction["words"] if word["text"] == "tuesday")
    start = float(card.locator("audio").get_attribute("src").split("#t=")[1])
    assert said["start"] - 3.0 < start <= said["start"]  # the player starts where the words are said, not at 0
    shoot(page, output_dir, "words-in-a-memo")
