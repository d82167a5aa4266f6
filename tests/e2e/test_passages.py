"""Long texts in the browser (issue 17): a result shows the passage that matched, with the query's
words marked, and its link opens the text at that passage."""

import pytest
from playwright.sync_api import expect

from encoders.demo.synth_documents import long_documents
from search.ingest.ingester import Ingester, IngestInput
from tests.e2e.helpers import PHONE, shoot

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("size", [{}, PHONE], ids=["desktop", "phone"])
def test_a_long_text_shows_its_matching_passage_and_opens_there(make_page, demo, output_dir, size):
    documents = list(long_documents(8, seed=5))
    stored = Ingester().ingest_many([IngestInput(text=doc.text, title=f"Report {n}", collection="documents")
                                     for n, doc in enumerate(documents)])
    # A document whose describing sentence shares a word with its query, so there is a word to mark.
    doc, item, words = next((doc, outcome.item, shared) for doc, outcome in zip(documents, stored, strict=True)
                            if (shared := {w for w in doc.query.lower().split() if len(w) > 3}
                                & set(doc.text[doc.start:doc.end].lower().replace(",", " ").split())))
    query = doc.query
    page = make_page(**size)
    page.goto(f"/?q={query}&mode=hybrid&collection=documents")
    card = page.locator(f'li.card[data-item="{item.pk}"]')
    expect(card).to_be_visible()
    snippet = card.locator(".snippet")
    expect(snippet.get_by_role("link", name="Matching passage")).to_be_visible()
    # Not cut off by its card: on a phone a centred passage taller than the card lost its label above the top.
    label, box = snippet.locator(".passage-label").bounding_box(), snippet.bounding_box()
    assert label["y"] >= box["y"] - 0.5, (label, box)
    # The passage shown is the one deep inside (not the text's first words), with the query's words marked.
    shown = snippet.locator("p").last.inner_text()
    assert doc.text[:40] not in shown
    assert snippet.locator("mark").count() >= 1
    marked = {text.lower() for text in snippet.locator("mark").all_inner_texts()}
    assert marked & words, (marked, words)
    assert page.evaluate("document.documentElement.scrollWidth") <= page.viewport_size["width"]
    shoot(page, output_dir, f"passage-result-{'phone' if size else 'desktop'}")

    snippet.get_by_role("link", name="Matching passage").click()
    passage = page.locator("mark#passage")
    expect(passage).to_be_in_viewport()
    assert doc.text[doc.start:doc.end][:30] in " ".join(passage.inner_text().split()) or \
        " ".join(passage.inner_text().split()) in doc.text
    shoot(page, output_dir, f"passage-item-{'phone' if size else 'desktop'}")
