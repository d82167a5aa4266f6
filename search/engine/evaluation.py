"""Retrieval quality of a space on a golden set, measured through the search service.

    python manage.py evaluate [fixtures/golden/demo.jsonl] [--space demo] [--json out.json]

A golden set is JSONL, one query per line:

    {"id": "red-circle", "query": "a red circle", "relevant": ["images/image_0003.png", "9f86d0...", 42],
     "filters": {"modalities": ["image"]}, "space": "demo"}

`query` is a text (a string or {"text": ...}), a file ({"file": "images/image_0007.png"}), a stored item
({"item": id, sha256 or path}) or a weighted mix ({"parts": [{"file": ..., "weight": 1}, {"text": "blue",
"weight": 1}, {"text": "red", "weight": -1}]}). `relevant` lists item ids, sha256s or file paths (a file
stands for the item with its content's sha256), or maps them to a graded relevance ({"ref": 2}).
Optional: `filters` (the fields of searching.Filters), `space`, `target` (the modality the query looks for;
by default the filter's single modality, else the relevant items' modality), `exclude_query_items`
(default true: an item whose content is the query is left out of the results and of the relevant set).
Relative paths are looked up next to the golden file, then under the root folder (default var/demo).

Each query runs twice through `search()`: as users get it (HNSW), and with `exact=True`. The report gives
recall@k, MRR and nDCG@10 of the first run per modality pair (query modality -> target modality) and
overall, plus the ANN recall@k: the share of the exact top k the index also returned. recall@k is the share
of all relevant items found in the top k; MRR uses the first relevant rank in the top max(k, 10); nDCG@10
gains 2^grade - 1 per result. The latest reports of each space are kept in the database
(`EvaluationReport`); `latest_evaluation(space)` reads the last back (for the admin).
"""

import hashlib
import json
import math
import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from search.engine.query_vectors import QueryError, QueryPart
from search.engine.requests import Filters, SearchRequest
from search.engine.search_service import search
from search.media import sniff
from search.models import EvaluationReport, Item, Modality

NDCG_DEPTH = 10
SHA256 = re.compile(r"^[0-9a-f]{64}$")
FILTER_FIELDS = {"modalities", "tags", "collection", "metadata", "created_after", "created_before"}
ENTRY_FIELDS = {"id", "query", "relevant", "filters", "space", "target", "exclude_query_items"}
PART_FIELDS = {"text", "file", "item", "weight"}


class GoldenError(ValueError):
    """A golden set that cannot be read, with the file and line at fault."""


# --------------------------------------------------------------------------- metrics


def recall_at_k(ranked: list, relevant, k: int) -> float:
    """Share of the relevant items found in the first k results."""
    relevant = set(relevant)
    if not relevant:
        raise ValueError("recall needs at least one relevant item")
    return len(relevant.intersection(ranked[:k])) / len(relevant)


def reciprocal_rank(ranked: list, relevant) -> float:
    """1 / the rank of the first relevant result; 0 when none was returned."""
    relevant = set(relevant)
    for position, item in enumerate(ranked, start=1):
        if item in relevant:
            return 1.0 / position
    return 0.0


def ndcg_at_k(ranked: list, grades: dict, k: int = NDCG_DEPTH) -> float:
    """Normalised discounted cumulative gain, gain 2^grade - 1 (so 1 for a plainly relevant item)."""
    ideal = sorted((g for g in grades.values() if g > 0), reverse=True)[:k]
    if not ideal:
        raise ValueError("nDCG needs at least one relevant item")

    def dcg(gains) -> float:
        return sum((2.0**g - 1.0) / math.log2(position + 1) for position, g in enumerate(gains, start=1))

    return dcg(grades.get(item, 0) for item in ranked[:k]) / dcg(ideal)


def ann_recall_at_k(approximate: list, exact: list, k: int) -> float | None:
    """Share of the exact top k that the approximate search also returned in its top k (None: nothing to find)."""
    truth = set(exact[:k])
    if not truth:
        return None
    return len(truth.intersection(approximate[:k])) / len(truth)


def mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


# --------------------------------------------------------------------------- the golden set


@dataclass
class GoldenQuery:
    id: str
    parts: list[dict]  # each {"text"|"file"|"item": ..., "weight": w}
    relevant: dict  # reference -> grade
    filters: dict = field(default_factory=dict)
    space: str | None = None
    target: str | None = None
    exclude_query_items: bool = True
    where: str = ""  # file:line, for messages


def _parts(query, where: str) -> list[dict]:
    if isinstance(query, str):
        query = {"text": query}
    if not isinstance(query, dict):
        raise GoldenError(f"{where}: 'query' must be a text or an object")
    raw = query["parts"] if set(query) == {"parts"} else [query]
    if not isinstance(raw, list) or not raw:
        raise GoldenError(f"{where}: 'parts' must be a non-empty list")
    parts = []
    for part in raw:
        if not isinstance(part, dict):
            raise GoldenError(f"{where}: each part must be an object")
        unknown = set(part) - PART_FIELDS
        content = [key for key in ("text", "file", "item") if key in part]
        if unknown or len(content) != 1:
            raise GoldenError(f"{where}: a query part needs exactly one of text, file, item (and an optional weight);"
                              f" got {sorted(part)}")
        weight = part.get("weight", 1.0)
        if isinstance(weight, bool) or not isinstance(weight, int | float):
            raise GoldenError(f"{where}: a weight must be a number")
        parts.append({content[0]: part[content[0]], "weight": float(weight)})
    return parts


def _relevant(raw, where: str) -> dict:
    if isinstance(raw, list):
        raw = {ref: 1 for ref in raw}
    if not isinstance(raw, dict) or not raw:
        raise GoldenError(f"{where}: 'relevant' must be a non-empty list of references, or an object of grades")
    grades = {}
    for ref, grade in raw.items():
        if isinstance(ref, bool) or not isinstance(ref, int | str) or ref == "":
            raise GoldenError(f"{where}: a relevant item is an id, a sha256 or a path; got {ref!r}")
        if isinstance(grade, bool) or not isinstance(grade, int | float) or grade <= 0:
            raise GoldenError(f"{where}: the grade of {ref!r} must be a positive number")
        # JSON object keys are strings: "42" is the item with id 42.
        if isinstance(ref, str) and ref.isdigit() and not SHA256.match(ref):
            ref = int(ref)
        grades[ref] = float(grade)
    return grades


def load_golden(path: Path) -> list[GoldenQuery]:
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise GoldenError(f"cannot read the golden set {path}: {exc.strerror or exc}") from None
    queries, seen = [], set()
    for number, line in enumerate(lines, start=1):
        where = f"{path}:{number}"
        if not line.strip() or line.lstrip().startswith("//"):
            continue
        try:
            entry = json.loads(line)
        except ValueError as exc:
            raise GoldenError(f"{where}: invalid JSON: {exc}") from None
        if not isinstance(entry, dict):
            raise GoldenError(f"{where}: each line must be a JSON object")
        unknown = set(entry) - ENTRY_FIELDS
        if unknown:
            raise GoldenError(f"{where}: unknown field(s) {sorted(unknown)}; use {sorted(ENTRY_FIELDS)}")
        for required in ("query", "relevant"):
            if required not in entry:
                raise GoldenError(f"{where}: '{required}' is missing")
        filters = entry.get("filters") or {}
        if not isinstance(filters, dict) or set(filters) - FILTER_FIELDS:
            raise GoldenError(f"{where}: 'filters' must be an object with fields among {sorted(FILTER_FIELDS)}")
        _filters(filters, where)  # refuse a bad filter now, not halfway through a run
        query_id = str(entry.get("id") or f"line-{number}")
        if query_id in seen:
            raise GoldenError(f"{where}: the id {query_id!r} is used twice")
        seen.add(query_id)
        queries.append(GoldenQuery(
            id=query_id, parts=_parts(entry["query"], where), relevant=_relevant(entry["relevant"], where),
            filters=filters, space=entry.get("space"), target=entry.get("target"),
            exclude_query_items=bool(entry.get("exclude_query_items", True)), where=where,
        ))
    if not queries:
        raise GoldenError(f"the golden set {path} holds no queries")
    return queries


class Resolver:
    """Turns the golden set's references (ids, sha256s, paths) into stored items."""

    def __init__(self, roots: list[Path]):
        self.roots = [Path(root) for root in roots]
        self._sha_of_path: dict[Path, str] = {}
        self._items: dict[object, Item | None] = {}

    def path(self, ref: str, where: str) -> Path:
        candidate = Path(ref)
        options = [candidate] if candidate.is_absolute() else [root / candidate for root in self.roots]
        for option in options:
            if option.is_file():
                return option
        raise GoldenError(f"{where}: no file {ref!r} (looked in {', '.join(str(o.parent) for o in options)})")

    def sha256_of(self, path: Path) -> str:
        if path not in self._sha_of_path:
            self._sha_of_path[path] = hashlib.sha256(path.read_bytes()).hexdigest()
        return self._sha_of_path[path]

    def item(self, ref, where: str) -> Item | None:
        """The stored item a reference names, or None if it is not in the database."""
        if ref not in self._items:
            if isinstance(ref, int):
                found = Item.objects.filter(pk=ref).first()
            elif SHA256.match(ref):
                found = Item.objects.filter(sha256=ref).first()
            else:
                found = Item.objects.filter(sha256=self.sha256_of(self.path(ref, where))).first()
            self._items[ref] = found
        return self._items[ref]


# --------------------------------------------------------------------------- running it


def _filters(raw: dict, where: str) -> Filters:
    values = dict(raw)
    for key in ("created_after", "created_before"):
        if values.get(key):
            try:
                values[key] = datetime.fromisoformat(values[key])
            except (TypeError, ValueError):
                raise GoldenError(f"{where}: {key} must be an ISO date or time") from None
    for key in ("modalities", "tags"):
        if isinstance(values.get(key), str):
            values[key] = [values[key]]
        if not isinstance(values.get(key, []), list) or not all(isinstance(v, str) for v in values.get(key, [])):
            raise GoldenError(f"{where}: the {key} filter must be a text or a list of texts")
    if not isinstance(values.get("collection", ""), str) or not isinstance(values.get("metadata", {}), dict):
        raise GoldenError(f"{where}: the collection filter must be a text and the metadata filter an object")
    return Filters(**values)


def _query_parts(query: GoldenQuery, resolver: Resolver) -> tuple[list[QueryPart], set[str], set[int]]:
    """The service's QueryParts, the query's modalities, and the ids of stored items that are the query."""
    parts, modalities, self_ids = [], set(), set()
    for spec in query.parts:
        weight = spec["weight"]
        if "text" in spec:
            parts.append(QueryPart(text=str(spec["text"]), weight=weight))
            modalities.add("text")
        elif "file" in spec:
            path = resolver.path(str(spec["file"]), query.where)
            data = path.read_bytes()
            mime = sniff(data[:16]) or ""
            modalities.add(mime.split("/")[0] or "file")
            parts.append(QueryPart(data=data, weight=weight))
            stored = Item.objects.filter(sha256=resolver.sha256_of(path)).values_list("pk", flat=True).first()
            if stored is not None and weight > 0:
                self_ids.add(stored)
        else:
            item = resolver.item(spec["item"], query.where)
            if item is None:
                raise QueryError(f"the query item {spec['item']!r} is not in the database")
            parts.append(QueryPart(item_id=item.pk, weight=weight))
            modalities.add(item.modality)
            if weight > 0:
                self_ids.add(item.pk)
    return parts, modalities, self_ids


def _label(modalities) -> str:
    return "+".join(sorted(modalities)) or "?"


def run_query(query: GoldenQuery, resolver: Resolver, *, space: str, k: int, ef_search: int | None = None) -> dict:
    """One golden query through the service, ANN and exact; its metrics, or why it was skipped."""
    result: dict = {"id": query.id}
    try:
        parts, query_modalities, self_ids = _query_parts(query, resolver)
    except QueryError as exc:
        return result | {"skipped": str(exc)}
    grades, missing = {}, []
    for ref, grade in query.relevant.items():
        item = resolver.item(ref, query.where)
        if item is None:
            missing.append(ref)
        elif not (query.exclude_query_items and item.pk in self_ids):
            grades[item.pk] = max(grade, grades.get(item.pk, 0))
    filters = _filters(query.filters, query.where)
    target = query.target
    if not target:
        target_modalities = set(filters.modalities) or {item.modality for item in Item.objects.filter(pk__in=grades)}
        target = _label(target_modalities)
    result |= {"pair": f"{_label(query_modalities)}→{target}", "relevant": len(grades)}
    if missing:
        result["missing"] = missing
    if not grades:
        reason = ("none of its relevant items is in the database" if missing
                  else "its only relevant item is the query itself")
        return result | {"skipped": reason}

    exclude = sorted(self_ids) if query.exclude_query_items else []
    depth = min(max(k, NDCG_DEPTH), settings.SEARCH_MAX_K)
    runs = {}
    try:
        for exact in (False, True):
            # The ranking is measured whole (weak results included); the cutoff is measured on its own below.
            request = SearchRequest(parts=parts, filters=filters, space=space, k=depth, exact=exact,
                                    exclude_ids=exclude, ef_search=None if exact else ef_search, include_weak=True)
            runs[exact] = search(request)
    except QueryError as exc:
        return result | {"skipped": str(exc)}
    ranked = [hit.item.pk for hit in runs[False].hits]
    exact_ranked = [hit.item.pk for hit in runs[True].hits]
    kept = [hit for hit in runs[False].hits if not hit.weak]
    relevant_in_top = [hit for hit in runs[False].hits[:k] if hit.item.pk in grades]
    # What a user sees without asking for weak results: everything the cutoff lets through (up to SEARCH_MAX_K).
    shown = search(SearchRequest(parts=parts, filters=filters, space=space, k=settings.SEARCH_MAX_K,
                                 exclude_ids=exclude, ef_search=ef_search))
    shown_ids = {hit.item.pk for hit in shown.hits}
    found = len(shown_ids.intersection(grades))
    return result | {
        # Recall and precision above the cutoff: of all the relevant items, the share shown; of those shown, the
        # share relevant (None when nothing is shown).
        "recall_above": found / len(grades),
        "precision_above": found / len(shown_ids) if shown_ids else None,
        # Of the relevant items the ranking puts in the top k, the share the cutoff keeps.
        "kept": mean(float(not hit.weak) for hit in relevant_in_top),
        # Of what the cutoff lets through, the share of the first five that is on-topic.
        "on_topic5": mean(float(hit.item.pk in grades) for hit in kept[:5]),
        "scored": _scored(space, parts, runs[True].hits, grades),
        "query_modality": _label(query_modalities),
        "recall": recall_at_k(ranked, grades, k),
        "mrr": reciprocal_rank(ranked, grades),
        "ndcg": ndcg_at_k(ranked, grades, NDCG_DEPTH),
        "ann_recall": ann_recall_at_k(ranked, exact_ranked, k),
        "answered_exact": runs[False].exact,
        "ranked": ranked,
        "exact_ranked": exact_ranked,
        "relevant_ids": sorted(grades),
    }


def _scored(space: str, parts: list[QueryPart], hits, grades) -> list[tuple]:
    """What calibration fits on: per hit, (modality, similarity, relevant?, passages, how the per-query judgement
    saw it: its z, whether a structural rule demoted it, and which midpoint judged it)."""
    from search.engine import calibration
    from search.engine.query_vectors import query_vector
    from search.engine.result_order import is_example, query_modality
    from search.engine.search_service import resolve_space

    stored = resolve_space(space)
    request = SearchRequest(parts=parts, space=space)
    try:
        vector = query_vector(stored, parts)
    except QueryError:
        vector = None
    hits = [hit for hit in hits if hit.similarity is not None]
    judged = calibration.judge(stored, calibration.current(stored), vector, query_modality(request),
                               is_example(request),
                               {hit.item.pk: (hit.item.modality, hit.similarity, hit.passages) for hit in hits}) \
        if vector is not None else {}
    out = []
    for hit in hits:
        seen = judged.get(hit.item.pk)
        extra = {"z": seen.z, "demoted": seen.demoted, "kind": seen.kind} if seen else {}
        out.append((hit.item.modality, hit.similarity, hit.item.pk in grades, hit.passages, extra))
    return out


def summarise(rows: list[dict]) -> dict:
    scored = [row for row in rows if "skipped" not in row]
    return {
        "queries": len(scored),
        "recall": mean(row["recall"] for row in scored),
        "mrr": mean(row["mrr"] for row in scored),
        "ndcg": mean(row["ndcg"] for row in scored),
        "ann_recall": mean(row["ann_recall"] for row in scored),
        "answered_exact": mean(float(row["answered_exact"]) for row in scored),
        "kept": mean(row["kept"] for row in scored if row.get("kept") is not None),
        "on_topic5": mean(row["on_topic5"] for row in scored if row.get("on_topic5") is not None),
        "recall_above": mean(row.get("recall_above") for row in scored),
        "precision_above": mean(row.get("precision_above") for row in scored),
    }


def golden_scores(rows: list[dict]) -> list[tuple[str, None, list]]:
    """What search.engine.calibration.calibrate fits on: per golden query, its modality and its scored top items."""
    return [(row["query_modality"], None, row["scored"]) for row in rows
            if "skipped" not in row and row["query_modality"] in ("text", "image", "audio")]


def load_out_of_domain(path: Path) -> list[str]:
    """Queries the space knows nothing about, one JSON object with a `query` per line."""
    queries = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            try:
                queries.append(str(json.loads(line)["query"]))
            except (ValueError, KeyError, TypeError):
                raise GoldenError(f"{path}:{number}: expected a JSON object with a 'query'") from None
    return queries


def out_of_domain(queries: list[str], *, space: str) -> dict:
    """How often the cutoff answers "no close match" to queries about things the space does not hold."""
    rows = []
    for text in queries:
        page = search(SearchRequest(parts=[QueryPart(text=text)], space=space, k=5))
        best = page.hits[0].relevance if page.hits else (page.suggestions[0].relevance if page.suggestions else None)
        rows.append({"query": text, "relevant": page.total_relevant, "best_relevance": best})
    return {"queries": len(rows), "answered_empty": mean(float(row["relevant"] == 0) for row in rows), "rows": rows}


LONG_TEXTS = 40  # documents of the long-text probe
LONG_TEXT_SEED = 1717
LONG_TEXT_PAIR = "text→long text"


def long_texts(*, space: str, k: int = 10, n: int = LONG_TEXTS, seed: int = LONG_TEXT_SEED) -> dict:
    """The long-text pair: `n` generated documents (encoders.demo.synth_documents: 600-1,200 words, the thing each
    describes after its first 150 words), stored for the time of the measure and rolled back, each searched
    for by its description in other words among them. Its `scored` rows let calibration fit how relevant a
    text matched by one of its passages is (search.engine.calibration.z_score).

    Generated rather than part of the demo: their everyday prose would make everyday questions about
    anything else (the out-of-domain set) find them, and they are the same on every install.
    """
    from encoders.demo.synth_documents import long_documents
    from search.ingest.ingester import Ingester, IngestInput

    collection = "__long_text_probe__"
    documents = list(long_documents(n, seed))
    rows, scored = [], []
    with transaction.atomic():
        try:
            outcomes = Ingester().ingest_many([IngestInput(text=doc.text, collection=collection)
                                               for doc in documents])
            for doc, outcome in zip(documents, outcomes, strict=True):
                if outcome.item is None:
                    rows.append({"query": doc.query, "skipped": outcome.error})
                    continue
                page = search(SearchRequest(parts=[QueryPart(text=doc.query)], space=space, k=k, include_weak=True,
                                            filters=Filters(modalities=[Modality.TEXT], collection=collection)))
                ranked = [hit.item.pk for hit in page.hits]
                first = page.hits[0] if page.hits else None
                right = {outcome.item.pk}
                shown = bool(first and first.item.pk == outcome.item.pk and first.passage
                              and first.passage.start < doc.end and first.passage.end > doc.start)
                rows.append({"query": doc.query, "recall": recall_at_k(ranked, right, k),
                             "mrr": reciprocal_rank(ranked, right), "first": float(ranked[:1] == [outcome.item.pk]),
                             "passage_shown": float(shown),
                             "kept": float(any(hit.item.pk == outcome.item.pk and not hit.weak for hit in page.hits))})
                # Only texts matched with their passages: the rest is the golden set's to judge.
                scored.append(("text", None, [(hit.item.modality, hit.similarity, hit.item.pk in right, hit.passages)
                                              for hit in page.hits if hit.similarity is not None and hit.passages]))
            # What an unrelated passage scores, while there are passages to measure it on.
            from search.engine import calibration
            from search.engine.search_service import resolve_space

            passage_pairs = {key: stats for key, stats in calibration.unrelated_stats(resolve_space(space)).items()
                             if key.endswith(f"->{calibration.PASSAGE}")}
        finally:
            transaction.set_rollback(True)
    done = [row for row in rows if "skipped" not in row]
    return {
        "documents": n, "seed": seed, "queries": len(done),
        **{key: mean(row[key] for row in done) for key in ("recall", "mrr", "first", "passage_shown", "kept")},
        "rows": rows, "scored": scored, "pairs": passage_pairs,
    }


COLD_START_SEED = 2626
COLD_START_KINDS = 11  # of pictures and of sounds: 22 kinds, as in issue 26
COLD_START_PER_KIND = 6


def _png(image) -> bytes:
    import io

    out = io.BytesIO()
    image.convert("RGB").save(out, format="PNG")
    return out.getvalue()


def _wav(waveform, samplerate: int) -> bytes:
    import io

    import soundfile

    out = io.BytesIO()
    soundfile.write(out, waveform, samplerate, format="WAV", subtype="PCM_16")
    return out.getvalue()


def cold_start(*, space: str, seed: int = COLD_START_SEED, kinds: int = COLD_START_KINDS,
               per_kind: int = COLD_START_PER_KIND) -> dict | None:
    """The cutoff on a cold database: every stored item hidden and the space's calibration emptied for the time
    of the measure, then `kinds` kinds of pictures and of sounds (`per_kind` each) from the evaluation-only
    generator (encoders.demo.synth_eval) stored alone, as a user's first uploads, and searched with the default
    cutoff: text->image and text->audio top-1 and precision@5 (held-out wordings), image->image and audio->audio
    precision@5 (each item as the query). All of it is rolled back. Measured only in a space that embeds text,
    pictures and sounds; it asks about the demo world's shapes and sounds, so it means something only for a
    model that knows them."""
    import numpy as np
    from django.core.files.storage import default_storage

    from encoders.demo import synth, synth_eval
    from search.engine import calibration
    from search.engine.rankers import clear_centroids
    from search.engine.search_service import resolve_space
    from search.ingest.ingester import Ingester, IngestInput
    from search.models import EmbeddingSpace

    stored = resolve_space(space)
    if not {Modality.TEXT, Modality.IMAGE, Modality.AUDIO} <= set(stored.modalities):
        return None
    rng = np.random.default_rng(seed)
    pictures = [(c, s) for c in synth.COLOURS for s in synth.SHAPES]
    pictures = [pictures[i] for i in rng.choice(len(pictures), kinds, replace=False)]
    sounds = [(k, p) for k in synth.AUDIO_KINDS for p in synth.PITCHES]
    sounds = [sounds[i] for i in rng.choice(len(sounds), min(kinds, len(sounds)), replace=False)]
    inputs, keys = [], []
    for colour, shape in pictures:
        for _ in range(per_kind):
            inputs.append(IngestInput(data=_png(synth_eval.draw_image(rng, colour, shape).image)))
            keys.append(("image", f"{colour} {shape}"))
    for kind, pitch in sounds:
        for _ in range(per_kind):
            sample = synth_eval.synthesise(rng, kind, pitch)
            inputs.append(IngestInput(data=_wav(sample.waveform, sample.samplerate)))
            keys.append(("audio", f"{pitch} {kind}"))
    figures: dict[str, list[float]] = defaultdict(list)
    # The items are rolled back; the files their ingest wrote into the media storage are deleted after.
    written: list[str] = []
    try:
        with transaction.atomic():
            try:
                Item.objects.filter(hidden=False).update(hidden=True)
                EmbeddingSpace.objects.filter(pk=stored.pk).update(calibration={})
                calibration.clear_cache()
                clear_centroids()
                outcomes = Ingester().ingest_many(inputs)
                written = [name for outcome in outcomes if outcome.status == "added"
                           for name in (outcome.item.media.name, outcome.item.preview.name) if name]
                key_of = {outcome.item.pk: key for outcome, key in zip(outcomes, keys, strict=True) if outcome.item}

                def shown(parts, modality, exclude=()):
                    page = search(SearchRequest(parts=parts, space=space, k=5, exclude_ids=list(exclude),
                                                filters=Filters(modalities=[modality])))
                    return [key_of.get(hit.item.pk, ("?", "?"))[1] for hit in page.hits]

                for (colour, shape) in pictures:
                    got = shown([QueryPart(text=synth.image_query(rng, colour, shape))], Modality.IMAGE)
                    figures["text→image top-1"].append(float(got[:1] == [f"{colour} {shape}"]))
                    figures["text→image precision@5"].append(got.count(f"{colour} {shape}") / 5)
                for (kind, pitch) in sounds:
                    got = shown([QueryPart(text=synth.audio_query(rng, kind, pitch))], Modality.AUDIO)
                    figures["text→audio top-1"].append(float(got[:1] == [f"{pitch} {kind}"]))
                    figures["text→audio precision@5"].append(got.count(f"{pitch} {kind}") / 5)
                for item_id, (modality, key) in key_of.items():
                    got = shown([QueryPart(item_id=item_id)], modality, exclude=[item_id])
                    figures[f"{modality}→{modality} precision@5"].append(got.count(key) / 5)
            finally:
                transaction.set_rollback(True)
    finally:
        calibration.clear_cache()
        clear_centroids()
        kept = set(Item.objects.filter(media__in=written).values_list("media", flat=True))
        kept |= set(Item.objects.filter(preview__in=written).values_list("preview", flat=True))
        for name in set(written) - kept:
            default_storage.delete(name)
    return {"items": len(inputs), "kinds": len(pictures) + len(sounds), "seed": seed,
            "figures": {name: mean(values) for name, values in figures.items()}}


def evaluate(queries: list[GoldenQuery], *, space: str, roots: list[Path], k: int = 10,
             ef_search: int | None = None, golden: Path | None = None, ood: list[str] | None = None,
             long_text: bool = True, cold: bool = False) -> dict:
    """Run every query in one space; the report the command prints and stores (with `cold`, also the cold-start
    figures, `cold_start`)."""
    from search.engine.search_service import resolve_space

    stored_space = resolve_space(space)
    resolver = Resolver(roots)
    rows = [run_query(query, resolver, space=space, k=k, ef_search=ef_search) for query in queries]
    stored_space.refresh_from_db()
    by_pair = defaultdict(list)
    for row in rows:
        if "skipped" not in row:
            by_pair[row["pair"]].append(row)
    return {
        "space": stored_space.name,
        "identity": stored_space.identity,
        "k": k,
        "ndcg_depth": NDCG_DEPTH,
        "ef_search": ef_search or settings.SEARCH_HNSW_EF_SEARCH,
        "items": stored_space.embeddings.filter(segment_start__isnull=True).count(),
        "golden": str(golden) if golden else None,
        "golden_sha256": hashlib.sha256(Path(golden).read_bytes()).hexdigest() if golden else None,
        "created_at": timezone.now().isoformat(),
        "overall": summarise(rows),
        "pairs": {pair: summarise(pair_rows) for pair, pair_rows in sorted(by_pair.items())},
        "skipped": [{"id": row["id"], "reason": row["skipped"]} for row in rows if "skipped" in row],
        "min_relevance": settings.SEARCH_MIN_RELEVANCE,
        "calibration": {key: stored_space.calibration.get(key) for key in ("source", "slope", "midpoint",
                                                                             "golden_pairs", "fitted_at")},
        "out_of_domain": out_of_domain(ood, space=space) if ood else None,
        "cold_start": cold_start(space=space) if cold else None,
        "long_text": long_texts(space=space, k=k) if long_text and Modality.TEXT in stored_space.modalities
        else None,
        "queries": rows,
    }


# --------------------------------------------------------------------------- storing and showing


# Reports kept per space: the latest is shown, a few before it stay for comparison.
KEEP_REPORTS = 20


def save_evaluation(report: dict) -> EvaluationReport:
    """Keep this report as the space's latest evaluation, in the database (every node and worker sees it).

    The same report saved again (the command adds its real-language figures after the first save) replaces its row."""
    space = report["space"]
    with transaction.atomic():
        row = None
        if report.get("created_at"):
            row = EvaluationReport.objects.filter(space=space, report__created_at=report["created_at"]).first()
        if row is None:
            row = EvaluationReport.objects.create(space=space, report=report)
        else:
            row.report = report
            row.save(update_fields=["report"])
        older = EvaluationReport.objects.filter(space=space).values_list("pk", flat=True)[KEEP_REPORTS:]
        EvaluationReport.objects.filter(pk__in=list(older)).delete()
    return row


def latest_evaluation(space_name: str) -> dict | None:
    """The last stored evaluation of a space (what `manage.py evaluate` printed), or None if there is none."""
    row = EvaluationReport.objects.filter(space=space_name).only("report").first()
    report = row.report if row else None
    return report if isinstance(report, dict) and report.get("space") == space_name else None


def _number(value, baseline=None) -> str:
    if value is None:
        return "-"
    text = f"{value:.3f}"
    if baseline is not None:
        text += f" ({value - baseline:+.3f})"
    return text


def format_table(report: dict, baseline: dict | None = None) -> str:
    """The report as a plain-text table; with a baseline report, each figure is followed by its change."""
    k = report["k"]
    header = ["pair", "queries", f"recall@{k}", "MRR", f"nDCG@{report['ndcg_depth']}", f"ANN recall@{k}",
              "exact scans", "kept", "on-topic@5", "recall above", "precision above"]
    lines = []
    for pair, summary in [*report["pairs"].items(), ("overall", report["overall"])]:
        before = (baseline or {}).get("pairs", {}).get(pair) if pair != "overall" else (baseline or {}).get("overall")
        cells = [pair, str(summary["queries"])]
        for key in ("recall", "mrr", "ndcg", "ann_recall"):
            cells.append(_number(summary[key], before.get(key) if before else None))
        share = summary["answered_exact"]
        cells.append("-" if share is None else f"{share:.0%}")
        for key in ("kept", "on_topic5", "recall_above", "precision_above"):
            cells.append(_number(summary.get(key), before.get(key) if before else None))
        lines.append(cells)
    widths = [max(len(row[i]) for row in [header, *lines]) for i in range(len(header))]

    def render(row):
        return "  ".join(cell.ljust(widths[0]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(row))

    title = (f"space {report['space']} ({report['items']:,} vectors, ef_search {report['ef_search']}), "
             f"{report['overall']['queries']} queries")
    out = [title, render(header), render(["-" * w for w in widths]), *[render(row) for row in lines]]
    skipped = report["skipped"]
    if skipped:
        reasons = "; ".join(f"{s['id']}: {s['reason']}" for s in skipped[:5])
        out.append(f"{len(skipped)} skipped: {reasons}" + (" ..." if len(skipped) > 5 else ""))
    out.append("exact scans: share of queries the service answered exactly anyway (a selective filter), "
               "where the ANN recall is 1 by construction.")
    out.append(f"cutoff: min_relevance {report.get('min_relevance')}; kept = share of the relevant items in the "
               f"top {k} that pass it; on-topic@5 = share of the first five results it lets through that are "
               "relevant; recall above = share of all the relevant items it lets through (what a user sees without "
               "asking for weak results); precision above = share of what it lets through that is relevant.")
    long = report.get("long_text")
    if long and long.get("queries"):
        out.append(f"long texts ({LONG_TEXT_PAIR}): {long['documents']} generated documents of 600-1,200 words, "
                   f"each found by what it describes after its first 150 words: first {_number(long['first'])}, "
                   f"recall@{k} {_number(long['recall'])}, MRR {_number(long['mrr'])}, the matching passage shown "
                   f"{_number(long['passage_shown'])}, kept by the cutoff {_number(long['kept'])}")
    ood = report.get("out_of_domain")
    if ood:
        out.append(f"out-of-domain: {ood['queries']} queries over everything stored (a mixed collection as it "
                   f"is), answered \"no close match\": {_number(ood['answered_empty'])}")
    cold = report.get("cold_start")
    if cold:
        out.append(f"cold start ({cold['items']} items of {cold['kinds']} kinds from the independent generator, "
                   "alone in the space, no golden set, default cutoff): " + ", ".join(
                       f"{name} {_number(value)}" for name, value in cold["figures"].items()))
    calibration = report.get("calibration") or {}
    if calibration.get("source"):
        out.append(f"calibration: {calibration['source']} ({calibration.get('golden_pairs')} golden pairs), slope "
                   f"{calibration.get('slope'):.2f}, midpoint z {calibration.get('midpoint'):.2f}, "
                   f"fitted {calibration.get('fitted_at')}")
    return "\n".join(out)


# --------------------------------------------------------------------------- the demo golden set


def make_demo_golden(root: Path, seed: int = 7) -> list[dict]:
    """Golden queries for the demo data in `root` (written by `manage.py loaddemo`), built from its labels.

    Relevance is the label the demo world is built on: colour and shape for images, kind and pitch for sounds.
    Media items are referenced by path relative to `root`, texts by the sha256 of their content.
    """
    import numpy as np

    from encoders.demo import synth
    from search.ingest.prepare import clean_text, text_sha256

    rows = [json.loads(line) for line in (Path(root) / "manifest.jsonl").read_text().splitlines() if line.strip()]
    rng = np.random.default_rng(seed)

    def image_key(labels):
        return labels["colour"], labels["shape"]

    def audio_key(labels):
        return labels["kind"], labels["pitch"]

    images, clips, texts = defaultdict(list), defaultdict(list), defaultdict(list)
    for row in rows:
        labels = row["labels"]
        if row["modality"] == "image":
            images[image_key(labels)].append(row["path"])
        elif row["modality"] == "audio":
            clips[audio_key(labels)].append(row["path"])
        else:
            key = image_key(labels) if "colour" in labels else audio_key(labels)
            texts[key].append(text_sha256(clean_text(row["text"])))

    only = {modality: {"modalities": [modality]} for modality in ("image", "audio", "text")}
    golden = []
    for colour, shape in sorted(images):
        golden.append({"id": f"t2i-{colour}-{shape}", "query": synth.image_query(rng, colour, shape),
                       "relevant": images[colour, shape], "filters": only["image"]})
    for kind, pitch in sorted(clips):
        golden.append({"id": f"t2a-{kind}-{pitch}", "query": synth.audio_query(rng, kind, pitch),
                       "relevant": clips[kind, pitch], "filters": only["audio"]})
    for key in sorted(texts):
        phrase = synth.image_query(rng, *key) if key[0] in synth.COLOURS else synth.audio_query(rng, *key)
        golden.append({"id": f"t2t-{'-'.join(key)}", "query": phrase, "relevant": texts[key],
                       "filters": only["text"]})
    # Query by example: the first file of a class stands for it; the others of its class are relevant.
    for name, groups, modality in (("i2i", images, "image"), ("a2a", clips, "audio")):
        classes = [key for key in sorted(groups) if len(groups[key]) >= 2]
        step = max(1, len(classes) // 16)
        for key in classes[::step][:16]:
            example, *others = groups[key]
            golden.append({"id": f"{name}-{'-'.join(key)}", "query": {"file": example}, "relevant": others,
                           "filters": only[modality]})
    # A stored item as the query (its stored vector, as "more like this" does).
    for key in [k for k in sorted(images) if len(images[k]) >= 2][1::16]:
        example, *others = images[key]
        golden.append({"id": f"item2i-{'-'.join(key)}", "query": {"item": example}, "relevant": others,
                       "filters": only["image"]})
    # Weighted mixes: an image of one colour, plus the word for another, minus the word for its own.
    colours = list(synth.COLOURS)
    for colour, shape in sorted(images)[::8]:
        other = colours[(colours.index(colour) + 3) % len(colours)]
        if (other, shape) not in images:
            continue
        golden.append({
            "id": f"mix-{colour}-to-{other}-{shape}",
            "query": {"parts": [{"file": images[colour, shape][0], "weight": 1.0},
                                {"text": other, "weight": 1.0}, {"text": colour, "weight": -1.0}]},
            "relevant": images[other, shape], "filters": only["image"], "target": "image",
        })
    return golden
