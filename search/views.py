"""The HTML pages: search, item and map. Every search goes through search.searching."""

import mimetypes
import os
import re
from dataclasses import dataclass

from django.conf import settings
from django.db import DatabaseError, connection
from django.db.models import Count
from django.http import FileResponse, Http404, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils._os import safe_join
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe
from django.utils.text import Truncator
from django.views.decorators.http import require_GET, require_http_methods

from encoders.base import EncoderError
from search import access, projection, spaces
from search.forms import SearchForm
from search.models import Item, Modality
from search.queries import QueryError
from search.searching import Filters, Hit, SearchPage, more_like_this, search
from search.spaces import SpaceIdentityMismatch

# Media is only ever served as one of these types, whatever its file name says.
SERVED_TYPES = {  # the types of search.media.formats.FORMATS, as mimetypes names them by extension
    "image/png", "image/jpeg", "image/webp", "image/gif", "image/heic", "image/avif", "image/tiff", "image/bmp",
    "image/jp2", "image/jxl",
    "audio/wav", "audio/x-wav", "audio/flac", "audio/ogg", "audio/mpeg", "audio/mp4", "video/webm",
}
NEIGHBOURS = 6
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
    def shows_title(self) -> bool:
        """A text item titled with its own text needs its words only once."""
        title = self.item.title.strip()
        return self.item.modality != Modality.TEXT or bool(title and title != self.item.text.strip())

    @property
    def similarity(self) -> float | None:
        return 1.0 - self.hit.distance if self.hit and self.hit.distance is not None else None

    @property
    def bar(self) -> float:
        """How full the score bar is: the cosine similarity, as a percentage."""
        return min(100.0, max(0.0, 100 * (self.similarity or 0.0)))

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


def _cards(hits: list[Hit], highlight_words: str = "") -> list[Card]:
    marked = _highlights(highlight_words, [hit.item.pk for hit in hits])
    cards = []
    for hit in hits:
        item = hit.item
        title, snippet = marked.get(item.pk, (None, None))
        start, end = hit.moment if hit.moment else (None, None)
        cards.append(Card(
            item=item, hit=hit,
            title=title if title is not None else escape(str(item)),
            snippet=snippet if snippet is not None else escape(Truncator(item.text).words(40)),
            media_url=_media_url(item.media), preview_url=_media_url(item.preview),
            moment_start=start, moment_end=end,
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
    context = {
        "page": page,
        "cards": _cards(page.hits, words if page.mode != "vector" else ""),
        "first": (page.page - 1) * page.k + 1,
        "last": (page.page - 1) * page.k + len(page.hits),
        "hybrid_fallback": form.cleaned_data["mode"] == "hybrid" and page.mode == "vector",
        "took_ms": round(sum(page.timings.values())),
    }
    if request.method == "GET":
        context["next_url"] = _page_url(request, page.page + 1) if page.has_more else ""
        context["prev_url"] = _page_url(request, page.page - 1) if page.page > 1 else ""
    return context


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


def _suggestions() -> list[str]:
    """The most used tags: a starting point for people who do not know what is in here."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tag FROM (SELECT unnest(tags) AS tag FROM search_item WHERE NOT hidden) t"
            " GROUP BY tag ORDER BY count(*) DESC, tag LIMIT 10"
        )
        return [tag for (tag,) in cursor.fetchall()]


@require_GET
def home(request):
    """The search page. A plain GET form: without JavaScript it is the whole search experience."""
    form = SearchForm(request.GET)
    context = {
        "form": form,
        "q": request.GET.get("q", ""),
        "selected_modalities": request.GET.getlist("modality"),
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
        try:
            page = more_like_this(item.pk, filters=Filters(modalities=[modality.value]), k=NEIGHBOURS,
                                  viewer=request.user)
        except QueryError as exc:
            error = str(exc)
            break
        except (EncoderError, SpaceIdentityMismatch) as exc:
            error = f"similar items are unavailable right now: {exc}"
            break
        if page.hits:
            sections.append({"modality": modality.value, "label": f"Similar {MODALITY_PLURALS[modality]}",
                             "cards": _cards(page.hits)})
    [card] = _cards([Hit(item=item, score=1.0, rank=1)])
    return render(request, "search/item.html", {
        "item": item, "card": card, "sections": sections, "neighbours_error": error,
        "metadata": sorted(item.metadata.items()) if isinstance(item.metadata, dict) else [],
        "show_owner": access.can_see_owner(request.user, item),
    })


def map_view(request):
    usable = spaces.registered_spaces()
    if not usable:
        return render(request, "search/map.html", {"error": "no embedding space can be used yet"})
    space = next((s for s in usable if s.name == request.GET.get("space")), None)
    if space is None:
        space = next((s for s in usable if s.name == settings.SEARCH_DEFAULT_SPACE), usable[0])
    result = projection.projection(space)
    width, height, margin = 1000, 640, 16
    points = [
        {"id": p.item_id, "modality": p.modality, "title": p.title,
         "x": round(margin + p.x * (width - 2 * margin), 1),
         "y": round(margin + (1 - p.y) * (height - 2 * margin), 1),
         "preview": reverse("media", args=[p.preview]) if p.preview else ""}
        for p in result.points
    ]
    counts = {m.value: 0 for m in Modality}
    for p in result.points:
        counts[p.modality] += 1
    legend = [(m.value, MODALITY_PLURALS[m].capitalize(), counts[m.value]) for m in SHOWN_ORDER]
    return render(request, "search/map.html", {
        "space": space, "spaces": usable, "points": points, "total": result.total, "width": width,
        "height": height, "legend": legend, "explained": [round(100 * e) for e in result.explained],
    })


def healthz(request):
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
            row = cursor.fetchone()
    except DatabaseError as exc:
        return JsonResponse({"status": "unavailable", "database": str(exc).splitlines()[0]}, status=503)
    return JsonResponse({"status": "ok", "pgvector": row[0] if row else None})


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
    response["Accept-Ranges"] = "bytes"
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response


