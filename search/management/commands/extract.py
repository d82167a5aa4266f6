import sys

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from search.ingest import extraction
from search.jobs import submit


class Command(BaseCommand):
    help = (
        "Read the words inside stored media: text in pictures and scanned PDFs (OCR), speech in recordings. "
        "Resumable: an item whose words are stored is not read again by --missing-only."
    )

    def add_arguments(self, parser):
        parser.add_argument("--missing-only", action="store_true",
                            help="only items not read yet, or whose reading failed")
        parser.add_argument("--item", type=int, action="append", default=None, help="only this item (repeatable)")
        parser.add_argument("--background", action="store_true",
                            help="queue it as a job for the workers (manage.py worker) and return at once")

    def handle(self, *args, missing_only, item, background, verbosity, **options):
        if background:
            job = submit.submit_extract(item, missing_only=missing_only)
            if job is None:
                self.stdout.write("nothing to read")
            else:
                self.stdout.write(f"queued as job {job.pk}: see /api/jobs/{job.pk}/ or the admin's Jobs page")
            return
        ids = list(extraction.mark_waiting(item, missing_only=missing_only).values_list("pk", flat=True))
        with tqdm(total=len(ids), unit="item", file=sys.stderr, disable=verbosity == 0, desc="extract") as bar:
            counts = extraction.extract_items(ids, on_item=lambda item_id, outcome: bar.update(1))
        if verbosity >= 1:
            self.stdout.write(f"{counts[True]} read, {counts[False]} failed, {counts[None]} skipped (gone or done "
                              "meanwhile)")
        if counts[False]:
            raise CommandError(f"{counts[False]} item(s) could not be read (see their extraction_error)",
                               returncode=1)
