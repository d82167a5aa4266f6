"""Items in the admin: previews, filters, bulk actions, uploads through the ingestion service, vectors,
neighbours, near-duplicates and the duplicate review page.

Every change here shows in search at once: the search service reads `hidden` and `pinned` from the item
rows on each query.
"""


import numpy as np
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.views.main import ORDER_VAR
from django.db import connection
from django.db.models import Case, Count, IntegerField, Q, Value, When
from django.http import HttpResponseRedirect, JsonResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.text import Truncator

from encoders.base import EncoderError
from search.admin.admin_forms import ItemActionForm, ItemUploadForm
from search.admin.job_admin import queued_message  # also registers the Jobs page
from search.engine import access, similar
from search.engine.query_vectors import QueryError, QueryPart
from search.engine.requests import SearchRequest
from search.engine.search_service import search
from search.engine.similar import near_duplicates
from search.ingest import revise
from search.ingest.ingester import Ingester, IngestInput, split_tags
from search.ingest.prepare import describe_all
from search.jobs import submit
from search.media import MediaRejected
from search.models import Embedding, Item
from search.storage import spaces
from search.storage.spaces import SpaceIdentityMismatch

NEIGHBOURS = 8


# Cosine distance under which two items are shown as likely duplicates of each other.
DUPLICATE_DISTANCE = 0.02


# The review list's default: a little wider, since a person decides each pair.
DUPLICATE_REVIEW_DISTANCE = 0.05


def _media_url(field) -> str:
    return reverse("media", args=[field.name]) if field else ""


class TagFilter(admin.SimpleListFilter):
    title = "tag"
    parameter_name = "tag"

    def lookups(self, request, model_admin):
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT tag, count(*) FROM (SELECT unnest(tags) AS tag FROM search_item) t"
                " GROUP BY tag ORDER BY count(*) DESC, tag LIMIT 40"
            )
            return [(tag, f"{tag} ({n})") for tag, n in cursor.fetchall()]

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(tags__contains=[self.value()])
        return queryset


@admin.register(Item)
class ItemAdmin(admin.ModelAdmin):
    list_display = ("thumbnail", "title_or_name", "modality", "collection", "tag_list", "embedding_status", "hidden",
                    "pinned", "created_at")
    list_display_links = ("title_or_name",)
    list_filter = ("modality", "collection", TagFilter, "hidden", "pinned", "embedding_status")
    search_fields = ("title", "text")
    list_per_page = 50
    date_hierarchy = "created_at"
    action_form = ItemActionForm
    actions = ["hide", "unhide", "pin", "unpin", "add_tag", "remove_tag", "set_collection", "reembed_items",
               "extract_words"]
    change_list_template = "admin/search/item/change_list.html"
    list_per_page = 50
    readonly_fields = (
        "media_preview", "modality", "sha256", "mime_type", "byte_size", "width", "height", "duration", "sample_rate",
        "owner", "embedding_status", "embedding_error", "created_at", "updated_at", "vectors", "neighbours",
        "duplicates", "extraction_status", "extraction_error", "extracted_text",
    )
    fieldsets = [
        (None, {"fields": ["media_preview", "title", "text", "tags", "collection", "metadata"]}),
        ("Curation", {"fields": ["hidden", "pinned"],
                      "description": "Hidden items never appear in search. Pinned items lead the results they are "
                                     "relevant to."}),
        ("Similar items", {"fields": ["neighbours", "duplicates"]}),
        ("Vectors", {"fields": ["embedding_status", "embedding_error", "vectors"]}),
        ("Words in the picture or recording", {"fields": ["extraction_status", "extraction_error", "extracted_text"],
                                               "description": "Read in the background after upload (text in "
                                                              "pictures and scans, speech in recordings)."}),
        ("File", {"classes": ["collapse"], "fields": [
            "modality", "mime_type", "byte_size", "width", "height", "duration", "sample_rate", "sha256", "owner",
            "created_at", "updated_at",
        ]}),
    ]
    upload_fieldsets = [
        (None, {"fields": ["file", "text", "title", "caption", "tags", "collection"],
                "description": "The item is validated, stored and embedded into every space, as any upload is."}),
        ("Curation", {"fields": ["hidden", "pinned"]}),
    ]

    # ---------------------------------------------------------------- search by meaning, as the site does

    def changelist_view(self, request, extra_context=None):
        # "words=1" asks for the admin's plain word search; the changelist refuses unknown parameters.
        request.words_only = request.GET.get("words") == "1"
        if "words" in request.GET:
            request.GET = request.GET.copy()
            del request.GET["words"]
        extra_context = {**(extra_context or {}), "words_only": request.words_only}
        return super().changelist_view(request, extra_context=extra_context)

    def get_search_results(self, request, queryset, search_term):
        """The search box finds by meaning and words through the site's own search service (hybrid
        mode), ranked by it; `words=1` falls back to Django's word search of titles and texts."""
        term = search_term.strip()
        if not term or getattr(request, "words_only", True):
            return super().get_search_results(request, queryset, search_term)
        try:
            page = search(SearchRequest(parts=[QueryPart(text=term)], mode="hybrid", k=settings.SEARCH_MAX_K,
                                        viewer=request.user))
        except (QueryError, EncoderError, SpaceIdentityMismatch) as exc:
            self.message_user(request, f"Search by meaning is unavailable ({exc}); these are word matches.",
                              messages.WARNING)
            return super().get_search_results(request, queryset, search_term)
        # What the service finds relevant, best first, then what only matches the words (a title, say).
        ids = [hit.item.pk for hit in page.hits]
        words, may_repeat = super().get_search_results(request, queryset, search_term)
        ranks = Case(*[When(pk=pk, then=Value(rank)) for rank, pk in enumerate(ids)], default=Value(len(ids)),
                     output_field=IntegerField())
        found = queryset.filter(Q(pk__in=ids) | Q(pk__in=words.values("pk"))).annotate(semantic_rank=ranks)
        if ORDER_VAR in request.GET:  # a column the curator sorted by wins
            return found, False
        return found.order_by("semantic_rank", "-pk"), False

    # ---------------------------------------------------------------- upload many, review duplicates

    def get_urls(self):
        return [
            path("upload/", self.admin_site.admin_view(self.upload_view), name="search_item_upload"),
            path("duplicates/", self.admin_site.admin_view(self.duplicates_view), name="search_item_duplicates"),
            *super().get_urls(),
        ]

    def _ingest_one(self, request, upload) -> dict:
        result = {"name": upload.name}
        if upload.size > settings.SEARCH_MAX_UPLOAD_BYTES:
            return {**result, "status": "refused", "message": f"larger than {settings.SEARCH_MAX_UPLOAD_BYTES:,} bytes"}
        source = IngestInput(data=upload.read(), tags=split_tags(request.POST.get("tags", "")),
                             collection=request.POST.get("collection", "").strip()[:100], owner_id=request.user.pk,
                             source=f"admin upload {upload.name}", filename=upload.name)
        try:
            outcome = Ingester().ingest(source)
        except MediaRejected as exc:
            return {**result, "status": "refused", "message": str(exc)}
        except (SpaceIdentityMismatch, EncoderError) as exc:
            return {**result, "status": "refused", "message": f"an embedding space cannot be used ({exc})"}
        item = outcome.item
        if outcome.status == "added":
            submit.submit_extract_after_ingest([item], owner_id=request.user.pk)
        said = {"added": "stored and searchable", "present": "already stored",
                "failed": f"stored, but not embedded: {outcome.error}"}
        return {**result, "status": outcome.status, "message": said.get(outcome.status, outcome.status),
                "url": reverse("admin:search_item_change", args=[item.pk]) if item else "",
                "title": str(item) if item else ""}

    def upload_view(self, request):
        """Many files at once, dropped or picked: each stored through ingestion, each with its own outcome.

        The page's script sends one file per request (so each result shows as it arrives); without
        the script the form sends them all and the page lists the outcomes.
        """
        if not self.has_add_permission(request):
            return HttpResponseRedirect(reverse("admin:search_item_changelist"))
        results = []
        if request.method == "POST":
            files = request.FILES.getlist("files")
            results = [self._ingest_one(request, upload) for upload in files]
            if request.headers.get("Accept", "").startswith("application/json"):
                if not files:
                    return JsonResponse({"detail": "no file arrived"}, status=400)
                return JsonResponse({"results": results})
        context = {**self.admin_site.each_context(request), "opts": self.model._meta, "title": "Upload files",
                   "results": results, "max_bytes": settings.SEARCH_MAX_UPLOAD_BYTES, "accepted": describe_all()}
        return TemplateResponse(request, "admin/search/item/upload.html", context)

    def duplicates_view(self, request):
        """Pairs of visible items nearer than a distance, across the collection, to hide in bulk."""
        if request.method == "POST" and self.has_change_permission(request):
            hide = [int(pk) for pk in request.POST.getlist("hide") if pk.isdigit()]
            count = Item.objects.filter(pk__in=hide).update(hidden=True, updated_at=timezone.now())
            self.message_user(request, f"Hid {count} duplicate{'s' if count != 1 else ''}.", messages.SUCCESS)
            return HttpResponseRedirect(request.get_full_path())
        try:
            threshold = min(0.5, max(0.0, float(request.GET.get("distance", DUPLICATE_REVIEW_DISTANCE))))
        except ValueError:
            threshold = DUPLICATE_REVIEW_DISTANCE
        found, error = similar.duplicate_pairs(threshold, viewer=request.user)
        pairs = [{"similarity": similarity, "items": [
            {"item": item, "preview": _media_url(item.preview), "url": reverse("admin:search_item_change",
                                                                                args=[item.pk])} for item in (a, b)]}
            for similarity, a, b in found]
        context = {**self.admin_site.each_context(request), "opts": self.model._meta, "title": "Near-duplicates",
                   "pairs": pairs, "threshold": threshold, "error": error, "scanned": similar.DUPLICATE_SCAN_LIMIT}
        return TemplateResponse(request, "admin/search/item/duplicates.html", context)

    # ---------------------------------------------------------------- the add form is an upload

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            return type("ItemUploadForm", (ItemUploadForm,), {"owner_id": request.user.pk})
        if obj.modality != "text":
            kwargs["labels"] = {"text": "Caption"}
            kwargs["help_texts"] = {"text": "Words describing it; the words search (“Match words too”) finds them."}
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fieldsets(self, request, obj=None):
        return self.upload_fieldsets if obj is None else self.fieldsets

    def get_readonly_fields(self, request, obj=None):
        return () if obj is None else self.readonly_fields

    def save_model(self, request, obj, form, change):
        if not (change and obj.modality == "text" and "text" in form.changed_data):
            return super().save_model(request, obj, form, change)
        # A text item's body is its content: the hash and every vector follow it (search.ingest.revise), or
        # nothing about the body changes. The other fields are saved either way.
        new_text, obj.text = obj.text, form.initial.get("text", "")
        super().save_model(request, obj, form, change)
        try:
            revise.replace_text(obj, new_text)
        except MediaRejected as exc:
            messages.error(request, f"The text was not changed: {exc}")
            return None
        obj.refresh_from_db()
        messages.info(request, "The text and its passages were embedded again.")
        return None

    def view_on_site(self, obj):
        return reverse("item", args=[obj.pk])

    def delete_model(self, request, obj):
        names = [obj.media.name, obj.preview.name]
        super().delete_model(request, obj)
        _delete_files(names)

    def delete_queryset(self, request, queryset):
        names = [name for pair in queryset.values_list("media", "preview") for name in pair]
        super().delete_queryset(request, queryset)
        _delete_files(names)

    # ---------------------------------------------------------------- columns and read-only fields

    @admin.display(description="Preview")
    def thumbnail(self, item):
        if item.modality == "image" and item.preview:
            return format_html('<img class="admin-thumb" src="{}" alt="" loading="lazy">', _media_url(item.preview))
        if item.modality == "audio" and item.media:
            return format_html('<audio class="admin-audio" controls preload="none" src="{}" aria-label="Play {}">'
                               "</audio>", _media_url(item.media), item)
        return format_html('<span class="admin-snippet">{}</span>', Truncator(item.text).chars(70))

    @admin.display(description="Title", ordering="title")
    def title_or_name(self, item):
        return str(item)

    @admin.display(description="Tags")
    def tag_list(self, item):
        return ", ".join(item.tags)

    @admin.display(description="Media")
    def media_preview(self, item):
        if item.modality == "image" and item.media:
            return format_html('<a href="{0}"><img class="admin-media" src="{0}" alt="{1}"></a>',
                               _media_url(item.media), item)
        if item.modality == "audio" and item.media:
            return format_html('<img class="admin-wave" src="{}" alt="Waveform of {}"><br>'
                               '<audio controls preload="metadata" src="{}"></audio>',
                               _media_url(item.preview), item, _media_url(item.media))
        return "(a text item: its text is below)"

    @admin.display(description="Vectors")
    def vectors(self, item):
        rows = (
            Embedding.objects.filter(item=item).values("space__name", "space__dimension")
            .annotate(segments=Count("id", filter=Q(segment_start__isnull=False)))
            .order_by("space__name")
        )
        whole = {
            name: vector for name, vector in Embedding.objects.filter(item=item, segment_start__isnull=True)
            .values_list("space__name", "vector")
        }
        if not rows:
            return "No vectors yet: use the “Re-embed” action."
        body = format_html_join(
            "", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            ((row["space__name"], row["space__dimension"],
              f"{np.linalg.norm(np.asarray(whole[row['space__name']], dtype=np.float64)):.4f}"
              if row["space__name"] in whole else "–", row["segments"]) for row in rows),
        )
        return format_html('<table class="admin-vectors"><thead><tr><th>Space</th><th>Dimension</th><th>Norm</th>'
                           "<th>Audio windows</th></tr></thead><tbody>{}</tbody></table>", body)

    @admin.display(description="Nearest neighbours")
    def neighbours(self, item):
        try:
            # The nearest, however near: a curator looks at the space itself, not at what a search would keep.
            hits = search(SearchRequest(parts=[QueryPart(item_id=item.pk)], k=NEIGHBOURS, exclude_ids=[item.pk],
                                        viewer=access.CURATOR, include_weak=True)).hits
        except (QueryError, EncoderError, SpaceIdentityMismatch) as exc:
            return str(exc)
        return _hit_strip(hits) if hits else "No other items yet."

    @admin.display(description="Near-duplicates")
    def duplicates(self, item):
        try:
            hits = near_duplicates(item.pk, threshold=DUPLICATE_DISTANCE, viewer=access.CURATOR)
        except (QueryError, EncoderError, SpaceIdentityMismatch) as exc:
            return str(exc)
        if not hits:
            return f"None: no item is within cosine distance {DUPLICATE_DISTANCE} of this one."
        return _hit_strip(hits)

    # ---------------------------------------------------------------- bulk actions

    def _set(self, request, queryset, verb: str, **fields):
        count = queryset.update(**fields, updated_at=timezone.now())
        self.message_user(request, f"{verb} {count} item{'s' if count != 1 else ''}.", messages.SUCCESS)

    @admin.action(description="Hide from search", permissions=["change"])
    def hide(self, request, queryset):
        self._set(request, queryset, "Hid", hidden=True)

    @admin.action(description="Show in search again (unhide)", permissions=["change"])
    def unhide(self, request, queryset):
        self._set(request, queryset, "Unhid", hidden=False)

    @admin.action(description="Pin to the top of relevant results", permissions=["change"])
    def pin(self, request, queryset):
        self._set(request, queryset, "Pinned", pinned=True)

    @admin.action(description="Unpin", permissions=["change"])
    def unpin(self, request, queryset):
        self._set(request, queryset, "Unpinned", pinned=False)

    def _action_value(self, request, what: str) -> str | None:
        value = request.POST.get("value", "").strip()
        if not value:
            self.message_user(request, f"Type the {what} in the box next to the action, then run it again.",
                              messages.ERROR)
            return None
        return value

    @admin.action(description="Add a tag (type it in the box)", permissions=["change"])
    def add_tag(self, request, queryset):
        value = self._action_value(request, "tag")
        if value is None:
            return
        tags = [tag[:64] for tag in split_tags(value)]
        changed = []
        for item in queryset.only("id", "tags"):
            missing = [tag for tag in tags if tag not in item.tags]
            if missing:
                item.tags = [*item.tags, *missing]
                item.updated_at = timezone.now()
                changed.append(item)
        Item.objects.bulk_update(changed, ["tags", "updated_at"])
        self.message_user(request, f"Tagged {len(changed)} item(s) with {', '.join(tags)}.", messages.SUCCESS)

    @admin.action(description="Remove a tag (type it in the box)", permissions=["change"])
    def remove_tag(self, request, queryset):
        value = self._action_value(request, "tag")
        if value is None:
            return
        tags = set(split_tags(value))
        changed = []
        for item in queryset.only("id", "tags"):
            kept = [tag for tag in item.tags if tag not in tags]
            if kept != item.tags:
                item.tags, item.updated_at = kept, timezone.now()
                changed.append(item)
        Item.objects.bulk_update(changed, ["tags", "updated_at"])
        self.message_user(request, f"Removed {', '.join(sorted(tags))} from {len(changed)} item(s).",
                          messages.SUCCESS)

    @admin.action(description="Set the collection (type it in the box)", permissions=["change"])
    def set_collection(self, request, queryset):
        value = self._action_value(request, "collection")
        if value is not None:
            self._set(request, queryset, f"Moved into “{value[:100]}”:", collection=value[:100])

    @admin.action(description="Re-embed (compute the vectors again, in the background)", permissions=["change"])
    def reembed_items(self, request, queryset):
        job = submit.submit_embed(list(spaces.configured_names()), item_ids=list(queryset.values_list("pk", flat=True)),
                                owner_id=request.user.pk)
        self.message_user(request, queued_message(job), messages.SUCCESS)

    @admin.action(description="Read the words again (text in pictures and scans, speech; in the background)",
                  permissions=["change"])
    def extract_words(self, request, queryset):
        job = submit.submit_extract(list(queryset.values_list("pk", flat=True)), missing_only=False,
                                    owner_id=request.user.pk)
        if job is None:
            self.message_user(request, "None of these items has words to read (texts, or reading is turned off).",
                              messages.WARNING)
        else:
            self.message_user(request, queued_message(job), messages.SUCCESS)


def _delete_files(names) -> None:
    from django.core.files.storage import default_storage

    for name in names:
        if name:
            default_storage.delete(name)


def _hit_strip(hits) -> str:
    cells = []
    for hit in hits:
        item = hit.item
        if item.modality == "image" and item.preview:
            visual = format_html('<img src="{}" alt="">', _media_url(item.preview))
        elif item.modality == "audio" and item.preview:
            visual = format_html('<img class="wave" src="{}" alt="">', _media_url(item.preview))
        else:
            visual = format_html('<span class="admin-snippet">{}</span>', Truncator(item.text).chars(60))
        similarity = f"{1 - hit.distance:.3f}" if hit.distance is not None else f"{hit.score:.3f}"
        cells.append(format_html(
            '<li><a href="{}">{}<span class="admin-hit-title">{}</span></a><span class="admin-hit-meta">{} · '
            "similarity {}{}</span></li>",
            reverse("admin:search_item_change", args=[item.pk]), visual, Truncator(str(item)).chars(50),
            item.get_modality_display(), similarity, " · hidden" if item.hidden else "",
        ))
    return format_html('<ul class="admin-hits">{}</ul>', format_html_join("", "{}", ((cell,) for cell in cells)))
