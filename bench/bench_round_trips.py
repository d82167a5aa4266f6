"""One round trip per search (issue 28): statements and latency of a text search on the demo data plus documents.

    python bench/bench_round_trips.py            # writes docs/benchmarks/round-trips.md
    python bench/bench_round_trips.py --quick    # smoke run: 30 documents, 20 queries

A fresh database gets what a user's first day holds: the demo data (`loaddemo`, calibrated), `--docs` reference
documents nobody here wrote (manual pages, search.engine.reference_texts) and the long licence texts Debian ships
(/usr/share/common-licenses: passages). Then ordinary text queries (each document's one-line summary, and the
demo world's own phrases) go, interleaved query by query, through:

- service: search.engine.search_service.search(), as the API calls it, default settings (every space, fused);
- API: GET /api/search/?q=... through Django's test client (routing, middleware, DRF, serialisation).

Every query runs once untimed first (the model's text cache then holds it: what is measured is the search, not the
encoder, which bench_encoders measures); per path the p50 and p99 of the timed runs, the statements each search
sent (CaptureQueriesContext on the connection searches read from), and the service's own split (page.timings).
"""

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _django  # noqa: E402

DEMO_QUERIES = ("a red circle", "a blue square", "a high beep", "a low chord", "a green star", "noise",
                "a small yellow triangle", "a dog barking")
LICENCES = Path("/usr/share/common-licenses")


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=300, help="reference documents (default 300)")
    parser.add_argument("--queries", type=int, default=200, help="timed queries per path (default 200)")
    parser.add_argument("--rounds", type=int, default=3, help="timed runs of each query (default 3)")
    parser.add_argument("--quick", action="store_true", help="30 documents, 20 queries, 1 round")
    parser.add_argument("--out", default=None, help="write the report here instead of docs/benchmarks/")
    args = parser.parse_args()
    if args.quick:
        args.docs, args.queries, args.rounds = 30, 20, 1
    _django.setup("bench_round_trips")

    from django.core.management import call_command
    from django.db import connection  # searches read from it: this database has no replicas
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from search.engine.query_vectors import QueryPart
    from search.engine.reference_texts import reference_pairs
    from search.engine.requests import SearchRequest
    from search.engine.search_service import search
    from search.ingest.ingester import Ingester, IngestInput
    from search.models import Item

    started = time.perf_counter()
    call_command("loaddemo", folder=tempfile.mkdtemp(prefix="bench-demo-"), verbosity=0)
    pairs = reference_pairs(args.docs, 1)
    inputs = [IngestInput(text=pair.document, collection="documents") for pair in pairs]
    licences = sorted(LICENCES.glob("*"))[:12] if LICENCES.is_dir() else []
    inputs += [IngestInput(text=path.read_text(errors="replace"), title=path.name, collection="licences")
               for path in licences if path.is_file()]
    Ingester().ingest_many(inputs)
    stored_s = time.perf_counter() - started
    counts = {m: Item.objects.filter(modality=m).count() for m in ("image", "audio", "text")}

    from django.conf import settings

    # Still counted (its statement is part of an anonymous search's cost), never refused: the run sends thousands.
    settings.SEARCH_THROTTLE_RATES = {**settings.SEARCH_THROTTLE_RATES, "search": "10000000/min"}
    queries = [pair.query for pair in pairs] + list(DEMO_QUERIES)
    queries = (queries * (1 + args.queries // max(1, len(queries))))[:args.queries]
    client = Client(HTTP_HOST="localhost")
    for query in queries:  # untimed: the text cache holds each query, the spaces' kept rows and statistics fill
        search(SearchRequest(parts=[QueryPart(text=query)]))
        client.get("/api/search/", {"q": query})

    rows = {"service": [], "api": []}
    statements = {"service": [], "api": []}
    splits: dict[str, list[float]] = {}
    for _ in range(args.rounds):
        for query in queries:
            with CaptureQueriesContext(connection) as captured:
                began = time.perf_counter()
                page = search(SearchRequest(parts=[QueryPart(text=query)]))
                rows["service"].append((time.perf_counter() - began) * 1000)
            statements["service"].append(len(captured.captured_queries))
            for key, value in page.timings.items():
                splits.setdefault(key, []).append(value)
            with CaptureQueriesContext(connection) as captured:
                began = time.perf_counter()
                response = client.get("/api/search/", {"q": query})
                rows["api"].append((time.perf_counter() - began) * 1000)
            assert response.status_code == 200, response.content[:300]
            statements["api"].append(len(captured.captured_queries))

    lines = [
        "## One round trip per search (issue 28)",
        "",
        f"Machine: {_django.machine()}.",
        "",
        f"A fresh database with the demo data (`loaddemo`) plus {len(pairs)} reference documents and "
        f"{len(licences)} licence texts: {counts['image']} pictures, {counts['audio']} recordings, {counts['text']} "
        f"texts, stored in {stored_s:.0f} s. {len(queries)} ordinary text queries (documents' one-line summaries and "
        f"the demo world's phrases), {args.rounds} timed run(s) each after an untimed one, default settings (every "
        "space, fused by relevance), interleaved query by query.",
        "",
        "| path | p50 ms | p99 ms | statements per search (median) | most statements |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for path, label in (("service", "service: search()"), ("api", "API: GET /api/search/ (test client)")):
        lines.append(f"| {label} | {statistics.median(rows[path]):.1f} | {percentile(rows[path], 99):.1f} | "
                     f"{statistics.median(statements[path]):.0f} | {max(statements[path])} |")
    lines += ["", "What a search sends (issue 28): one statement with every space's and modality's ranking, the words "
              "ranking in hybrid mode and every candidate's fields (search.engine.ranking_batch, the index knobs in "
              "the same message); one reading the shown items whole with their nearest passage or moment "
              "(result_order.shown_items); one marking the query's words in the passages shown. The API adds the "
              "anonymous client's throttle count (one statement in the shared cache). Before issue 28, on this "
              "database at commit f9926eb, the same searches sent 9 to 43 statements (18 for 'a red circle': a "
              "planner estimate, a statement per modality and space, the candidates' fields and passage counts, "
              "each space's details, and one statement per audio candidate for its duration).",
              "", "The service's own split (p50 ms): " + ", ".join(
        f"{key.removesuffix('_ms')} {statistics.median(values):.2f}" for key, values in sorted(splits.items())) + ".",
        "", f"Command: `.venv/bin/python bench/bench_round_trips.py --docs {args.docs} --queries {args.queries} "
        f"--rounds {args.rounds}`.", ""]
    path = _django.write_fragment("round-trips.md", "\n".join(lines), args.out)
    print("\n".join(lines))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
