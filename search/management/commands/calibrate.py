from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from search.engine import calibration
from search.engine.evaluation import GoldenError, evaluate, golden_scores, load_golden, long_texts
from search.engine.query_vectors import QueryError
from search.engine.search_service import resolve_space
from search.models import Modality

DEFAULT_GOLDEN = Path(settings.BASE_DIR) / "fixtures" / "golden" / "demo.jsonl"


class Command(BaseCommand):
    help = (
        "Fit a space's relevance calibration: unrelated-pair and per-modality statistics from its own data (what "
        "each query is judged against), and the cutoff's midpoints from a golden set's relevant items against the "
        "negatives left standing (or defaults without one)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--space", default=None, help="the space (default: the default space)")
        parser.add_argument("--golden", default=None,
                            help="golden set (JSONL, as for `evaluate`); default: the demo set for the default "
                                 "space when the demo data is loaded, else none")
        parser.add_argument("--root", default=None, help="folder for relative file paths (default var/demo)")

    def handle(self, *args, space, golden, root, verbosity, **options):
        name = space or settings.SEARCH_DEFAULT_SPACE
        try:
            stored = resolve_space(name)
        except QueryError as exc:
            raise CommandError(str(exc)) from None
        root = Path(root) if root else Path(settings.VAR_DIR) / "demo"
        if golden is None and name == settings.SEARCH_DEFAULT_SPACE and (root / "manifest.jsonl").exists():
            golden = DEFAULT_GOLDEN
        scored, long = [], None
        if golden:
            try:
                queries = [q for q in load_golden(Path(golden)) if (q.space or name) == name]
                report = evaluate(queries, space=name, roots=[Path(golden).parent, root], k=10, long_text=False)
            except (GoldenError, QueryError) as exc:
                raise CommandError(str(exc)) from None
            scored = golden_scores(report["queries"])
        if Modality.TEXT in stored.modalities:
            # How relevant a text matched by one of its passages is: fitted on generated long texts.
            long = long_texts(space=name, k=10)
            scored += long["scored"]
        fitted = calibration.calibrate(stored, scored or None, extra_pairs=long["pairs"] if long else None)
        if verbosity >= 1:
            self.stdout.write(
                f"space {name!r}: calibration from {fitted['source']} ({fitted['golden_pairs']} golden pairs), "
                f"slope {fitted['slope']:.2f}, midpoint z {fitted['midpoint']:.2f}, "
                f"{len(fitted['pairs'])} modality pairs; per query: " + (", ".join(
                    f"{kind} midpoint z {fit['midpoint']:.2f} (fitted {fit['fitted']:.2f} on {fit['pairs']} hits)"
                    for kind, fit in fitted.get("query_midpoints", {}).items()) or "default midpoints")
            )
