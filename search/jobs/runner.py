"""Running a job: resumable and idempotent, whichever worker runs it and however often.

A batch upload stores its pending inputs a chunk per transaction (items, the inputs' outcomes and the
job's counts commit together), and an embed job backfills exactly the items still missing a vector. A
worker killed with -9 mid-job therefore loses at most an uncommitted chunk, which the retry stores again:
no input is lost or stored twice. An evaluation runs `manage.py evaluate` for one space. An extraction reads
the words of its items one per transaction (search.ingest.extraction).
"""

import logging
import threading
import time
from io import StringIO

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import transaction
from django.db.models import F
from django.db.models.functions import Coalesce, Now

from encoders.base import EncoderError
from search.ingest import extraction
from search.ingest.backfill import embed_space, items_to_embed
from search.ingest.ingester import Ingester, IngestInput
from search.jobs.queue import defer
from search.jobs.submit import submit_extract_after_ingest
from search.models import ExtractionStatus, Item, Job, JobInput
from search.runtime import metrics
from search.storage import spaces

logger = logging.getLogger("search.jobs")

# Set by the worker command on SIGINT/SIGTERM: a running job stops after its current chunk and is
# queued again, so stopping a worker never waits for a whole backfill.
STOPPING = threading.Event()


class JobCancelled(Exception):
    pass


class JobInterrupted(Exception):
    pass


# Errors that another attempt cannot fix: the job fails at once instead of retrying.
PERMANENT_ERRORS = (spaces.SpaceIdentityMismatch, EncoderError, CommandError)


def _check(job_id: int) -> None:
    if Job.objects.filter(pk=job_id, cancel_requested=True).exists():
        raise JobCancelled
    if STOPPING.is_set():
        raise JobInterrupted


def _finish(job_id: int, status: str, error: str = "") -> None:
    Job.objects.filter(pk=job_id).update(status=status, finished_at=Now(), error=error[:2000])


def run(job_id: int, *, final_attempt: bool = True) -> None:
    """Run (or resume) a job. An error is raised again for the queue to retry unless this was the last
    attempt or it is permanent; then the job is marked failed."""
    job = Job.objects.filter(pk=job_id).first()
    if job is None or job.finished:
        return
    if job.cancel_requested:
        _finish(job_id, Job.Status.CANCELLED)
        return
    Job.objects.filter(pk=job_id).update(status=Job.Status.RUNNING, started_at=Coalesce(F("started_at"), Now()),
                                         attempts=F("attempts") + 1)
    started = time.monotonic()
    logger.info("job %s (%s) started", job_id, job.kind)
    try:
        if job.kind == Job.Kind.INGEST:
            _run_ingest(job)
        elif job.kind == Job.Kind.EVALUATE:
            _run_evaluation(job)
        elif job.kind == Job.Kind.EXTRACT:
            _run_extract(job)
        else:
            _run_embed(job)
    except JobCancelled:
        _finish(job_id, Job.Status.CANCELLED)
        logger.info("job %s cancelled", job_id)
        return
    except JobInterrupted:
        # The worker is stopping: the next worker continues where this one stopped.
        Job.objects.filter(pk=job_id).update(status=Job.Status.QUEUED)
        defer(job)
        logger.info("job %s interrupted by the worker stopping; queued again", job_id)
        return
    except Exception as exc:
        message = f"{type(exc).__name__}: {exc}"
        if final_attempt or isinstance(exc, PERMANENT_ERRORS):
            _finish(job_id, Job.Status.FAILED, message)
            metrics.JOB_FAILURES.labels(kind=job.kind).inc()
            logger.error("job %s failed: %s", job_id, message)
            return
        Job.objects.filter(pk=job_id).update(status=Job.Status.QUEUED, error=f"retrying after: {message}"[:2000])
        logger.warning("job %s attempt failed, will retry: %s", job_id, message)
        raise
    _finish(job_id, Job.Status.DONE)
    logger.info("job %s done in %.1f s", job_id, time.monotonic() - started)


def _run_ingest(job: Job) -> None:
    with Ingester() as ingester:
        while True:
            _check(job.pk)
            with transaction.atomic():
                # Locked and skipped: a worker that lost its heartbeat but still runs never stores an input
                # that its replacement is storing.
                chunk = list(JobInput.objects.select_for_update(skip_locked=True)
                             .filter(job_id=job.pk, outcome=JobInput.Outcome.PENDING)
                             .order_by("position")[:settings.SEARCH_JOB_CHUNK])
                if not chunk:
                    if JobInput.objects.filter(job_id=job.pk, outcome=JobInput.Outcome.PENDING).exists():
                        # Inputs locked by a worker presumed dead but still running: try again after it.
                        raise RuntimeError("another worker is still storing inputs of this job")
                    return
                outcomes = ingester.ingest_many([
                    IngestInput(text=entry.text if entry.data is None else None,
                                data=bytes(entry.data) if entry.data is not None else None,
                                title=entry.fields.get("title", ""), caption=entry.fields.get("caption", ""),
                                tags=entry.fields.get("tags", ()), collection=entry.fields.get("collection", ""),
                                metadata=entry.fields.get("metadata", {}), owner_id=job.owner_id,
                                source=entry.name or f"input {entry.position}", filename=entry.name)
                    for entry in chunk
                ])
                good = 0
                for entry, outcome in zip(chunk, outcomes, strict=True):
                    entry.outcome, entry.error = outcome.status, outcome.error[:2000]
                    entry.item = outcome.item
                    entry.data = None  # stored now: the payload is no longer needed
                    good += outcome.status != "failed"
                JobInput.objects.bulk_update(chunk, ["outcome", "error", "item", "data"])
                Job.objects.filter(pk=job.pk).update(processed=F("processed") + len(chunk),
                                                     succeeded=F("succeeded") + good,
                                                     failed=F("failed") + len(chunk) - good)
                if not JobInput.objects.filter(job_id=job.pk, outcome=JobInput.Outcome.PENDING).exists():
                    # The batch's last chunk: one job reads the words of what it stored, committed with it.
                    added = Item.objects.filter(pk__in=JobInput.objects.filter(
                        job_id=job.pk, outcome=JobInput.Outcome.ADDED).values("item_id"))
                    submit_extract_after_ingest(added.only("id", "extraction_status"), owner_id=job.owner_id)
            logger.info("job %s stored %d input(s)", job.pk, len(chunk))


def _run_embed(job: Job) -> None:
    names = job.params.get("spaces") or list(spaces.configured_names())
    missing_only, reset = job.params.get("missing_only", True), job.params.get("reset", False)
    remaining = sum(items_to_embed(spaces.register(name, allow_identity_change=reset), missing_only=missing_only)
                    .count() for name in names)
    # On a retry the work already done stays counted; what is left is counted again.
    Job.objects.filter(pk=job.pk).update(total=F("processed") + remaining)

    def progress(count: int) -> None:
        Job.objects.filter(pk=job.pk).update(processed=F("processed") + count)
        _check(job.pk)

    for name in names:
        _check(job.pk)
        counts = embed_space(name, missing_only=missing_only, reset=reset, on_batch=progress)
        Job.objects.filter(pk=job.pk).update(succeeded=F("succeeded") + counts["embedded"],
                                             failed=F("failed") + counts["failed"])
        logger.info("job %s space %r: %d embedded, %d failed", job.pk, name, counts["embedded"], counts["failed"])


def _run_extract(job: Job) -> None:
    """Read the words of the job's items still waiting for it, one item per transaction (resumable: an item
    whose words are stored no longer waits, so a retry reads only the rest)."""
    waiting = Item.objects.filter(extraction_status=ExtractionStatus.PENDING)
    if job.params.get("items") is not None:
        waiting = waiting.filter(pk__in=job.params["items"])
    ids = list(waiting.order_by("id").values_list("pk", flat=True))
    Job.objects.filter(pk=job.pk).update(total=F("processed") + len(ids))
    _check(job.pk)

    def done(item_id: int, outcome: bool | None) -> None:
        Job.objects.filter(pk=job.pk).update(processed=F("processed") + 1,
                                             succeeded=F("succeeded") + int(outcome is not False),
                                             failed=F("failed") + int(outcome is False))
        _check(job.pk)  # a cancelled job stops after the item in hand; what is stored stays

    # One batch: the reading child reads the next item while this one is stored, and words are embedded together.
    extraction.extract_items(ids, on_item=done)
    logger.info("job %s read the words of %d item(s)", job.pk, len(ids))


def _run_evaluation(job: Job) -> None:
    # The command stores its report as the space's latest evaluation; what it prints is for a terminal.
    call_command("evaluate", space=job.params["space"], stdout=StringIO(), stderr=StringIO())
