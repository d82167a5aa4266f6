import math
import os
import sys
import time
from collections import Counter

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from search.ingest.ingester import Ingester, IngestOutcome, sweep_orphan_files
from search.ingest.sources import SourceError, count_inputs, iter_inputs
from search.jobs.submit import submit_extract_after_ingest

# Inputs per decode worker by default, up to one worker per CPU core. A worker starts in about half a second and
# decodes while this process loads its models, which takes longer than that in a fresh process (importing torch
# and the models' libraries): even a few files are decoded sooner in a pool than here.
INPUTS_PER_WORKER = 16


class Command(BaseCommand):
    help = (
        "Store files, folders (recursively) and manifests (CSV or JSONL with path or text, title, caption, tags, "
        "collection, metadata) as searchable items. Safe to re-run: stored content is skipped."
    )

    def add_arguments(self, parser):
        parser.add_argument("paths", nargs="+")
        parser.add_argument("--batch-size", type=int, default=None, help="items encoded together (default 32)")
        parser.add_argument("--collection", default="", help="collection for items that do not name one")
        parser.add_argument("--tag", action="append", default=[], help="a tag for every item (repeatable)")
        parser.add_argument("--workers", type=int, default=None,
                            help="processes that decode files while this one loads its models, encodes and "
                                 f"stores (default: one per {INPUTS_PER_WORKER} inputs, at most one per CPU core; "
                                 "0: decode in this process)")

    def handle(self, *args, paths, batch_size, collection, tag, workers, verbosity, **options):
        if batch_size is not None and batch_size < 1:
            raise CommandError("--batch-size must be >= 1")
        if workers is not None and workers < 0:
            raise CommandError("--workers must be >= 0")
        missing = [p for p in paths if not os.path.exists(p)]
        if missing:
            raise CommandError(f"no such file or folder: {', '.join(missing)}")
        # Files left by an interrupted run (written, never committed) go first.
        swept = sweep_orphan_files()
        if swept and verbosity >= 2:
            self.stderr.write(f"removed {len(swept)} orphaned file(s) from an interrupted run")

        total = count_inputs(paths)
        if workers is None:
            workers = min(os.cpu_count() or 1, math.ceil(total / INPUTS_PER_WORKER))
        ingester = Ingester(batch_size=batch_size, workers=workers)
        counts: Counter[str] = Counter()
        failures: list[tuple[str, str]] = []
        bar = tqdm(total=total, unit="item", file=sys.stderr, disable=verbosity == 0,
                   dynamic_ncols=True, desc="ingest")

        added: list = []

        def record(outcome: IngestOutcome | SourceError) -> None:
            if not isinstance(outcome, SourceError) and outcome.status == "added":
                added.append(outcome.item)
            if isinstance(outcome, SourceError) or outcome.status == "failed":
                counts["failed"] += 1
                failures.append((outcome.source, outcome.error))
            else:
                counts[outcome.status] += 1
                if outcome.status == "added" and outcome.item.embedding_status == "failed":
                    counts["embed_failed"] += 1
            bar.update(1)

        def readable():
            for entry in iter_inputs(paths, collection=collection, tags=tag):
                if isinstance(entry, SourceError):
                    record(entry)
                else:
                    yield entry

        started = time.monotonic()
        with ingester:
            ingester.ingest_many(readable(), on_outcome=record)
        bar.close()
        # One background job reads the words in what was stored (a worker runs it: `manage.py worker`).
        reading = submit_extract_after_ingest(added)
        for source, error in failures:
            self.stderr.write(f"failed: {source}: {error}")
        elapsed = time.monotonic() - started
        embed_failed = counts["embed_failed"]
        summary = (
            f"{counts['added']} added, {counts['present']} already present, {counts['failed']} failed "
            f"in {elapsed:.1f} s"
        )
        if verbosity >= 1:
            self.stdout.write(summary)
            if reading is not None:
                self.stdout.write(f"job {reading.pk} reads the words in {reading.total} picture(s), scan(s) and "
                                  "recording(s) in the background")
            if embed_failed:
                self.stdout.write(f"{embed_failed} stored item(s) could not be embedded; retry with "
                                  "`manage.py embed --missing-only`")
        if counts["failed"] or embed_failed:
            raise CommandError(f"some inputs were not stored: {summary}", returncode=1)
