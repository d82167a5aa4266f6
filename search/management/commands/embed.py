import sys

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from search.ingest.backfill import embed_space, items_to_embed
from search.jobs import submit
from search.storage import spaces


class Command(BaseCommand):
    help = (
        "Compute a space's vectors for stored items, batched and resumable. --missing-only backfills a new "
        "space or retries failed items; --reset rebuilds a space whose model changed."
    )

    def add_arguments(self, parser):
        parser.add_argument("--space", default=None, help="space name (default: the default space)")
        parser.add_argument("--missing-only", action="store_true", help="only items without a vector in the space")
        parser.add_argument("--reset", action="store_true", help="accept a new encoder identity; drop old vectors")
        parser.add_argument("--modality", action="append", choices=["text", "image", "audio"], default=None,
                            help="only items of this kind (repeatable); e.g. --modality text after an upgrade "
                                 "gives texts stored before passages existed their passages")
        parser.add_argument("--batch-size", type=int, default=32)
        parser.add_argument("--background", action="store_true",
                            help="queue it as a job for the workers (manage.py worker) and return at once")

    def handle(self, *args, space, missing_only, reset, batch_size, background, verbosity, modality=None,
               **options):
        name = space or settings.SEARCH_DEFAULT_SPACE
        if name not in settings.SEARCH_SPACES:
            raise CommandError(f"unknown space {name!r}; configured: {', '.join(settings.SEARCH_SPACES)}")
        if batch_size < 1:
            raise CommandError("--batch-size must be >= 1")
        try:
            row = spaces.register(name, allow_identity_change=reset)
        except spaces.SpaceIdentityMismatch as exc:
            raise CommandError(str(exc)) from None
        if background and modality:
            raise CommandError("--modality runs in the foreground only")
        if background:
            job = submit.submit_embed([name], missing_only=missing_only or reset, reset=reset)
            self.stdout.write(f"queued as job {job.pk}: see /api/jobs/{job.pk}/ or the admin's Jobs page")
            return
        total = items_to_embed(row, missing_only=missing_only or reset, modalities=modality).count()
        bar = tqdm(total=total, unit="item", file=sys.stderr, disable=verbosity == 0, desc=f"embed {name}")
        counts = embed_space(name, missing_only=missing_only or reset, batch_size=batch_size,
                             on_batch=bar.update, modalities=modality)
        bar.close()
        if verbosity >= 1:
            self.stdout.write(f"space {name!r}: {counts['embedded']} embedded, {counts['failed']} failed")
        if counts["failed"]:
            raise CommandError(f"{counts['failed']} item(s) could not be embedded (see their embedding_error)",
                               returncode=1)
