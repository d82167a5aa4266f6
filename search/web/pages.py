"""The HTML pages: search, results, item and map. Every search goes through search.engine.search_service."""

import re
from urllib.parse import urlencode

from django.conf import settings
from django.db import connection
from django.db.models import Count
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods

from encoders.base import EncoderError
from search.engine import access, map_layout, passage_matches
from search.engine.query_vectors import QueryError, QueryPart
from search.engine.requests import Filters, Hit, SearchPage, SearchRequest
from search.engine.search_service import search
from search.models import Item, Modality
from search.storage import spaces
from search.storage.spaces import SpaceIdentityMismatch
from search.web.presenters import cards, media_url, words_read
from search.web.search_form import SearchForm

NEIGHBOURS = 6


# Infinite scroll stops after this many results (5 pages); past it a person refines the query instead.
SCROLL_MAX_RESULTS = 120


MODALITY_PLURALS = {Modality.IMAGE: "images", Modality.AUDIO: "sounds", Modality.TEXT: "texts"}


SHOWN_ORDER = [Modality.IMAGE, Modality.AUDIO, Modality.TEXT]


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
        "cards": cards(page.hits, words if page.mode != "vector" else ""),
        "first": (page.page - 1) * page.k + 1,
        "last": last,
        "more": more,
        "end": end,
        "hybrid_fallback": form.cleaned_data["mode"] == "hybrid" and page.mode == "vector",
        # The map marks a query's results; it takes words (a query of files or items has no address).
        "map_url": f"{reverse('map')}?{urlencode({'q': words})}" if words and len(search_request.parts) == 1 else "",
        "took_ms": round(sum(page.timings.values())),
        "empty_because": _empty_because(search_request) if not page.hits and page.page == 1 else "",
        "nearest": cards(getattr(page, "suggestions", []) or []) if not page.hits and page.page == 1 else [],
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
            chips.append({"item": items[item_id], "preview_url": media_url(items[item_id].preview),
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
                             "cards": cards(hits)})
    [card] = cards([Hit(item=item, score=1.0, rank=1)])
    return render(request, "search/item.html", {
        **_shown_passage(request, item),
        "item": item, "card": card, "title": item.display_title, "sections": sections,
        # A short text is its own title: shown as the heading, not again below it.
        "text_is_title": item.modality == Modality.TEXT and item.display_title == " ".join(item.text.split()),
        "neighbours_error": error,
        "metadata": sorted(item.metadata.items()) if isinstance(item.metadata, dict) else [],
        "show_owner": access.can_see_owner(request.user, item),
        "words_read": words_read(item),
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
            "passage_page": passage_matches.page_of(item, start)}


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
    result = map_layout.projection(space)
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
    result = map_layout.projection(space)
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
