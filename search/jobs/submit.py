"""Queueing jobs (in the caller's transaction, with their task), cancelling them, and what a space's
evaluation job is doing now."""

from django.db import connection, transaction
from django.db.models.functions import Now
from django.utils import timezone

from search.ingest import extraction
from search.jobs.queue import defer
from search.models import Embedding, EmbeddingStatus, ExtractionStatus, Item, Job, JobInput


def submit_ingest(inputs: list[dict], *, owner_id: int | None) -> Job:
    """Queue a batch upload. Each input: {"name", "data" or "text", "fields": {title, caption, ...}}."""
    with transaction.atomic():
        job = Job.objects.create(kind=Job.Kind.INGEST, owner_id=owner_id, total=len(inputs))
        JobInput.objects.bulk_create([
            JobInput(job=job, position=position, name=entry.get("name", "")[:300], data=entry.get("data"),
                     text=entry.get("text") or "", fields=entry.get("fields", {}))
            for position, entry in enumerate(inputs)
        ])
        defer(job)
    return job


def submit_embed(space_names: list[str], *, missing_only: bool = True, reset: bool = False,
                 item_ids: list[int] | None = None, owner_id: int | None = None) -> Job:
    """Queue a backfill of the named spaces; with `item_ids`, a re-embed of those items first drops their
    vectors (here, in the request: quick), so the job is a backfill that a retry can resume."""
    with transaction.atomic():
        if item_ids is not None:
            Embedding.objects.filter(item_id__in=item_ids).delete()
            Item.objects.filter(pk__in=item_ids).update(
                embedding_status=EmbeddingStatus.PENDING, embedding_error="", updated_at=timezone.now())
        job = Job.objects.create(kind=Job.Kind.EMBED, owner_id=owner_id, params={
            "spaces": list(space_names), "missing_only": missing_only or item_ids is not None, "reset": reset,
            "items": len(item_ids) if item_ids is not None else None,
        })
        defer(job)
    return job


def submit_extract(item_ids: list[int] | None = None, *, missing_only: bool = True,
                   owner_id: int | None = None) -> Job | None:
    """Queue reading the words in pictures, scans and recordings (search.ingest.extraction): of `item_ids`, or of
    every item it applies to. `missing_only`: those not read yet or whose reading failed; otherwise read again
    (the words found before stay searchable until the new ones replace them). None when nothing is to be read."""
    with transaction.atomic():
        total = extraction.mark_waiting(item_ids, missing_only=missing_only).count()
        if not total:
            return None
        job = Job.objects.create(kind=Job.Kind.EXTRACT, owner_id=owner_id, total=total, params={
            "items": list(item_ids) if item_ids is not None else None, "missing_only": missing_only})
        defer(job)
    return job


def submit_extract_after_ingest(items, *, owner_id: int | None = None) -> Job | None:
    """One extraction job for the items a batch (an upload, a folder, a batch job) just stored that have words
    to read; they are searchable by picture and sound already, and by their words when it is done."""
    ids = [item.pk for item in items if item is not None and item.pk
           and item.extraction_status == ExtractionStatus.PENDING]
    return submit_extract(ids, owner_id=owner_id) if ids else None


def _evaluations(space_name: str):
    return Job.objects.filter(kind=Job.Kind.EVALUATE, params__space=space_name)


def submit_evaluation(space_name: str, *, owner_id: int | None = None) -> Job | None:
    """Queue `manage.py evaluate` for one space, unless one is queued or running already (then None).
    Its figures land where the command stores them, as the space's latest evaluation."""
    with transaction.atomic():
        # One at a time per space, whichever process asks: the check and the insert hold the space's lock.
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"search.evaluate:{space_name}"])
        if _evaluations(space_name).filter(finished_at__isnull=True).exists():
            return None
        job = Job.objects.create(kind=Job.Kind.EVALUATE, owner_id=owner_id, params={"space": space_name})
        defer(job)
    return job


def evaluation_state(space_name: str) -> str:
    """What a curator is told of a space's evaluation while it is queued or runs, or after it failed."""
    job = _evaluations(space_name).order_by("-created_at", "-pk").first()
    if job is None or job.status in (Job.Status.DONE, Job.Status.CANCELLED):
        return ""
    if job.status == Job.Status.FAILED:
        first = job.error.splitlines()[0] if job.error else "unknown error"
        return f"the last run failed: {first}"
    since = timezone.localtime(job.started_at or job.created_at)
    return f"running since {since:%H:%M}…" if job.status == Job.Status.RUNNING else f"queued at {since:%H:%M}…"


def cancel(job: Job) -> bool:
    """Ask a job to stop. A queued job is cancelled at once; a running one after its current chunk."""
    if job.finished:
        return False
    Job.objects.filter(pk=job.pk).update(cancel_requested=True)
    Job.objects.filter(pk=job.pk, status=Job.Status.QUEUED).update(status=Job.Status.CANCELLED, finished_at=Now())
    return True
