from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from encoders.demo import synth
from search.models import Item

# Fixed, so every install shows the same demo world and re-runs find everything present.
DEMO_SEED = 2024
DEMO_COUNTS = {"n_images": 180, "n_audio": 120, "n_texts": 80}


class Command(BaseCommand):
    help = "Fill the database with a few hundred items from the demo model's synthetic world (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument("--folder", default=None, help="where to write the demo files (default var/demo)")
        parser.add_argument("--force", action="store_true", help="load even if the database already has items")

    def handle(self, *args, folder, force, verbosity, **options):
        # Only an empty database is filled: a user who curated or deleted demo items keeps their choices.
        if not force and Item.objects.exists():
            if verbosity >= 1:
                self.stdout.write("the database already has items; not loading the demo (use --force to add it)")
            return
        out = Path(folder) if folder else Path(settings.VAR_DIR) / "demo"
        manifest = out / "manifest.jsonl"
        if not manifest.exists():
            if verbosity >= 1:
                self.stdout.write(f"generating the demo data in {out} ...")
            synth.write_dataset(out, seed=DEMO_SEED, **DEMO_COUNTS)
        call_command("ingest", str(manifest), collection="demo", verbosity=verbosity)
        # The demo ships a golden set: fit the relevance cutoff on it for the default space.
        call_command("calibrate", verbosity=verbosity)
