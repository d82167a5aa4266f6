"""Long texts as passages (issue 17): split to fit the text tower, found by the passage deep inside
them, shown with the passage and the query's words marked, re-embedded when the text changes."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from encoders.demo.synth_documents import long_documents
from encoders.passages import sentence_spans, split_passages
from search.engine.query_vectors import QueryPart
from search.engine.requests import Filters, SearchRequest
from search.engine.search_service import search
from search.ingest.ingester import Ingester, IngestInput
from search.media import MediaTooLarge
from search.models import Embedding
from tests.search.users import make_user


def _words(text: str) -> int:
    return len(text.split())


# ------------------------------------------------------------------------------------------ splitting


def test_a_text_that_fits_is_one_passage():
    text = "A short text. It fits easily."
    assert split_passages(text, _words, 30) == [(0, len(text))]


def test_passages_end_at_sentence_boundaries_and_overlap_a_little():
    sentences = [f"Sentence number {i} has exactly seven words." for i in range(12)]
    text = " ".join(sentences)
    spans = split_passages(text, _words, 21)
    assert len(spans) > 3
    for start, end in spans:
        assert _words(text[start:end]) <= 21
        assert text[start:end].startswith("Sentence") and text[start:end].endswith(".")
    # Each passage repeats at most a third of the budget from the one before, and moves forward.
    for (s1, e1), (s2, e2) in zip(spans, spans[1:], strict=False):
        assert s1 < s2 <= e1 + 1 and e2 > e1
        assert _words(text[s2:min(e1, e2)]) <= 7
    assert spans[0][0] == 0 and spans[-1][1] == len(text)


def test_a_sentence_longer_than_the_budget_is_cut_between_words_and_a_blob_between_characters():
    text = " ".join(["word"] * 50) + ". " + "x" * 400
    spans = split_passages(text, lambda s: max(1, len(s) // 10) if " " not in s else _words(s), 12)
    covered = "".join(text[s:e] for s, e in spans)
    assert covered.count("x") >= 400 and all(len(text[s:e].split()) <= 12 for s, e in spans)


@given(st.lists(st.text(alphabet=st.sampled_from("abc .!?\n"), min_size=0, max_size=60), max_size=30),
       st.integers(min_value=1, max_value=20))
@hsettings(max_examples=150, deadline=None)
def test_passages_cover_every_word_within_the_budget(chunks, budget):
    text = "".join(chunks)
    spans = split_passages(text, _words, budget)
    for start, end in spans:
        assert 0 <= start < end <= len(text)
        # A unit over the budget is cut between characters, so only a single long "word" may pass.
        assert _words(text[start:end]) <= budget
    starts = [s for s, _ in spans]
    assert starts == sorted(starts)
    # Every word of the text is inside some passage.
    covered = np.zeros(len(text), dtype=bool)
    for start, end in spans:
        covered[start:end] = True
    assert all(covered[i] for i, ch in enumerate(text) if not ch.isspace())


def test_sentences_split_on_end_marks_and_lines():
    text = "First one. Second one!  Third?\nA heading\n\nLast"
    assert [text[s:e] for s, e in sentence_spans(text)] == ["First one.", "Second one!", "Third?", "A heading",
                                                            "Last"]


# ------------------------------------------------------------------------------------------ plumbing


FILLER = ("The committee talked about the budget for next year before lunch. "
          "Our neighbour complained about the delayed train to the coast. ")


def _long(needle: str, filler_repeats: int = 8, tail: int = 8) -> str:
    return FILLER * filler_repeats + needle + " " + FILLER * tail


@pytest.mark.django_db
@pytest.mark.usefixtures("passage_spaces")
def test_a_long_text_is_found_by_a_sentence_deep_inside_and_shows_that_passage():
    needle = "A lighthouse keeper painted seven violet umbrellas on the harbour wall."
    target = Ingester().ingest(IngestInput(text=_long(needle), title="Minutes")).item
    others = [Ingester().ingest(IngestInput(text=_long(f"Nothing about item {n} happened here."))).item
              for n in range(4)]
    stored = Embedding.objects.filter(item=target, segment_start__isnull=False).order_by("segment_start")
    assert stored.count() > 5  # passages, each with its character span
    spans = [(int(e.segment_start), int(e.segment_end)) for e in stored]
    assert all(len(target.text[s:e].split()) <= 24 for s, e in spans)

    page = search(SearchRequest(parts=[QueryPart(text="violet umbrellas painted by a lighthouse keeper")],
                                filters=Filters(modalities=["text"]), k=5))
    assert page.hits[0].item == target
    passage = page.hits[0].passage
    assert needle in passage.text or passage.text in needle
    assert target.text[passage.start:passage.end] == passage.text
    marked = [passage.text[s:e].lower() for s, e in passage.highlights]
    assert "violet" in marked and "umbrellas" in marked
    assert {h.item for h in page.hits[1:]} <= set(others)


@pytest.mark.django_db
@pytest.mark.usefixtures("passage_spaces")
def test_the_api_carries_the_passage_and_a_word_match_shows_where_the_words_are():
    needle = "The treasurer hid the quarterly ledger inside a hollow pumpkin."
    item = Ingester().ingest(IngestInput(text=_long(needle, 20, 20))).item
    short = Ingester().ingest(IngestInput(text="A short note about pumpkins.")).item
    client = APIClient()
    for mode in ("vector", "hybrid", "lexical"):
        body = client.post("/api/search/", {"q": "ledger in a pumpkin", "mode": mode, "modality": ["text"]},
                           format="json").json()
        by_id = {hit["id"]: hit for hit in body["results"]}
        passage = by_id[item.pk]["passage"]
        assert passage is not None, mode
        assert item.text[passage["start"]:passage["end"]] == passage["text"]
        assert "ledger" in passage["text"] and len(passage["text"]) < 600, mode
        assert any(passage["text"][s:e].lower() == "ledger" for s, e in passage["highlights"]), mode
        if short.pk in by_id:
            assert by_id[short.pk]["passage"]["text"] == short.text


@pytest.mark.django_db
@pytest.mark.usefixtures("passage_spaces")
def test_editing_a_text_re_embeds_its_passages_and_a_bad_edit_changes_nothing():
    curator = make_user("curator", perms=("view", "change"))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=curator).key}")
    item = Ingester().ingest(IngestInput(text=_long("The parrot learned to whistle the anthem."),
                                         owner_id=curator.pk)).item
    before = set(Embedding.objects.filter(item=item).values_list("segment_start", "segment_end"))
    new_text = _long("A walrus borrowed the mayor's bicycle without asking.", 12, 3)
    response = client.patch(f"/api/items/{item.pk}/", {"text": new_text}, format="json")
    assert response.status_code == 200, response.content
    item.refresh_from_db()
    assert item.text == new_text.strip()
    after = set(Embedding.objects.filter(item=item).values_list("segment_start", "segment_end"))
    assert after != before and len(after) > 5
    page = search(SearchRequest(parts=[QueryPart(text="walrus borrowed a bicycle")], k=1))
    assert page.hits[0].item == item and "walrus" in page.hits[0].passage.text
    assert not search(SearchRequest(parts=[QueryPart(text="parrot whistle anthem")], mode="lexical", k=5)).hits

    other = Ingester().ingest(IngestInput(text="Another text entirely.")).item
    for body, code in (({"text": "   "}, 400), ({"text": other.text}, 409),
                       ({"text": "x" * 1_000_001}, 400)):
        response = client.patch(f"/api/items/{item.pk}/", body, format="json")
        assert response.status_code == code, (body["text"][:20], response.content[:200])
        assert response.json()["detail" if code == 409 else "text"]
        item.refresh_from_db()
        assert item.text == new_text.strip()
    assert set(Embedding.objects.filter(item=item).values_list("segment_start", "segment_end")) == after


@pytest.mark.django_db
@pytest.mark.usefixtures("fake_spaces")
def test_a_text_of_a_million_distinct_tokens_is_stored_and_searchable():
    # Positions of a million characters of distinct tokens pass PostgreSQL's 1 MB tsvector limit.
    text = " ".join(f"tok{i:06d}" for i in range(90_000))
    text += " " + "z" * (1_000_000 - len(text) - 1)
    item = Ingester().ingest(IngestInput(text=text)).item
    assert item.text == text and len(text) == 1_000_000
    # Its words are kept without positions, as many as fit (the first 400,000 characters' here).
    hits = search(SearchRequest(parts=[QueryPart(text="tok034321")], mode="lexical", k=3)).hits
    assert [hit.item for hit in hits] == [item]
    with pytest.raises(MediaTooLarge):
        Ingester().ingest(IngestInput(text=text + "z"))


# ------------------------------------------------------------------------------------------ real model


@pytest.mark.django_db
def test_the_demo_model_finds_long_documents_by_the_thing_described_deep_inside():
    """Generated documents (encoders.demo.synth_documents), each with one describing sentence after its first
    150 words; the query says it in other words. The real demo model, through the service."""
    documents = list(long_documents(12, seed=11))
    stored = Ingester().ingest_many([IngestInput(text=doc.text, collection="documents") for doc in documents])
    ids = [outcome.item.pk for outcome in stored]
    assert Embedding.objects.filter(item_id__in=ids, segment_start__isnull=False).count() > 12 * 20
    first = 0
    for doc, item_id in zip(documents, ids, strict=True):
        page = search(SearchRequest(parts=[QueryPart(text=doc.query)], filters=Filters(collection="documents"),
                                    k=3, include_weak=True))
        if page.hits[0].item.pk == item_id:
            first += 1
            passage = page.hits[0].passage
            # The passage shown overlaps the describing sentence.
            assert passage.start < doc.end and passage.end > doc.start, (doc.query, passage.text)
    assert first >= 11, f"{first} of 12 first"
