"""Move stored media and previews between the local disk and the S3 bucket, e.g. before turning on
SEARCH_MEDIA_BACKEND=s3 on several web nodes (docs/scaling.md).

    python manage.py move_media --from local --to s3 [--media-root var/media] [--delete-source]

Only files that items refer to are moved (orphans stay where they are). Safe to interrupt and run again: files already
on the target whole are skipped, a copy cut short is written again. Run it once while the site is live, switch the
nodes to the target, then once more for what was stored in between.
"""

import time
from collections import Counter

from django.core.management.base import BaseCommand, CommandError

from search.models import Item
from search.storage import media_store

BACKENDS = ("local", "s3")


class Command(BaseCommand):
    help = "Copy (or move) every stored media file and preview from one media backend to the other; resumable."

    def add_arguments(self, parser):
        parser.add_argument("--from", dest="source", choices=BACKENDS, required=True)
        parser.add_argument("--to", dest="target", choices=BACKENDS, required=True)
        parser.add_argument("--media-root", default=None,
                            help="the local side's folder (default DJANGO_MEDIA_ROOT)")
        parser.add_argument("--delete-source", action="store_true",
                            help="delete each file from the source once it is whole on the target")

    def handle(self, *args, source, target, media_root, delete_source, verbosity, **options):
        if source == target:
            raise CommandError("--from and --to name the same backend")
        stores = {"local": lambda: media_store.local_storage(media_root), "s3": media_store.s3_storage}
        try:
            source_store, target_store = stores[source](), stores[target]()
        except Exception as exc:  # a missing bucket name or credentials, said before anything is touched
            raise CommandError(f"cannot open the media backends: {exc}") from None
        names = sorted({name for pair in Item.objects.values_list("media", "preview") for name in pair if name})
        counts: Counter = Counter()
        missing: list[str] = []
        started = time.monotonic()
        for done, name in enumerate(names, start=1):
            try:
                outcome = media_store.copy_file(name, source_store, target_store, delete_source=delete_source)
            except OSError as exc:
                raise CommandError(f"stopped at {name} ({exc}); run the command again to go on") from None
            counts[outcome] += 1
            if outcome == "missing":
                missing.append(name)
            if verbosity >= 1 and (done % 500 == 0 or done == len(names)):
                self.stdout.write(f"{done}/{len(names)} files: {counts['copied']} copied, {counts['present']} "
                                  f"there already, {counts['missing']} missing ({time.monotonic() - started:.0f} s)")
        if missing:
            raise CommandError(f"{len(missing)} files that items refer to are in neither backend, e.g. "
                               f"{', '.join(missing[:5])}")
