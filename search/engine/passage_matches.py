"""Passages of long texts at search time: which text items have them, the passage that matched each
hit, and the query's words marked in it.

A long text is stored as its item vector plus one vector per passage (character spans, made by
encoders.passages and written by search.ingest.item_vectors like the windows of long audio). The search
service ranks a text by its best vector, passage or whole (search.engine.rankers.vector_ranking); this
module says which passage that was, or, for a match on words alone, which part of the text holds
them (`ts_headline`), so a reader sees why a 300-page document was found.
"""

import re
from dataclasses import dataclass, field

import numpy as np

from search.models import EmbeddingSpace, Item, Modality
from search.storage import knn
from search.storage.replicas import read_connection as connection

# ts_headline marks matches with these characters, removed from the text beforehand.
MARK_OPEN, MARK_CLOSE = "\x02", "\x03"
_MARKS = re.compile("[\x02\x03]")
# A passage shown for a match on words alone: about as long as an embedded passage of a CLIP text tower.
FRAGMENT_OPTIONS = "MaxWords=45, MinWords=20, MaxFragments=1"
# Captions shorter than this are shown whole; a longer one is shown by the passage that matched.
SHORT_TEXT = 400



@dataclass
class Passage:
    start: int  # character offsets in the item's text (its body, or a photo's or sound's caption)
    end: int
    text: str
    page: int | None = None  # 1-based page of a document (PDF) where the passage starts
    highlights: list[tuple[int, int]] = field(default_factory=list)  # the query's words, offsets in `text`








def best_segments(space: EmbeddingSpace, vector: np.ndarray, item_ids: list[int]) -> dict[int, tuple[float, float]]:
    """For each item, the span of its segment (audio window or text passage) closest to the query."""
    if not item_ids:
        return {}
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT DISTINCT ON (item_id) item_id, segment_start, segment_end FROM search_embedding"
            f" WHERE space_id = %s AND item_id = ANY(%s) AND segment_start IS NOT NULL"
            f" ORDER BY item_id, {knn.distance_sql(space)}, segment_start",
            [int(space.pk), item_ids, knn.vector_literal(vector)],
        )
        return {item_id: (float(start), float(end)) for item_id, start, end in cursor.fetchall()}


def page_of(item: Item, offset: int) -> int | None:
    pages = item.text_pages
    if not pages:
        return None
    # The last page starting at or before the offset.
    low, high = 0, len(pages) - 1
    while low < high:
        middle = (low + high + 1) // 2
        if pages[middle] <= offset:
            low = middle
        else:
            high = middle - 1
    return low + 1


def _word_end(text: str, limit: int) -> int:
    """`limit`, moved back to the end of a word when that does not lose much."""
    if len(text) <= limit:
        return len(text)
    cut = text.rfind(" ", 0, limit)
    return cut if cut > limit // 2 else limit


def _span(item: Item, start: int, end: int) -> Passage:
    start, end = max(0, min(start, len(item.text))), max(0, min(end, len(item.text)))
    return Passage(start=start, end=end, text=item.text[start:end], page=page_of(item, start))


def for_hits(items: list[Item], *, space: EmbeddingSpace | None, vector: np.ndarray | None, words: str,
             lexical_ids: set[int], segments: dict[int, tuple[float, float]] | None = None,
             deferred: list | None = None) -> dict[int, Passage]:
    """The passage to show for each item found: for a text, the passage whose vector matched best (or
    the whole text when it is short); for a match on words alone, the part of the text that holds them
    (also for a long caption). `words`: the query's text, marked in each passage. `segments`: each item's
    nearest segment when the caller read them already (search.engine.result_order.shown_items). `deferred`: where
    nothing else waits on the marks, the passages are put there for the caller to mark with other spaces'
    (`mark_together`: one statement for a fused search)."""
    out: dict[int, Passage] = {}
    texts = [item for item in items if item.modality == Modality.TEXT and item.text]
    if segments is not None:
        best = {item.pk: segments[item.pk] for item in texts if item.pk in segments}
    else:
        best = best_segments(space, vector, [item.pk for item in texts]) if vector is not None and space else {}
    for item in texts:
        if item.pk in best:
            start, end = best[item.pk]
            out[item.pk] = _span(item, int(start), int(end))
        elif len(item.text) <= SHORT_TEXT:
            out[item.pk] = _span(item, 0, len(item.text))  # it fits one passage: it matched as a whole
        elif item.pk not in lexical_ids or not words:
            # A long text without passages (stored by an encoder with no context limit): its start.
            out[item.pk] = _span(item, 0, _word_end(item.text, SHORT_TEXT))
    long_word_matches = [item for item in items if item.pk in lexical_ids and len(item.text) > SHORT_TEXT and words]
    if words and out:
        if deferred is not None and not long_word_matches:
            deferred.append(out)
        else:
            _mark(out, words)
    # A match on words, in a long text or caption: the fragment that holds them, unless the passage
    # found by meaning holds some of them already.
    wordy = [item for item in long_word_matches if item.pk not in out or not out[item.pk].highlights]
    fragments = _word_fragments(wordy, words)
    if fragments:
        _mark(fragments, words)
        out.update(fragments)
    return out


def _word_fragments(items: list[Item], words: str) -> dict[int, Passage]:
    if not items:
        return {}
    options = f"StartSel={MARK_OPEN}, StopSel={MARK_CLOSE}, {FRAGMENT_OPTIONS}"
    by_id = {item.pk: item for item in items}
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT i.id, ts_headline('english', translate(i.text, %s, ''), q, %s)"
            " FROM search_item i, websearch_to_tsquery('english', %s) q WHERE i.id = ANY(%s)",
            [MARK_OPEN + MARK_CLOSE, options, words, list(by_id)],
        )
        rows = cursor.fetchall()
    out = {}
    for item_id, fragment in rows:
        item = by_id[item_id]
        plain = _MARKS.sub("", fragment).strip()
        clean = _MARKS.sub("", item.text)
        start = clean.find(plain) if plain else -1
        if start < 0:
            start = 0
            plain = clean[:SHORT_TEXT]
        # Offsets in the stored text: the marks removed were (almost never) there in the first place.
        out[item_id] = _span(item, start, start + len(plain)) if clean == item.text else Passage(
            start=start, end=start + len(plain), text=plain, page=page_of(item, start))
    return out


def mark_together(deferred: list[dict[int, Passage]], words: str) -> None:
    """Mark the query's words in the passages `for_hits` deferred (several spaces' hits) in one statement."""
    if not deferred or not words:
        return
    # Keyed by position: one item may have a passage from each space.
    together = {n: passage for n, passage in enumerate(p for found in deferred for p in found.values())}
    _mark(together, words)


def _mark(passages: dict[int, Passage], words: str) -> None:
    """Offsets of the query's words (stemmed as full-text search stems them) in each passage's text."""
    ids = list(passages)
    options = f"StartSel={MARK_OPEN}, StopSel={MARK_CLOSE}, HighlightAll=true"
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT p.id, ts_headline('english', translate(p.body, %s, ''), q, %s)"
            " FROM unnest(%s::bigint[], %s::text[]) AS p(id, body), websearch_to_tsquery('english', %s) q",
            [MARK_OPEN + MARK_CLOSE, options, ids, [passages[i].text for i in ids], words],
        )
        rows = cursor.fetchall()
    for item_id, marked in rows:
        passage = passages[item_id]
        if _MARKS.sub("", marked) != passage.text:
            continue  # ts_headline changed more than the marks: leave the passage unmarked rather than wrong
        highlights, position, start = [], 0, None
        for char in marked:
            if char == MARK_OPEN:
                start = position
            elif char == MARK_CLOSE:
                if start is not None and position > start:
                    highlights.append((start, position))
                start = None
            else:
                position += 1
        passage.highlights = highlights


def headlines(words: str, item_ids: list[int], mark_open: str, mark_close: str) -> dict[int, tuple[str, str]]:
    """Each item's title and a snippet of its text with the words of `words` between the marks, stemmed as
    full text search stems; the marks are removed from the texts first so that only matches carry them."""
    if not words or not item_ids:
        return {}
    options = f"StartSel={mark_open}, StopSel={mark_close}"
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT i.id, ts_headline('english', translate(i.title, %s, ''), q, %s),"
            " ts_headline('english', translate(i.text, %s, ''), q, %s)"
            " FROM search_item i, websearch_to_tsquery('english', %s) q WHERE i.id = ANY(%s)",
            [mark_open + mark_close, f"{options}, HighlightAll=true", mark_open + mark_close,
             f"{options}, MaxWords=35, MinWords=12, MaxFragments=2, FragmentDelimiter=\" … \"", words, item_ids],
        )
        return {item_id: (title, text) for item_id, title, text in cursor.fetchall()}
