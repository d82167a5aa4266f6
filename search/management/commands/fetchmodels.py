"""Download the pretrained files the configured spaces need, for a server without internet.

Run it on a machine with internet and the server's SEARCH_SPACES_JSON; copy the folder to
the server and set HF_HOME to it (with HF_HUB_OFFLINE=1): the spaces read the same
Hugging Face cache layout there that a download leaves here.
"""

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from encoders import pretrained, registry
from encoders.base import EncoderError


class Command(BaseCommand):
    help = (
        "Download what the configured spaces need (open_clip tags and hf-hub repositories, CLAP models) "
        "into a folder in the Hugging Face cache layout; point a server's HF_HOME at a copy of it."
    )

    def add_arguments(self, parser):
        parser.add_argument("--to", metavar="DIR", help="folder to download into (its hub/ is the cache)")
        parser.add_argument("--space", action="append", default=[], help="only this space (repeatable)")
        parser.add_argument("--dry-run", action="store_true", help="list what would be fetched; download nothing")

    def handle(self, *args, to, space, dry_run, **options):
        spaces = settings.SEARCH_SPACES
        unknown = sorted(set(space) - set(spaces))
        if unknown:
            raise CommandError(f"unknown space(s) {', '.join(unknown)}; configured: {', '.join(spaces)}")
        if space:
            spaces = {name: entry for name, entry in spaces.items() if name in space}
        try:
            plan = registry.required_files(spaces)
        except EncoderError as exc:
            raise CommandError(str(exc)) from None
        if not plan:
            self.stdout.write("Nothing to fetch: the configured spaces use local files only.")
            return
        for name, files in plan:
            self.stdout.write(f"{name}: {files.describe()}")
        if dry_run:
            return
        if not to:
            raise CommandError("say where to download to: --to DIR (or --dry-run to only list)")
        cache = Path(to).resolve() / "hub"
        cache.mkdir(parents=True, exist_ok=True)
        failed = []
        for name, files in plan:
            try:
                paths = pretrained.resolve(files, cache_dir=cache, space=name)
            except EncoderError:
                failed.append(f"{files.describe()} for space {name!r}")
                continue
            size = sum(Path(p).stat().st_size for p in paths.values())
            self.stdout.write(f"fetched {files.repo_id}: {len(paths)} files, {size / 1e6:,.1f} MB")
        if failed:
            raise CommandError(
                "could not download " + "; ".join(failed) + ". This needs access to https://huggingface.co "
                "(unset HF_HUB_OFFLINE if it is set), or fetch these files on a machine that has it."
            )
        self.stdout.write(
            f"Done. Copy {cache.parent} to the server and set HF_HOME={cache.parent} HF_HUB_OFFLINE=1 there "
            "(keep SEARCH_SPACES_JSON the same)."
        )
