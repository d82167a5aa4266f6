"""Curation in the Django admin: items (previews, filters, bulk actions, upload through the
ingestion service, vectors, neighbours and near-duplicates) and spaces (counts, backfill).

Every change here shows in search at once: the search service reads `hidden` and `pinned`
from the item rows on each query.
"""

from collections import Counter
from pathlib import Path

import numpy as np
from django.contrib import admin, messages
from django.db import connection, transaction
from django.db.models import Count, Q
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.text import Truncator

from encoders.base import EncoderError
from search import access, spaces
from search.backfill import embed_space, items_to_embed
from search.evaluation import latest_evaluation
from search.forms import ItemActionForm, ItemUploadForm, split_tags
from search.models import Embedding, EmbeddingSpace, EmbeddingStatus, Item
from search.queries import QueryError
from search.searching import more_like_this, near_duplicates
from search.spaces import SpaceIdentityMismatch

NEIGHBOURS = 8
# Cosine distance under which two items are shown as likely duplicates of each other.
DUPLICATE_DISTANCE = 0.02


def reembed(items) -> Counter:
    """Drop the items' vectors and compute them again in every configured space.

    `embed_space(missing_only=True)` then picks up exactly these items, plus any other item
    that was still missing a vector (a failed ingest, say): a re-embed is also a repair.
    """
    ids = list(items.values_list("pk", flat=True))
    with transaction.atomic():
        Embedding.objects.filter(item_id__in=ids).delete()
        Item.objects.filter(pk__in=ids).update(embedding_status=EmbeddingStatus.PENDING, embedding_error="",
                                               updated_at=timezone.now())
    totals: Counter = Counter()
    for name in spaces.configured_names():
        totals.update(embed_space(name, missing_only=True))
    return totals


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
    actions = ["hide", "unhide", "pin", "unpin", "add_tag", "remove_tag", "set_collection", "reembed_items"]
    readonly_fields = (
        "media_preview", "modality", "sha256", "mime_type", "byte_size", "width", "height", "duration", "sample_rate",
        "owner", "embedding_status", "embedding_error", "created_at", "updated_at", "vectors", "neighbours",
        "duplicates",
    )
    fieldsets = [
        (None, {"fields": ["media_preview", "title", "text", "tags", "collection", "metadata"]}),
        ("Curation", {"fields": ["hidden", "pinned"],
                      "description": "Hidden items never appear in search. Pinned items lead the results they are "
                                     "relevant to."}),
        ("Similar items", {"fields": ["neighbours", "duplicates"]}),
        ("Vectors", {"fields": ["embedding_status", "embedding_error", "vectors"]}),
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

    class Media:
        css = {"all": ["search/admin.css"]}

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
        if obj is None:
            return ()
        # A text item's text is its content: its hash and vectors come from it, so it is not edited in place.
        return (*self.readonly_fields, "text") if obj.modality == "text" else self.readonly_fields

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
            hits = more_like_this(item.pk, k=NEIGHBOURS, viewer=access.CURATOR).hits
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

    @admin.action(description="Re-embed (compute the vectors again)", permissions=["change"])
    def reembed_items(self, request, queryset):
        try:
            counts = reembed(queryset)
        except (SpaceIdentityMismatch, EncoderError) as exc:
            self.message_user(request, f"Re-embedding stopped: {exc}", messages.ERROR)
            return
        level = messages.WARNING if counts["failed"] else messages.SUCCESS
        self.message_user(request, f"Re-embedded: {counts['embedded']} vector set(s) written, {counts['failed']} "
                                   "failed (the item shows why).", level)


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


@admin.register(EmbeddingSpace)
class EmbeddingSpaceAdmin(admin.ModelAdmin):
    list_display = ("name", "identity", "dimension", "modality_list", "item_vectors", "audio_windows",
                    "missing", "configured", "evaluation_summary")
    readonly_fields = ("name", "identity", "dimension", "metric", "modalities", "created_at", "evaluation")
    actions = ["backfill"]

    def has_add_permission(self, request):
        # Spaces come from settings; the database only mirrors them.
        return False

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(
            vector_count=Count("embeddings", filter=Q(embeddings__segment_start__isnull=True)),
            window_count=Count("embeddings", filter=Q(embeddings__segment_start__isnull=False)),
        )

    @admin.display(description="Modalities")
    def modality_list(self, space):
        return ", ".join(space.modalities)

    @admin.display(description="Items embedded", ordering="vector_count")
    def item_vectors(self, space):
        return space.vector_count

    @admin.display(description="Audio windows", ordering="window_count")
    def audio_windows(self, space):
        return space.window_count

    @admin.display(description="Items missing a vector")
    def missing(self, space):
        return items_to_embed(space, missing_only=True).count()

    @admin.display(description="Latest evaluation")
    def evaluation_summary(self, space):
        report = latest_evaluation(space.name)
        if not report:
            return "none yet (manage.py evaluate)"
        overall = report["overall"]
        return (f"recall@{report['k']} {overall['recall']:.3f} · MRR {overall['mrr']:.3f} · "
                f"nDCG@{report['ndcg_depth']} {overall['ndcg']:.3f} · {report['created_at'][:16].replace('T', ' ')}")

    @admin.display(description="Latest evaluation, per modality pair")
    def evaluation(self, space):
        report = latest_evaluation(space.name)
        if not report:
            return "No evaluation stored yet: run `manage.py evaluate --space NAME`."
        rows = [(pair, m) for pair, m in report["pairs"].items()] + [("overall", report["overall"])]
        body = format_html_join(
            "", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            ((pair, m["queries"], *(f"{m[key]:.3f}" for key in ("recall", "mrr", "ndcg", "ann_recall")))
             for pair, m in rows),
        )
        stale = "" if report.get("identity") == space.identity else " (made with an earlier model)"
        return format_html(
            "<p>{} on {} items, {}{}</p><table><thead><tr><th>pair</th><th>queries</th><th>recall@{}</th>"
            "<th>MRR</th><th>nDCG@{}</th><th>ANN recall vs exact</th></tr></thead><tbody>{}</tbody></table>",
            report["created_at"][:19].replace("T", " "), report["items"], Path(report["golden"]).name, stale,
            report["k"], report["ndcg_depth"], body,
        )

    @admin.display(description="Configured", boolean=True)
    def configured(self, space):
        return space.name in spaces.configured_names()

    @admin.action(description="Backfill: embed the items missing a vector", permissions=["change"])
    def backfill(self, request, queryset):
        for space in queryset:
            if space.name not in spaces.configured_names():
                self.message_user(request, f"{space.name}: not configured in SEARCH_SPACES, so it cannot embed.",
                                  messages.ERROR)
                continue
            try:
                counts = embed_space(space.name, missing_only=True)
            except (SpaceIdentityMismatch, EncoderError) as exc:
                self.message_user(request, f"{space.name}: {exc}", messages.ERROR)
                continue
            level = messages.WARNING if counts["failed"] else messages.SUCCESS
            self.message_user(request, f"{space.name}: embedded {counts['embedded']} item(s), "
                                       f"{counts['failed']} failed.", level)


@admin.register(Embedding)
class EmbeddingAdmin(admin.ModelAdmin):
    list_display = ("id", "item", "space", "segment_start", "segment_end")
    list_filter = ("space",)
    raw_id_fields = ("item",)
    readonly_fields = ("item", "space", "vector", "segment_start", "segment_end")
