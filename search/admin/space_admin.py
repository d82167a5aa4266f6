"""Embedding spaces in the admin: counts, calibration, backfills and the latest evaluation."""

from pathlib import Path

from django.contrib import admin, messages
from django.db.models import Count, Q
from django.http import HttpResponseRedirect
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from encoders.base import EncoderError
from search.admin.job_admin import queued_message  # also registers the Jobs page
from search.engine.evaluation import latest_evaluation
from search.ingest.backfill import items_to_embed
from search.jobs import submit
from search.models import EmbeddingSpace
from search.storage import spaces


@admin.register(EmbeddingSpace)
class EmbeddingSpaceAdmin(admin.ModelAdmin):
    list_display = ("name", "model", "identity", "dimension", "languages", "licence", "modality_list",
                    "item_vectors", "audio_windows", "missing", "configured", "evaluation_summary")
    readonly_fields = ("name", "model", "languages", "licence", "identity", "dimension", "metric", "modalities",
                       "created_at", "evaluation", "relevance_calibration")
    actions = ["backfill", "run_evaluation"]

    @admin.display(description="Relevance calibration")
    def relevance_calibration(self, space):
        """How raw cosine maps to relevance for each query -> item modality pair (search.engine.calibration)."""
        fitted = space.calibration or {}
        if not fitted.get("pairs"):
            return "Not fitted yet: run `manage.py calibrate` (searches fit the data part on first use)."
        slope, shared = fitted.get("slope", 0.0), fitted.get("midpoint", 0.0)
        rows = format_html_join(
            "", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            ((pair, f"{stats['mean']:.3f}", f"{stats['std']:.3f}", stats["n"], f"{stats.get('midpoint', shared):.2f}",
              f"{stats['mean'] + stats['std'] * stats.get('midpoint', shared):.3f}")
             for pair, stats in sorted(fitted["pairs"].items())),
        )
        return format_html(
            "<p>From {} ({} golden pairs), slope {}, fitted {}. Relevance 0.5 at the cosine in the last "
            "column.</p><table><thead><tr><th>Query → item</th><th>Unrelated mean</th><th>Spread</th>"
            "<th>Pairs sampled</th><th>Midpoint (z)</th><th>Cosine at 0.5</th></tr></thead><tbody>{}</tbody></table>",
            fitted.get("source", "?"), fitted.get("golden_pairs", 0), f"{slope:.2f}", fitted.get("fitted_at", "?"),
            rows)
    change_form_template = "admin/search/embeddingspace/change_form.html"

    def get_urls(self):
        return [path("<int:pk>/evaluate/", self.admin_site.admin_view(self.evaluate_view),
                     name="search_embeddingspace_evaluate"), *super().get_urls()]

    def evaluate_view(self, request, pk: int):
        """The change page's "Run the evaluation" button (POST only: it starts work)."""
        space = EmbeddingSpace.objects.filter(pk=pk).first()
        if request.method != "POST" or space is None or not self.has_change_permission(request, space):
            return HttpResponseRedirect(reverse("admin:search_embeddingspace_changelist"))
        self._start_evaluation(request, space)
        return HttpResponseRedirect(reverse("admin:search_embeddingspace_change", args=[pk]))

    def _start_evaluation(self, request, space) -> None:
        job = submit.submit_evaluation(space.name, owner_id=request.user.pk)
        if job is not None:
            self.message_user(request, format_html(
                "{}: the evaluation is queued as <a href=\"{}\">job {}</a>; its figures replace these when it "
                "finishes (reload in a minute).", space.name, reverse("admin:search_job_change", args=[job.pk]),
                job.pk),
                messages.SUCCESS)
        else:
            self.message_user(request, f"{space.name}: an evaluation is already running.", messages.WARNING)

    @admin.action(description="Run the evaluation (golden set) in the background", permissions=["change"])
    def run_evaluation(self, request, queryset):
        for space in queryset:
            self._start_evaluation(request, space)

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
        state = submit.evaluation_state(space.name)
        if state:
            return state
        report = latest_evaluation(space.name)
        if not report:
            return "none yet (select the space and run the evaluation)"
        overall = report["overall"]
        return (f"recall@{report['k']} {overall['recall']:.3f} · MRR {overall['mrr']:.3f} · "
                f"nDCG@{report['ndcg_depth']} {overall['ndcg']:.3f} · {report['created_at'][:16].replace('T', ' ')}")

    @admin.display(description="Latest evaluation, per modality pair")
    def evaluation(self, space):
        report = latest_evaluation(space.name)
        state = submit.evaluation_state(space.name)
        if not report:
            return state or "No evaluation stored yet: use “Run the evaluation” above."
        rows = [(pair, m) for pair, m in report["pairs"].items()] + [("overall", report["overall"])]
        body = format_html_join(
            "", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            ((pair, m["queries"], *(f"{m[key]:.3f}" for key in ("recall", "mrr", "ndcg", "ann_recall")))
             for pair, m in rows),
        )
        stale = "" if report.get("identity") == space.identity else " (made with an earlier model)"
        return format_html(
            "{}<p>{} on {} items, {}{}</p><table><thead><tr><th>pair</th><th>queries</th><th>recall@{}</th>"
            "<th>MRR</th><th>nDCG@{}</th><th>ANN recall vs exact</th></tr></thead><tbody>{}</tbody></table>",
            format_html("<p><strong>The next run: {}</strong></p>", state) if state else "",
            report["created_at"][:19].replace("T", " "), report["items"], Path(report["golden"]).name, stale,
            report["k"], report["ndcg_depth"], body,
        )

    def _described(self, space) -> dict:
        try:
            return spaces.get_encoder(space.name).describe()
        except EncoderError:
            return {}  # a space no longer configured, or whose model cannot be built here

    @admin.display(description="Model")
    def model(self, space):
        return self._described(space).get("model") or "-"

    @admin.display(description="Languages")
    def languages(self, space):
        return ", ".join(self._described(space).get("languages") or ()) or "not stated"

    @admin.display(description="Licence")
    def licence(self, space):
        described = self._described(space)
        note = described.get("note")
        return format_html("{} <small>{}</small>", described["licence"], note) if described.get("licence") and note \
            else described.get("licence") or "not stated"

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
            job = submit.submit_embed([space.name], missing_only=True, owner_id=request.user.pk)
            self.message_user(request, queued_message(job), messages.SUCCESS)
