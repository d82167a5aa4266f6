"""How hits look on the pages: result cards with their titles, snippets, matched passages and moments."""

from dataclasses import dataclass

from django.urls import reverse
from django.utils.html import escape, format_html
from django.utils.safestring import SafeString, mark_safe
from django.utils.text import Truncator

from search.engine import extracted_matches, passage_matches
from search.engine.requests import Hit
from search.models import Item, Modality

# ts_headline marks matches with these control characters (removed from the text first), so the text can be
# escaped as a whole and only then the marks turned into <mark>.
MARK_OPEN, MARK_CLOSE = "\x02", "\x03"


@dataclass
class Card:
    """One result as the templates show it."""

    item: Item
    hit: Hit | None
    title: SafeString
    snippet: SafeString
    media_url: str
    preview_url: str
    moment_start: float | None = None
    moment_end: float | None = None
    # The passage of a long text (or caption) that matched: "p. 12" for a document's page, and the
    # item page's address that shows it in place.
    passage_label: str = ""
    passage_url: str = ""
    # Words read from inside it that matched (text in the picture, speech): what they are and where.
    words_label: str = ""
    words_html: SafeString | None = None
    word_boxes: list[dict] | None = None  # left, top, width, height in percent of the picture

    @property
    def moment_left(self) -> float:
        return 100 * (self.moment_start or 0) / self.item.duration if self.item.duration else 0.0

    @property
    def moment_width(self) -> float:
        if not self.item.duration or self.moment_end is None:
            return 0.0
        return max(1.0, 100 * (self.moment_end - (self.moment_start or 0)) / self.item.duration)

    @property
    def moment_label(self) -> str:
        return f"{clock(self.moment_start or 0)}–{clock(self.moment_end or 0)}"

    @property
    def similarity(self) -> float | None:
        return 1.0 - self.hit.distance if self.hit and self.hit.distance is not None else None

    @property
    def relevance(self) -> float | None:
        """What a person is shown: a figure in [0, 1], never a raw score (which may pass 1).

        The search service's calibrated `relevance` when it gives one; until then the cosine
        similarity clamped to [0, 1]. None for a pure word match, which has no such scale.
        """
        given = getattr(self.hit, "relevance", None) if self.hit else None
        value = given if given is not None else self.similarity
        return None if value is None else min(1.0, max(0.0, float(value)))

    @property
    def percent(self) -> int:
        return round(100 * (self.relevance or 0.0))

    @property
    def moment_is_whole(self) -> bool:
        return self.moment_start is None or (self.moment_start <= 0.05 and self.moment_end is not None
                                             and self.item.duration is not None
                                             and self.moment_end >= self.item.duration - 0.05)


def clock(seconds: float) -> str:
    """0:03, or 0:03.5 when the tenths matter."""
    tenths = round(max(0.0, seconds) * 10)
    minutes, tenths = divmod(tenths, 600)
    return f"{minutes}:{tenths // 10:02d}" + (f".{tenths % 10}" if tenths % 10 else "")


def media_url(field) -> str:
    return reverse("media", args=[field.name]) if field else ""


def _marked(raw: str) -> SafeString:
    return mark_safe(escape(raw).replace(MARK_OPEN, "<mark>").replace(MARK_CLOSE, "</mark>"))


def _highlights(words: str, item_ids: list[int]) -> dict[int, tuple[SafeString, SafeString]]:
    """Title and a snippet of each item with the words of `words` marked, stemmed as full text search stems."""
    found = passage_matches.headlines(words, item_ids, MARK_OPEN, MARK_CLOSE)
    return {item_id: (_marked(title), _marked(text)) for item_id, (title, text) in found.items()}


def passage_html(text: str, highlights, *, before: bool = False, after: bool = False) -> SafeString:
    """A passage with the query's words in <mark>, and "…" where it continues."""
    out, at = [], 0
    for start, end in highlights:
        if start < at or end > len(text):
            continue
        out.append(escape(text[at:start]))
        out.append(format_html("<mark>{}</mark>", text[start:end]))
        at = end
    out.append(escape(text[at:]))
    return mark_safe(("… " if before else "") + "".join(str(part) for part in out) + (" …" if after else ""))


def _passage_parts(hit: Hit) -> tuple[SafeString | None, str, str]:
    passage = getattr(hit, "passage", None)
    if passage is None:
        return None, "", ""
    whole = passage.start == 0 and passage.end >= len(hit.item.text)
    html = passage_html(passage.text, passage.highlights, before=passage.start > 0,
                        after=passage.end < len(hit.item.text))
    if whole:
        return html, "", ""
    label = f"p. {passage.page}" if passage.page else ""
    url = f"{reverse('item', args=[hit.item.pk])}?at={passage.start}-{passage.end}#passage"
    return html, label, url


def _words_parts(hit: Hit) -> tuple[str, SafeString | None, list[dict] | None]:
    found = getattr(hit, "words", None)
    if found is None:
        return "", None, None
    html = passage_html(found.text, found.highlights)
    if found.source == extracted_matches.SPEECH:
        at = clock(found.moment[0] if found.moment else 0)
        if found.alternatives:  # heard only as an alternative: the transcript is shown, the word is a guess
            return f"Perhaps “{', '.join(found.alternatives)}” at {at}; heard as", html, None
        return f"Said at {at}", html, None
    label = f"Text on page {found.page}" if found.page else "Text in the picture"
    return label, html, _square_boxes(hit.item, found.boxes) if hit.item.modality == Modality.IMAGE else None


def _square_boxes(item: Item, boxes) -> list[dict]:
    """Boxes given as fractions of a picture, placed on its card: a square the picture covers (CSS object-fit:
    cover, centred), in percent of the square, cut to it."""
    aspect = (item.width or 1) / (item.height or 1)
    scale_x, scale_y = max(1.0, aspect), max(1.0, 1.0 / aspect)  # how much of the picture overflows the square
    out = []
    for left, top, right, bottom in boxes:
        x0, x1 = ((v - 0.5) * scale_x + 0.5 for v in (left, right))
        y0, y1 = ((v - 0.5) * scale_y + 0.5 for v in (top, bottom))
        x0, y0, x1, y1 = max(0.0, x0), max(0.0, y0), min(1.0, x1), min(1.0, y1)
        if x1 > x0 and y1 > y0:
            out.append({"left": round(100 * x0, 2), "top": round(100 * y0, 2), "width": round(100 * (x1 - x0), 2),
                        "height": round(100 * (y1 - y0), 2)})
    return out


def words_read(item: Item) -> dict:
    """What the item page shows of the words read from inside an item: its status, and the lines of text (with
    their page and confidence) or the spoken words in stretches, each with the second it starts."""
    status = item.extraction_status
    if status == "none":
        return {}
    detail = item.extraction if status == "done" else {}
    lines = [{"text": line["text"], "page": line.get("page"), "confidence": round(100 * line["confidence"])}
             for line in detail.get("lines", [])]
    spoken = []
    words = detail.get("words", [])
    for start, end in detail.get("utterances", []):
        said = [w["text"] for w in words if start <= w["start"] < end]
        if said:
            spoken.append({"start": start, "clock": clock(start), "text": " ".join(said)})
    return {"status": item.get_extraction_status_display(), "pending": status == "pending", "error":
            item.extraction_error if status == "failed" else "", "lines": lines, "spoken": spoken,
            "speech": detail.get("source") == extracted_matches.SPEECH, "nothing": status == "done" and not (
                lines or spoken)}


def cards(hits: list[Hit], highlight_words: str = "") -> list[Card]:
    marked = _highlights(highlight_words, [hit.item.pk for hit in hits])
    cards = []
    for hit in hits:
        item = hit.item
        title, snippet = marked.get(item.pk, (None, None))
        start, end = hit.moment if hit.moment else (None, None)
        if title is not None and item.modality == Modality.TEXT and not item.title.strip():
            title = None  # ts_headline of an empty title: call it by its first words instead
        passage, label, url = _passage_parts(hit)
        if passage is not None:
            snippet = passage  # the part that matched, not the text's first words
        words_label, words_html, boxes = _words_parts(hit)
        if words_html is not None and item.modality == Modality.TEXT and not item.text:
            snippet, words_html = words_html, None  # a scan: the words read from its page are its text
        cards.append(Card(
            item=item, hit=hit,
            title=title if title is not None else escape(item.display_title),
            snippet=snippet if snippet is not None else escape(Truncator(item.text).words(40)),
            media_url=media_url(item.media), preview_url=media_url(item.preview),
            moment_start=start, moment_end=end, passage_label=label, passage_url=url,
            words_label=words_label, words_html=words_html, word_boxes=boxes,
        ))
    return cards
