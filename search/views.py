"""The HTML pages: search, item and map. Every search goes through search.searching."""

import mimetypes
import os
import re
from dataclasses import dataclass
from urllib.parse import urlencode

from django.conf import settings
from django.db import connection
from django.db.models import Count
from django.http import FileResponse, Http404, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils._os import safe_join
from django.utils.html import escape, format_html
from django.utils.safestring import SafeString, mark_safe
from django.utils.text import Truncator
from django.views.decorators.http import require_GET, require_http_methods

from encoders.base import EncoderError
from search import access, passages, projection, spaces
from search.forms import SearchForm
from search.models import Item, Modality
from search.queries import QueryError, QueryPart
from search.searching import Filters, Hit, SearchPage, SearchRequest, search
from search.spaces import SpaceIdentityMismatch

# Media is only ever served as one of these types, whatever its file name says.
# Documents are only ever downloaded, never shown by the browser from this origin (an uploaded HTML page
# is someone else's page), and text in UTF-8 as it was uploaded.
DOCUMENT_DOWNLOADS = {"text/plain": "text/plain", "text/markdown": "text/markdown", "text/html": "text/html",
                      "application/pdf": "application/pdf"}
SERVED_TYPES = {  # the types of search.media.formats.FORMATS, as mimetypes names them by extension
    "image/png", "image/jpeg", "image/webp", "image/gif", "image/heic", "image/avif", "image/tiff", "image/bmp",
    "image/jp2", "image/jxl",
    "audio/wav", "audio/x-wav", "audio/flac", "audio/ogg", "audio/mpeg", "audio/mp4", "video/webm",
} | DOCUMENT_DOWNLOADS.keys()
NEIGHBOURS = 6
TITLE_WORDS = 8
# Infinite scroll stops after this many results (5 pages); past it a person refines the query instead.
SCROLL_MAX_RESULTS = 120
MODALITY_PLURALS = {Modality.IMAGE: "images", Modality.AUDIO: "sounds", Modality.TEXT: "texts"}
SHOWN_ORDER = [Modality.IMAGE, Modality.AUDIO, Modality.TEXT]
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
        return f"{_clock(self.moment_start or 0)}–{_clock(self.moment_end or 0)}"

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


def _clock(seconds: float) -> str:
    """0:03, or 0:03.5 when the tenths matter."""
    tenths = round(max(0.0, seconds) * 10)
    minutes, tenths = divmod(tenths, 600)
    return f"{minutes}:{tenths // 10:02d}" + (f".{tenths % 10}" if tenths % 10 else "")


def _media_url(field) -> str:
    return reverse("media", args=[field.name]) if field else ""


def _marked(raw: str) -> SafeString:
    return mark_safe(escape(raw).replace(MARK_OPEN, "<mark>").replace(MARK_CLOSE, "</mark>"))


def _highlights(words: str, item_ids: list[int]) -> dict[int, tuple[SafeString, SafeString]]:
    """Title and a snippet of each item with the words of `words` marked, stemmed as full text search stems."""
    if not words or not item_ids:
        return {}
    options = f"StartSel={MARK_OPEN}, StopSel={MARK_CLOSE}"
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT i.id, ts_headline('english', translate(i.title, %s, ''), q, %s),"
            " ts_headline('english', translate(i.text, %s, ''), q, %s)"
            " FROM search_item i, websearch_to_tsquery('english', %s) q WHERE i.id = ANY(%s)",
            [MARK_OPEN + MARK_CLOSE, f"{options}, HighlightAll=true", MARK_OPEN + MARK_CLOSE,
             f"{options}, MaxWords=35, MinWords=12, MaxFragments=2, FragmentDelimiter=\" … \"", words, item_ids],
        )
        return {item_id: (_marked(title), _marked(text)) for item_id, title, text in cursor.fetchall()}


def display_title(item: Item) -> str:
    """A title people (and screen readers) can tell apart: a text item without one of its own is
    called by its first words, not by a number."""
    title = item.title.strip()
    if item.modality == Modality.TEXT and (not title or title == item.text.strip()):
        return Truncator(" ".join(item.text.split())).words(TITLE_WORDS) or str(item)
    return str(item)


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


def _cards(hits: list[Hit], highlight_words: str = "") -> list[Card]:
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
        cards.append(Card(
            item=item, hit=hit,
            title=title if title is not None else escape(display_title(item)),
            snippet=snippet if snippet is not None else escape(Truncator(item.text).words(40)),
            media_url=_media_url(item.media), preview_url=_media_url(item.preview),
            moment_start=start, moment_end=end, passage_label=label, passage_url=url,
        ))
    return cards


def _page_url(request, page: int) -> str:
    params = request.GET.copy()
    params.pop("page", None)
    if page > 1:
        params["page"] = page
    return f"{reverse('home')}?{params.urlencode()}"


def _run_search(request, form: SearchForm) -> dict:
    """Search for the form and describe the outcome for the results templates."""
    # The page still shows the message, but with a status that says what happened (for scripts and logs).
    if not form.is_valid():
        return {"error": form.first_error(), "status": 400}
    try:
        search_request = form.search_request()
        search_request.viewer = request.user
        page: SearchPage = search(search_request)
    except QueryError as exc:
        return {"error": str(exc), "status": 400}
    except (EncoderError, SpaceIdentityMismatch) as exc:
        return {"error": f"search is unavailable right now: {exc}", "status": 503}
    words = " ".join(p.text for p in search_request.parts if p.text and p.weight > 0)
    last = (page.page - 1) * page.k + len(page.hits)
    more, end = _more(page, last)
    context = {
        "page": page,
        "cards": _cards(page.hits, words if page.mode != "vector" else ""),
        "first": (page.page - 1) * page.k + 1,
        "last": last,
        "more": more,
        "end": end,
        "hybrid_fallback": form.cleaned_data["mode"] == "hybrid" and page.mode == "vector",
        # The map marks a query's results; it takes words (a query of files or items has no address).
        "map_url": f"{reverse('map')}?{urlencode({'q': words})}" if words and len(search_request.parts) == 1 else "",
        "took_ms": round(sum(page.timings.values())),
        "empty_because": _empty_because(search_request) if not page.hits and page.page == 1 else "",
        "nearest": _cards(getattr(page, "suggestions", []) or []) if not page.hits and page.page == 1 else [],
    }
    if request.method == "GET":
        context["next_url"] = _page_url(request, page.page + 1) if more else ""
        context["prev_url"] = _page_url(request, page.page - 1) if page.page > 1 else ""
    context |= _relevance_controls(request, page, search_request)
    return context


def _with(request, **changes) -> str:
    """This search's address with some parameters changed (None removes one), back on page 1."""
    params = request.GET.copy() if request.method == "GET" else request.POST.copy()
    params.pop("page", None)
    params.pop("parts", None) if request.method == "POST" else None
    for key, value in changes.items():
        if value is None:
            params.pop(key, None)
        elif key in ("modality",):
            params.setlist(key, [value])
        else:
            params[key] = value
    return f"{reverse('home')}?{params.urlencode()}"


def _relevance_controls(request, page: SearchPage, search_request) -> dict:
    """Sort links, facet chips over the relevant set, and the link to the weaker results."""
    current = search_request.sort
    sorts = [{"label": label, "url": _with(request, sort=None if value == "relevance" else value),
              "current": value == current}
             for value, label in (("relevance", "Relevance"), ("newest", "Newest"), ("oldest", "Oldest"),
                                  ("title", "Title"))]
    chips = []
    labels = {"modality": lambda v: MODALITY_PLURALS.get(v, v).capitalize(), "collection": str,
              "tags": lambda v: f"#{v}"}
    active = search_request.filters
    for name, counts in (page.facets or {}).items():
        for value, count in list(counts.items())[:8]:
            already = {"modality": active.modalities, "collection": [active.collection], "tags": active.tags}[name]
            if value in already:
                continue  # a filter that is on already
            param = {"modality": "modality", "collection": "collection", "tags": "tag"}[name]
            target = value
            if name == "tags" and active.tags:
                target = ",".join([*active.tags, value])
            chips.append({"label": labels[name](value), "count": count, "url": _with(request, **{param: target})})
    weak_url = _with(request, weak="1") if page.weak_count and not search_request.include_weak else ""
    return {"sorts": sorts if page.total_relevant > 1 else [], "facet_chips": chips if len(chips) > 1 else [],
            "weak_url": weak_url, "weak_count": page.weak_count,
            "first_weak": next((n for n, hit in enumerate(page.hits) if hit.weak), None)}


def _more(page: SearchPage, last: int) -> tuple[bool, str]:
    """Whether another page is offered, and if not, why the list ends there ("" when it simply ran out).

    A list ends where results stop being relevant (the search service cuts at its calibrated
    relevance and counts what it left out as weak) or at the cap, whichever comes first.
    """
    if not page.hits:
        return False, ""
    if page.has_more and last >= SCROLL_MAX_RESULTS:
        return False, "cap"
    if not page.has_more and getattr(page, "weak_count", 0):
        return False, "relevance"
    return page.has_more, ""


def _empty_because(search_request) -> str:
    """When filters empty the list, which one: the first that alone matches nothing."""
    filters = search_request.filters
    visible = Item.objects.filter(hidden=False)
    for tag in filters.tags:
        if not visible.filter(tags__contains=[tag]).exists():
            hint = " (tags are separated by commas)" if " " in tag else ""
            return f"no item has the tag “{tag}”{hint}"
    if filters.collection and not visible.filter(collection=filters.collection).exists():
        return f"no item is in the collection “{filters.collection}”"
    if filters.tags and not visible.filter(tags__contains=filters.tags).exists():
        return "no item has all the tags " + ", ".join(f"“{t}”" for t in filters.tags)
    if filters.narrowing:
        return "no item matches all the filters together"
    return ""


def _like_chips(request, form: SearchForm) -> list[dict]:
    """The items of a "more like this" query, each with the URL that removes it."""
    if not form.is_valid() or not form.cleaned_data["like"]:
        return []
    items = access.visible(Item.objects.all(), request.user).in_bulk(form.cleaned_data["like"])
    chips = []
    for item_id in form.cleaned_data["like"]:
        if item_id in items:
            params = request.GET.copy()
            params.setlist("like", [str(i) for i in form.cleaned_data["like"] if i != item_id])
            params.pop("page", None)
            chips.append({"item": items[item_id], "preview_url": _media_url(items[item_id].preview),
                          "remove_url": f"{reverse('home')}?{params.urlencode()}"})
    return chips


def _tags(limit: int = 300) -> list[str]:
    """The tags in use, most used first: the tag field's suggestions."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tag FROM (SELECT unnest(tags) AS tag FROM search_item WHERE NOT hidden) t"
            " GROUP BY tag ORDER BY count(*) DESC, tag LIMIT %s", [limit]
        )
        return [tag for (tag,) in cursor.fetchall()]


def _suggestions(limit: int = 6) -> list[str]:
    """Example queries for people who do not know what is in here: short captions (or titles) of
    pictures and sounds, what a person would type, taken in turn from each kind; the most used tags if none."""
    by_modality: dict[str, list[str]] = {}
    seen = set()
    rows = (Item.objects.filter(hidden=False).exclude(modality=Modality.TEXT)
            .order_by("id").values_list("modality", "text", "title")[:500])
    for modality, text, title in rows:
        words = (text or title).split()
        key = " ".join(words).lower().rstrip(".")
        if 2 <= len(words) <= 6 and key not in seen:
            seen.add(key)
            by_modality.setdefault(modality, []).append(key)
    examples = []
    while len(examples) < limit and any(by_modality.values()):
        for queue in by_modality.values():
            if queue and len(examples) < limit:
                examples.append(queue.pop(0))
    return examples or _tags(limit)


@require_GET
def home(request):
    """The search page. A plain GET form: without JavaScript it is the whole search experience."""
    form = SearchForm(request.GET)
    context = {
        "form": form,
        "q": request.GET.get("q", ""),
        "selected_modalities": request.GET.getlist("modality"),
        "filters_active": any(request.GET.get(key) for key in ("modality", "tag", "collection", "mode")),
        "like_chips": _like_chips(request, form),
        "collections": list(Item.objects.filter(hidden=False).exclude(collection="")
                            .values_list("collection", flat=True).distinct().order_by("collection")),
        "modalities": [(m.value, MODALITY_PLURALS[m].capitalize()) for m in SHOWN_ORDER],
        "max_parts": settings.SEARCH_MAX_QUERY_PARTS,
        "max_bytes": settings.SEARCH_MAX_UPLOAD_BYTES,
        "max_chars": settings.SEARCH_MAX_QUERY_CHARS,
    }
    # The welcome is rendered even under results: the script shows it again when the query is cleared.
    rows = Item.objects.filter(hidden=False).values("modality").annotate(n=Count("id"))
    counts = {row["modality"]: row["n"] for row in rows}
    context["counts"] = [(m.value, MODALITY_PLURALS[m], counts.get(m.value, 0)) for m in SHOWN_ORDER]
    context["total"] = sum(counts.values())
    context["suggestions"] = _suggestions()
    context["all_tags"] = _tags()
    if form.has_query:
        context |= _run_search(request, form)
    return render(request, "search/search.html", context, status=context.get("status", 200))


@require_http_methods(["GET", "POST"])
def results(request):
    """The results of a search as an HTML fragment, for the page's script (which may upload files)."""
    form = SearchForm(request.POST if request.method == "POST" else request.GET, request.FILES)
    context = _run_search(request, form) if form.has_query else {"error": ""}
    response = render(request, "search/_results.html", context, status=context.get("status", 200))
    response["Cache-Control"] = "no-store"
    return response


def item_detail(request, pk: int):
    item = get_object_or_404(access.visible(Item.objects.all(), request.user), pk=pk)
    sections, error = [], ""
    # Its own kind first: a picture's nearest pictures, then the sounds and texts nearest to it.
    for modality in sorted(SHOWN_ORDER, key=lambda m: m != item.modality):
        # Its own kind: the nearest, however near (they are its neighbours, a fact about the space).
        # Other kinds: only those the search service finds relevant; a sound "near" a text at cosine
        # 0.3 means nothing and would only mislead.
        own = modality == item.modality
        try:
            page = search(SearchRequest(parts=[QueryPart(item_id=item.pk)], k=NEIGHBOURS, exclude_ids=[item.pk],
                                        filters=Filters(modalities=[modality.value]), viewer=request.user,
                                        include_weak=own))
        except QueryError as exc:
            error = str(exc)
            break
        except (EncoderError, SpaceIdentityMismatch) as exc:
            error = f"similar items are unavailable right now: {exc}"
            break
        hits = page.hits if own else [h for h in page.hits if not getattr(h, "weak", False)]
        if hits:
            sections.append({"modality": modality.value, "label": f"Similar {MODALITY_PLURALS[modality]}",
                             "cards": _cards(hits)})
    [card] = _cards([Hit(item=item, score=1.0, rank=1)])
    return render(request, "search/item.html", {
        **_shown_passage(request, item),
        "item": item, "card": card, "title": display_title(item), "sections": sections,
        # A short text is its own title: shown as the heading, not again below it.
        "text_is_title": item.modality == Modality.TEXT and display_title(item) == " ".join(item.text.split()),
        "neighbours_error": error,
        "metadata": sorted(item.metadata.items()) if isinstance(item.metadata, dict) else [],
        "show_owner": access.can_see_owner(request.user, item),
    })


def _shown_passage(request, item: Item) -> dict:
    """`?at=START-END` (a search result's passage): the text in three parts, the passage marked, with
    its page. Anything else shows the text plain."""
    match = re.fullmatch(r"(\d{1,9})-(\d{1,9})", request.GET.get("at", ""))
    if not match or item.modality != Modality.TEXT:
        return {}
    start, end = int(match[1]), int(match[2])
    if not 0 <= start < end <= len(item.text):
        return {}
    return {"before_passage": item.text[:start], "passage": item.text[start:end], "after_passage": item.text[end:],
            "passage_page": passages.page_of(item, start)}


MAP_HIGHLIGHTS = 48  # results of the map's query marked on it: two pages' worth


def _map_space(request):
    usable = spaces.registered_spaces()
    if not usable:
        return None, usable
    space = next((s for s in usable if s.name == request.GET.get("space")), None)
    if space is None:
        space = next((s for s in usable if s.name == settings.SEARCH_DEFAULT_SPACE), usable[0])
    return space, usable


def _map_highlights(request, space) -> tuple[list[int], str]:
    """The item ids of the map's query (?q=...), best first, through the one search service."""
    q = request.GET.get("q", "").strip()
    if not q:
        return [], ""
    if len(q) > settings.SEARCH_MAX_QUERY_CHARS:
        return [], f"the query is longer than {settings.SEARCH_MAX_QUERY_CHARS} characters"
    try:
        page = search(SearchRequest(parts=[QueryPart(text=q)], k=MAP_HIGHLIGHTS, space=space.name,
                                    viewer=request.user))
    except QueryError as exc:
        return [], str(exc)
    except (EncoderError, SpaceIdentityMismatch) as exc:
        return [], f"search is unavailable right now: {exc}"
    return [hit.item.pk for hit in page.hits], ""


@require_GET
def map_view(request):
    space, usable = _map_space(request)
    if space is None:
        return render(request, "search/map.html", {"error": "no embedding space can be used yet"})
    result = projection.projection(space)
    counts = {m.value: 0 for m in Modality}
    for p in result.points:
        counts[p.modality] += 1
    legend = [(m.value, MODALITY_PLURALS[m].capitalize(), counts[m.value]) for m in SHOWN_ORDER]
    return render(request, "search/map.html", {
        "space": space, "spaces": usable, "count": len(result.points), "total": result.total, "legend": legend,
        "projection": result, "explained": [round(100 * e) for e in result.explained],
        "q": request.GET.get("q", ""), "max_chars": settings.SEARCH_MAX_QUERY_CHARS,
    })


@require_GET
def map_data(request):
    """The map's points as columns (compact for 50,000 of them), its layout, and the query's results."""
    space, _ = _map_space(request)
    if space is None:
        return JsonResponse({"detail": "no embedding space can be used yet"}, status=503)
    result = projection.projection(space)
    highlights, error = _map_highlights(request, space)
    points = result.points
    response = JsonResponse({
        "space": space.name, "method": result.method, "pending": result.pending, "note": result.note,
        "total": result.total, "explained": [round(100 * e) for e in result.explained],
        "modalities": [m.value for m in SHOWN_ORDER],
        "id": [p.item_id for p in points], "x": [p.x for p in points], "y": [p.y for p in points],
        "m": [SHOWN_ORDER.index(Modality(p.modality)) for p in points], "title": [p.title for p in points],
        "preview": [reverse("media", args=[p.preview]) if p.preview else "" for p in points],
        "highlight": highlights, "query_error": error,
    }, status=400 if error and "unavailable" not in error else 200)
    response["Cache-Control"] = "no-store"
    return response


# At most 18 digits a side: a longer number is no file offset, and int() of thousands of digits is a 500.
_RANGE = re.compile(r"bytes=(\d{0,18})-(\d{0,18})$")


def _chunks(handle, length: int, chunk: int = 64 * 1024):
    with handle:
        while length > 0:
            data = handle.read(min(chunk, length))
            if not data:
                return
            length -= len(data)
            yield data


def _media_owner(path: str) -> Item | None:
    """The item a media or preview path belongs to (paths are named by the content's sha256)."""
    stem = os.path.splitext(os.path.basename(path))[0]
    if not re.fullmatch(r"[0-9a-f]{64}", stem):
        return None
    item = Item.objects.filter(sha256=stem).only("id", "hidden", "owner_id", "media", "preview").first()
    if item is None or path not in (item.media.name, item.preview.name):
        return None
    return item


def _download_name(item: Item) -> str:
    """A safe file name for a download: the item's title in plain letters, digits and dashes."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", display_title(item)).strip("-.")[:80]
    return name or f"item-{item.pk}"


def media(request, path: str):
    try:
        full = safe_join(settings.MEDIA_ROOT, path)
    except Exception:
        raise Http404("no such file") from None
    content_type, _ = mimetypes.guess_type(full)
    if content_type not in SERVED_TYPES:
        raise Http404("no such file")
    # Only files of items the caller may see: a hidden item's media is as hidden as its page.
    item = _media_owner(path)
    if item is None or not access.can_view(request.user, item):
        raise Http404("no such file")
    try:
        handle = open(full, "rb")
    except (FileNotFoundError, IsADirectoryError):
        raise Http404("no such file") from None
    size = os.fstat(handle.fileno()).st_size
    # Byte ranges let audio players seek (to the matched moment, say) without downloading everything first.
    match = _RANGE.match(request.headers.get("Range", ""))
    if match and (match[1] or match[2]):
        if match[1]:
            start, end = int(match[1]), min(int(match[2] or size - 1), size - 1)
        else:
            start, end = max(0, size - int(match[2])), size - 1
        if start > end or start >= size:
            handle.close()
            response = HttpResponse(status=416)
            response["Content-Range"] = f"bytes */{size}"
            return response
        handle.seek(start)
        response = StreamingHttpResponse(_chunks(handle, end - start + 1), status=206, content_type=content_type)
        response["Content-Length"] = str(end - start + 1)
        response["Content-Range"] = f"bytes {start}-{end}/{size}"
    else:
        response = FileResponse(handle, content_type=content_type)
    if content_type in DOCUMENT_DOWNLOADS:
        extension = os.path.splitext(path)[1]
        response["Content-Disposition"] = f'attachment; filename="{_download_name(item)}{extension}"'
    response["Accept-Ranges"] = "bytes"
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response


