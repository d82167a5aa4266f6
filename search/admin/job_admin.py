"""The admin's Jobs page: background work with its progress, each input's outcome, and a cancel action.

Imported by search/admin/, whose re-embed and backfill actions queue these jobs.
"""

from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html

from search.jobs import submit
from search.models import Job, JobInput


def queued_message(job: Job) -> str:
    url = reverse("admin:search_job_change", args=[job.pk])
    return format_html('Queued as <a href="{}">job {}</a>: the workers run it; its page shows the progress.',
                       url, job.pk)


class JobInputInline(admin.TabularInline):
    model = JobInput
    fields = ("position", "name", "outcome", "item", "error")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ("__str__", "status", "progress", "succeeded", "failed", "owner", "created_at", "finished_at")
    list_filter = ("kind", "status")
    readonly_fields = ("kind", "status", "progress", "total", "processed", "succeeded", "failed", "attempts",
                       "error", "cancel_requested", "params", "owner", "created_at", "started_at", "finished_at")
    fields = readonly_fields
    inlines = [JobInputInline]
    actions = ["cancel_jobs"]

    def has_add_permission(self, request):
        return False

    def get_inlines(self, request, obj):
        return self.inlines if obj is not None and obj.kind == Job.Kind.INGEST else []

    @admin.display(description="Progress")
    def progress(self, job):
        if not job.total:
            return f"{job.processed}" if job.processed else "-"
        return f"{job.processed} / {job.total} ({100 * job.processed // job.total}%)"

    @admin.action(description="Cancel the selected jobs", permissions=["change"])
    def cancel_jobs(self, request, queryset):
        cancelled = sum(submit.cancel(job) for job in queryset)
        self.message_user(request, f"Cancelling {cancelled} job(s): a running one stops after its current chunk.",
                          messages.SUCCESS)
