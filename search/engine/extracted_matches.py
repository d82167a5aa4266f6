"""Where a hit matched, for the words read from inside media (issue 27, search.ingest.extraction).

A hit is found by its caption, by a document's text, by the text in its picture (or scanned page) or by what
is said in it. For the last two this module says which words: the lines of a picture that hold the query's
words, with their boxes (fractions of the picture, for marking them on the preview), or the spoken words
around the first place the query's words are said, with that moment (the player starts there). Words are
compared as full-text search compares them (PostgreSQL's English stemming), so "keys" finds "key". A hit
found by the meaning of its words (a text space, which reads a photo's words, not the photo) shows the
passage that matched.

A recording found only by a word the recogniser heard as an alternative (`Item.extracted_alternatives`, its
n-best list) is matched in speech too, but what it shows is the transcript: the words of that utterance, none of
them marked, the moment the utterance (the player starts there), and the alternatives that matched in
`WordsFound.alternatives`, so a page can say the word may have been said there.
"""

from dataclasses import dataclass, field

from search.engine import passage_matches
from search.models import Item, Modality
from search.storage.replicas import read_connection as connection

CAPTION, TEXT, PICTURE_TEXT, SPEECH = "caption", "text", "text_in_picture", "speech"
# Spoken words shown around the moment: before it, and from it on.
WORDS_BEFORE, WORDS_AFTER = 6, 12
# Lines of a picture shown at most.
LINES_SHOWN = 4
# The player starts this much before the first word, so the word is heard whole.
LEAD_SECONDS = 0.3
# Distinct words sent to PostgreSQL for stemming, per search (a page of long transcripts).
MAX_TOKENS = 20000


@dataclass
class WordsFound:
    source: str  # PICTURE_TEXT or SPEECH
    text: str  # the lines or the spoken words that matched
    highlights: list[tuple[int, int]] = field(default_factory=list)  # the query's words, offsets in `text`
    boxes: list[list[float]] = field(default_factory=list)  # [left, top, right, bottom], fractions of the picture
    moment: tuple[float, float] | None = None  # seconds: where the words are said
    page: int | None = None  # a scanned document's page
    alternatives: list[str] = field(default_factory=list)  # words heard only as alternatives that matched


def annotate(hits, *, space, vector, words: str, lexical_ids: set[int],
             segments: dict[int, tuple[float, float]] | None = None) -> None:
    """Set each hit's `matched_in`, its `words` (text in the picture, speech) and, for speech, its `moment`.
    `segments`: each item's nearest segment when the caller read them already."""
    if not hits:
        return
    found = for_items([hit.item for hit in hits], space=space, vector=vector, words=words, segments=segments)
    for hit in hits:
        item = hit.item
        hit.words = found.get(item.pk)
        if hit.words is not None:
            hit.matched_in = hit.words.source
            if hit.words.moment is not None:
                hit.moment = hit.words.moment
        elif item.modality == Modality.TEXT:
            hit.matched_in = TEXT
        elif item.pk in lexical_ids:
            hit.matched_in = CAPTION


def for_items(items: list[Item], *, space, vector, words: str,
              segments: dict[int, tuple[float, float]] | None = None) -> dict[int, WordsFound]:
    read = _extracted(items)
    if not read:
        return {}
    tokens = {token for _, detail in read.values() for token in _tokens(detail)}
    stems = _stems(words, sorted(tokens)[:MAX_TOKENS]) if words else ({}, set())
    by_meaning: dict[int, tuple[float, float]] = {}
    if vector is not None and space is not None:
        # Found by the meaning of its words: only where the space reads them instead of the item itself.
        modality = {item.pk: item.modality for item in items}
        readers = [pk for pk in read if modality[pk] == Modality.TEXT or modality[pk] not in space.modalities]
        by_meaning = {pk: segments[pk] for pk in readers if pk in segments} if segments is not None else \
            passage_matches.best_segments(space, vector, readers)
    out = {}
    for item_id, (text, detail) in read.items():
        match = _by_words(detail, *stems)
        if match is None and item_id in by_meaning:
            match = _by_span(detail, text, *by_meaning[item_id], *stems)
        if match is not None:
            out[item_id] = match
    return out


def _extracted(items: list[Item]) -> dict[int, tuple[str, dict]]:
    """The words read from each item, from the item's own columns when they were read with it."""
    loaded = [item for item in items if not {"extraction_status", "extracted_text", "extraction"} &
              item.get_deferred_fields()]
    rows = [(item.pk, item.extracted_text, item.extraction) for item in loaded
            if item.extraction_status == "done" and item.extracted_text]
    rest = [item.pk for item in items if item not in loaded]
    if rest:
        rows += list(Item.objects.filter(pk__in=rest, extraction_status="done").exclude(extracted_text="")
                     .values_list("pk", "extracted_text", "extraction"))
    return {pk: (text, detail or {}) for pk, text, detail in sorted(rows, key=lambda row: row[0])}


def _tokens(detail: dict) -> list[str]:
    if detail.get("source") == "speech":
        return [word["text"].lower() for word in detail.get("words", [])] + \
            [word.lower() for group in detail.get("alternatives", ()) for word in group["words"]]
    return [token.lower() for line in detail.get("lines", []) for token in line["text"].split()]


def _stems(query: str, tokens: list[str]) -> tuple[dict[str, set[str]], set[str]]:
    """Each token's lexemes, and the query's, as the English full-text configuration makes them."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT t.w, tsvector_to_array(to_tsvector('english', t.w)) FROM unnest(%s::text[]) AS t(w)"
            " UNION ALL SELECT NULL, tsvector_to_array(to_tsvector('english', %s))",
            [tokens, query],
        )
        rows = cursor.fetchall()
    lexemes = {token: set(found or ()) for token, found in rows if token is not None}
    wanted = next((set(found or ()) for token, found in rows if token is None), set())
    return lexemes, wanted


def _hits_in(tokens: list[str], lexemes: dict[str, set[str]], wanted: set[str]) -> list[bool]:
    return [bool(lexemes.get(token.lower(), set()) & wanted) for token in tokens]


def _by_words(detail: dict, lexemes, wanted) -> WordsFound | None:
    if not wanted:
        return None
    if detail.get("source") == "speech":
        spoken = detail.get("words", [])
        marks = _hits_in([word["text"] for word in spoken], lexemes, wanted)
        if not any(marks):
            return _by_alternatives(detail, lexemes, wanted)
        # The place where most of the query's different words are said close together; the earliest of equals.
        best, best_count = None, -1
        for index, marked in enumerate(marks):
            if marked:
                near = {frozenset(lexemes.get(spoken[j]["text"].lower(), set()) & wanted)
                        for j in range(max(0, index - WORDS_BEFORE), min(len(spoken), index + WORDS_AFTER))
                        if marks[j]}
                if len(near) > best_count:
                    best, best_count = index, len(near)
        return _speech(spoken, best, marks)
    lines = detail.get("lines", [])
    matched = [line for line in lines if any(_hits_in(line["text"].split(), lexemes, wanted))]
    return _picture(detail, matched[:LINES_SHOWN], lexemes, wanted) if matched else None


def _by_span(detail: dict, text: str, start: float, end: float, lexemes, wanted) -> WordsFound | None:
    """The words within a passage's character span of the extracted text (found by meaning)."""
    start, end = int(start), int(end)
    if detail.get("source") == "speech":
        spoken = detail.get("words", [])
        offset, first = 0, None
        for index, word in enumerate(spoken):
            if offset + len(word["text"]) > start:
                first = index
                break
            offset += len(word["text"]) + 1
        if first is None:
            return None
        found = _speech(spoken, first, _hits_in([w["text"] for w in spoken], lexemes, wanted) if wanted else
                        [False] * len(spoken), before=0)
        if not found.highlights and wanted:  # found by an alternative reading of this utterance, perhaps
            at = spoken[first]["start"]
            found.alternatives = next((_matching(group, lexemes, wanted) for group in detail.get("alternatives", ())
                                       if group["start"] <= at < group["end"]), [])
        return found
    offset, inside = 0, []
    for line in detail.get("lines", []):
        if offset < end and offset + len(line["text"]) > start:
            inside.append(line)
        offset += len(line["text"]) + 1  # lines are joined by newlines (a page break adds one more: close enough)
    return _picture(detail, inside[:LINES_SHOWN], lexemes, wanted) if inside else None


def _matching(group: dict, lexemes, wanted) -> list[str]:
    return [word for word in group["words"] if lexemes.get(word.lower(), set()) & wanted]


def _by_alternatives(detail: dict, lexemes, wanted) -> WordsFound | None:
    """The first utterance where the query's words were heard as alternatives: its transcript, from its start."""
    spoken = detail.get("words", [])
    for group in detail.get("alternatives", ()):
        matched = _matching(group, lexemes, wanted)
        first = next((index for index, word in enumerate(spoken) if group["start"] <= word["start"] < group["end"]),
                     None)
        if matched and first is not None:
            found = _speech(spoken, first, [False] * len(spoken), before=0)
            found.moment = (round(float(group["start"]), 3), round(float(group["end"]), 3))
            found.alternatives = matched
            return found
    return None


def _speech(spoken: list[dict], index: int, marks: list[bool], before: int = WORDS_BEFORE) -> WordsFound:
    first = max(0, index - before)
    shown = spoken[first:index + WORDS_AFTER]
    text, highlights, position = [], [], 0
    for offset, word in enumerate(shown):
        if text:
            position += 1
        if marks[first + offset]:
            highlights.append((position, position + len(word["text"])))
        text.append(word["text"])
        position += len(word["text"])
    said = spoken[index]
    moment = (round(max(0.0, float(said["start"]) - LEAD_SECONDS), 3), round(float(said["end"]), 3))
    return WordsFound(SPEECH, " ".join(text), highlights, moment=moment)


def _picture(detail: dict, lines: list[dict], lexemes, wanted) -> WordsFound:
    text, highlights, boxes = "", [], []
    page = lines[0].get("page")
    sizes = detail.get("sizes")
    size = (sizes[page - 1] if sizes and page and page <= len(sizes) else None) or detail.get("size") or [1, 1]
    for line in lines:
        if text:
            text += "\n"
        position = len(text)
        for token in line["text"].split(" "):
            if token and wanted and lexemes.get(token.lower(), set()) & wanted:
                highlights.append((position, position + len(token)))
            position += len(token) + 1
        text += line["text"]
        if line.get("page") == page and line.get("box"):  # a corrected line may have lost its box
            xs = [x for x, _ in line["box"]]
            ys = [y for _, y in line["box"]]
            width, height = max(1, size[0]), max(1, size[1])
            boxes.append([round(min(xs) / width, 4), round(min(ys) / height, 4), round(max(xs) / width, 4),
                          round(max(ys) / height, 4)])
    return WordsFound(PICTURE_TEXT, text, highlights, boxes=boxes, page=page)
