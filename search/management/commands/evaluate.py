import json
from collections import defaultdict
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from search.engine.evaluation import (
    GoldenError,
    evaluate,
    format_table,
    load_golden,
    load_out_of_domain,
    make_demo_golden,
    save_evaluation,
)
from search.engine.query_vectors import QueryError
from search.engine.real_language import format_real_language
from search.engine.real_language import real_language as measure_real_language

DEFAULT_GOLDEN = Path(settings.BASE_DIR) / "fixtures" / "golden" / "demo.jsonl"
DEFAULT_OOD = Path(settings.BASE_DIR) / "fixtures" / "golden" / "out_of_domain.jsonl"


class Command(BaseCommand):
    help = (
        "Measure retrieval quality on a golden set (JSONL): recall@k, MRR and nDCG@10 per modality pair, the "
        "ANN recall against an exact scan, and the relevance cutoff: recall and precision above it per pair, "
        "out-of-domain refusal over what is stored, and cold-start figures (a probe rolled back). Stores the "
        "result as the space's latest evaluation."
    )

    def add_arguments(self, parser):
        parser.add_argument("golden", nargs="?", default=str(DEFAULT_GOLDEN),
                            help=f"the golden set (default {DEFAULT_GOLDEN.relative_to(settings.BASE_DIR)})")
        parser.add_argument("--space", default=None, help="space for queries that name none (default: the default)")
        parser.add_argument("--root", default=None,
                            help="folder for relative file paths not found next to the golden file (default var/demo)")
        parser.add_argument("--k", type=int, default=10, help="the k of recall@k and ANN recall@k (default 10)")
        parser.add_argument("--ef-search", type=int, default=None, help="hnsw.ef_search for the ANN run")
        parser.add_argument("--ood", default=str(DEFAULT_OOD),
                            help="out-of-domain queries (JSONL with 'query'): how often the cutoff answers "
                                 "'no close match'; '' to skip")
        parser.add_argument("--real-language", type=int, default=100, metavar="N",
                            help="also seek N reference documents read from this machine (manual pages, Python "
                                 "docstrings) by their one-line summaries, in every mode and with every space "
                                 "fused, as a user's query runs (default 100; 0 to skip)")
        parser.add_argument("--no-cold-start", action="store_true",
                            help="skip the cold-start probe of the relevance cutoff (every item hidden and 132 "
                                 "generated pictures and sounds stored alone, in a transaction rolled back)")
        parser.add_argument("--json", dest="json_path", default=None, help="also write the full report here")
        parser.add_argument("--baseline", default=None, help="a report written by --json: show the change against it")
        parser.add_argument("--no-save", action="store_true", help="do not store it as the latest evaluation")
        parser.add_argument("--make-golden", action="store_true",
                            help="write the demo golden set from the demo data's labels instead of evaluating")

    def handle(self, *args, golden, space, root, k, ef_search, json_path, baseline, no_save, make_golden,
               verbosity, ood, real_language, no_cold_start, **options):
        root = Path(root) if root else Path(settings.VAR_DIR) / "demo"
        golden = Path(golden)
        if make_golden:
            return self._make_golden(root, golden, verbosity)
        if not 1 <= k <= settings.SEARCH_MAX_K:
            raise CommandError(f"--k must be between 1 and {settings.SEARCH_MAX_K}")
        try:
            queries = load_golden(golden)
            ood_queries = load_out_of_domain(Path(ood)) if ood else None
        except GoldenError as exc:
            raise CommandError(str(exc)) from None
        baseline_reports = self._read_baseline(baseline) if baseline else {}

        by_space = defaultdict(list)
        for query in queries:
            by_space[query.space or space or settings.SEARCH_DEFAULT_SPACE].append(query)
        reports = {}
        for name, space_queries in by_space.items():
            try:
                report = evaluate(space_queries, space=name, roots=[golden.parent, root], k=k, ef_search=ef_search,
                                  golden=golden, ood=ood_queries, cold=not no_cold_start)
            except (GoldenError, QueryError) as exc:
                raise CommandError(str(exc)) from None
            reports[name] = report
            self.stdout.write(format_table(report, baseline_reports.get(name)))
            if not no_save:
                row = save_evaluation(report)
                if verbosity >= 2:
                    self.stdout.write(f"stored as the latest evaluation of {name!r} (report {row.pk})")
        if real_language > 0:
            found = measure_real_language(n=real_language, k=k)
            self.stdout.write(format_real_language(found))
            for report in reports.values():
                report["real_language"] = found
                if not no_save:
                    save_evaluation(report)
        if json_path:
            Path(json_path).write_text(json.dumps(reports, indent=1, ensure_ascii=False), encoding="utf-8")
            if verbosity >= 1:
                self.stdout.write(f"wrote {json_path}")

    def _read_baseline(self, path: str) -> dict:
        try:
            reports = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise CommandError(f"cannot read the baseline {path}: {exc}") from None
        if not isinstance(reports, dict):
            raise CommandError(f"the baseline {path} is not a report written by --json")
        return reports

    def _make_golden(self, root: Path, out: Path, verbosity: int) -> None:
        if not (root / "manifest.jsonl").exists():
            from encoders.demo import synth
            from search.management.commands.loaddemo import DEMO_COUNTS, DEMO_SEED

            if verbosity >= 1:
                self.stdout.write(f"generating the demo data in {root} ...")
            synth.write_dataset(root, seed=DEMO_SEED, **DEMO_COUNTS)
        rows = make_demo_golden(root)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
        if verbosity >= 1:
            self.stdout.write(f"wrote {len(rows)} golden queries to {out}")
