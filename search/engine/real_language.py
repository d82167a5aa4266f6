"""How well ordinary English is found: public reference text (search.engine.reference_texts) stored for the time
of the measure, each document searched for by its one-line summary, in every mode.

Per mode: top-1, recall@k and MRR of the one right document, and how much of what the ranking finds in its top
k the relevance cutoff keeps (a hit the cutoff calls weak is one a user does not see without asking). Run with
the configured spaces and no `space`, as a user's query runs: every space that can embed text, fused.
"""

from django.db import transaction

from search.engine.evaluation import mean, reciprocal_rank
from search.engine.query_vectors import QueryPart
from search.engine.reference_texts import reference_pairs
from search.engine.requests import MODES, Filters, SearchRequest
from search.engine.search_service import search
from search.ingest.ingester import Ingester, IngestInput
from search.models import Modality

COLLECTION = "__real_language_probe__"
DOCUMENTS = 300
SEED = 0


def real_language(*, space: str | None = None, k: int = 10, n: int = DOCUMENTS, seed: int = SEED,
                  modes=MODES) -> dict:
    """Figures per mode over `n` reference pairs, stored in a transaction that is rolled back."""
    pairs = reference_pairs(n, seed)
    per_mode: dict[str, list[dict]] = {mode: [] for mode in modes}
    with transaction.atomic():
        try:
            outcomes = Ingester().ingest_many([IngestInput(text=pair.document, collection=COLLECTION)
                                               for pair in pairs])
            stored = [(pair, outcome.item) for pair, outcome in zip(pairs, outcomes, strict=True) if outcome.item]
            for mode in modes:
                for pair, item in stored:
                    page = search(SearchRequest(parts=[QueryPart(text=pair.query)], space=space, k=k, mode=mode,
                                                include_weak=True,
                                                filters=Filters(modalities=[Modality.TEXT], collection=COLLECTION)))
                    ranked = [hit.item.pk for hit in page.hits]
                    found = next((hit for hit in page.hits if hit.item.pk == item.pk), None)
                    per_mode[mode].append({
                        "query": pair.query, "source": pair.source, "first": float(ranked[:1] == [item.pk]),
                        "recall": float(found is not None), "mrr": reciprocal_rank(ranked, {item.pk}),
                        "kept": None if found is None else float(not found.weak),
                    })
        finally:
            transaction.set_rollback(True)
    return {
        "documents": len(stored), "k": k, "seed": seed,
        "manual_pages": sum(pair.source.endswith(".gz") for pair, _ in stored),
        "modes": {mode: {"top1": mean(r["first"] for r in rows), f"recall@{k}": mean(r["recall"] for r in rows),
                         "mrr": mean(r["mrr"] for r in rows),
                         "kept_by_cutoff": mean(r["kept"] for r in rows if r["kept"] is not None)}
                  for mode, rows in per_mode.items()},
    }


def format_real_language(report: dict) -> str:
    k = report["k"]
    lines = [f"Real language: {report['documents']} reference documents, each sought by its one-line summary",
             f"{'mode':<8} {'top-1':>6} {f'recall@{k}':>10} {'MRR':>6} {'kept by cutoff':>15}"]
    for mode, figures in report["modes"].items():
        lines.append(f"{mode:<8} " + " ".join(
            f"{'-' if value is None else f'{value:.3f}':>{width}}"
            for value, width in ((figures["top1"], 6), (figures[f"recall@{k}"], 10), (figures["mrr"], 6),
                                 (figures["kept_by_cutoff"], 15))))
    return "\n".join(lines)
