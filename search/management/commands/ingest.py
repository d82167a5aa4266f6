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

# Decode workers by default: below PROCESSES_FROM inputs, threads of this process, one per CPU core (at most one
# per input); from there on, processes, one per INPUTS_PER_PROCESS inputs, at most one per core. Decoding spends
# its time where the GIL is released (libjpeg and Pillow's other decoders, libsndfile, the PDF child), so threads
# decode in parallel too, and they start at once: a worker process costs about 0.35 s of CPU in imports first,
# a third of the work of 24 camera photos (docs/benchmarks.md, "Camera photos": 24 photos 1.5-2.2x the rate of a
# full decode each in processes, 2.1-2.2x in threads). A larger folder is encoded and stored while its next batch
# decodes, and a decoding thread then waits for the GIL that this work holds at each block of the file it feeds
# the decoder; processes pay their start-up once and never wait. At 96 photos the two were within the noise of
# this 2-core machine (threads ahead in two runs of three, with 14% less CPU), so processes stay for large
# folders until a larger one is measured. In a fresh process either kind decodes while a thread imports and
# loads the models.
PROCESSES_FROM = 64
INPUTS_PER_PROCESS = 16


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
                            help="workers that decode files while the command loads its models, encodes and "
                                 "stores (default: one per CPU core, at most one per input, or per "
                                 f"{INPUTS_PER_PROCESS} inputs for processes; 0: decode in the command's thread)")
        parser.add_argument("--decode-in", choices=["auto", "threads", "processes"], default="auto",
                            help=f"what the workers are (default auto: threads below {PROCESSES_FROM} inputs, "
                                 "processes from there on)")

    def handle(self, *args, paths, batch_size, collection, tag, workers, decode_in, verbosity, **options):
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
        threads = decode_in == "threads" or (decode_in == "auto" and total < PROCESSES_FROM)
        if workers is None:
            workers = min(os.cpu_count() or 1, total if threads else math.ceil(total / INPUTS_PER_PROCESS))
        ingester = Ingester(batch_size=batch_size, workers=workers, threads=threads)
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
