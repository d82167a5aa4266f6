"""Relevance you can compare: raw cosine similarity -> a calibrated relevance in [0, 1].

Raw cosine means different things for different pairs of modalities (CLIP's modality gap: any text
is closer to any text than to the image it describes) and for different spaces. So each space keeps,
for every query modality -> item modality pair, the distribution of similarities between *unrelated*
pairs, sampled from its own data (random items of the query's modality against random items of the
target's). A similarity is first expressed as how many of those standard deviations it stands above
the unrelated mean (z); a logistic on z, fitted on a golden set's relevant pairs against hard
negatives (the non-relevant items that rank highest for the same queries), gives the probability
that the item is relevant. The same two logistic numbers serve every pair: z makes pairs comparable.

The calibration is stored on the space (`EmbeddingSpace.calibration`), shown in the admin, refitted by
`manage.py calibrate` (and after `loaddemo`), and its unrelated-pair statistics are refreshed from the
data when the number of items of a modality drifts by more than a quarter since the fit.

Whole items are judged per query as well (issue 26, `judge`): that pairwise z holds only where the space has
data of the query's own modality and a golden set fitted its midpoint, so it failed on a cold database, on
broad queries and on pictures and sounds as queries. A whole item's similarity is now measured against the
query's own distribution over a random sample of the target modality (its median: the query's unrelated
level), in units of that modality's own spread, so it needs nothing but the items; a break in the scores
keeps a precise query to its few matches while a broad one keeps everything that fits; and a picture or a
sound as query must come as close as the collection's items come to their nearest neighbours. A golden set
refines the midpoints. docs/relevance.md explains the method and where it fails.
"""

import logging
import math
import threading
import time
import zlib
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
from django.db import connection, transaction
from django.utils import timezone

from search.engine.rankers import meaningless_vectors_sql
from search.models import EmbeddingSpace, Modality
from search.storage import knn, spaces

# Without a golden set: "relevant" means 2.5 standard deviations above unrelated pairs (the logistic's
# midpoint; the demo space's golden fit put it at 2.3) and the probability rises from 0.12 to 0.88 over
# one standard deviation either side of it.
DEFAULT_SLOPE = 2.0
DEFAULT_MIDPOINT = 2.5
# A text matched by its best passage, judged on its corrected z (z_score), before any fit: the demo
# space's fit on generated long documents (search.engine.evaluation.long_texts) put it at -2.9 (-1.2 for the
# first demo model), because the best of many passages that truly match stands out less than one
# caption that does, and everyday prose spreads the unrelated passages' similarities wide.
DEFAULT_PASSAGE_MIDPOINT = -2.8
# The per-query judgement (`judge`), with no golden set: relevance 0.5 where an item stands this many of its
# modality's spreads above the query's median similarity to that modality (a description: text or a raw
# vector, and an example in its own modality; an example -- a picture, a sound or a stored item as the query --
# of another modality than the item's), rising with QUERY_SLOPE. Measured on the relevance benchmark (cold,
# broad, mixed; bench/bench_relevance.py): at 1.5 a cold database's text->image precision@5 was 0.87 (queries
# the model places near every picture, a high level, kept 3 of their 6); at 1.3 0.91, broad precision 0.97 -> 0.92.
DESCRIPTION_MIDPOINT = 1.3
EXAMPLE_MIDPOINT = 2.0
QUERY_SLOPE = 3.0
# A break in a query's scores ends its top cluster when the gap is BREAK_SPREAD times the cluster's own
# spread and BREAK_RANGE of the distance from the query's unrelated level to its best match. Measured (the
# relevance benchmark's worlds): a precise query's break before its half-matches spans 0.14-0.33 of that
# distance, a gap inside one kind's matches (drawn two ways, two pitches of a broad query's sounds) up to 0.19.
BREAK_SPREAD = 2.0
BREAK_RANGE = 0.2
# An example is like something stored when its nearest item of its own kind is as close as a quarter of the
# items come to their nearest neighbour, less CLOSE_MARGIN spreads; never below CLOSE_FLOOR spreads above the
# modality's median. Unlike anything stored, it has no close match; like something, its matches are judged as
# a description's (its level, the break): items of its kind drawn differently meet it below that level.
CLOSE_QUANTILE = 0.25
CLOSE_MARGIN = 0.2
CLOSE_FLOOR = 2.0
# How far a golden set may move a query midpoint: down by up to a spread, never up. A golden set of precise
# queries says nothing of how far a broad query's matches reach: on the demo data its fit (2.55) kept 0.885 of
# the broad queries' matches at a midpoint raised by a quarter, 0.954 at the default; the break keeps precise
# queries to their matches instead.
GOLDEN_LOWER, GOLDEN_RAISE = 1.0, 0.0
REFERENCE_SAMPLE = 1024  # items per modality the query is compared with
MIN_REFERENCE = 8  # fewer items of a modality than this: its spread is taken from all the space's items
# Fewer passages that can be matched than this: a passage match keeps the pairwise judgement (`relevance`, with
# the long-text probe's fit), as a handful of passages tell nothing of how unrelated ones spread.
MIN_PASSAGES = 64
DEFAULT_SPREAD = 0.25  # ... and from this when the whole space holds fewer
REFERENCE_TTL = 300.0
QUERY_SAMPLE = 256
TARGET_SAMPLE = 2048
DRIFT = 0.25
PASSAGE = "passage"  # the target of a text's passages in `pairs`
COUNTS_TTL = 60.0
# A sample of more items than this many times its size reads a random share of the table's pages (TABLESAMPLE
# SYSTEM), about SAMPLE_OVERREAD times the rows it needs, instead of ordering every row by random(): at a million
# items that scan took seconds, in the request that found the sample stale.
SAMPLE_SCAN_BELOW = 20
SAMPLE_OVERREAD = 4
_NORMAL = NormalDist()
_counts_cache: dict[int, tuple[float, None, dict]] = {}
_references: dict[tuple, tuple[float, str | None, np.ndarray]] = {}
# What this process is refreshing now (see _kept): one thread computes, the others use what was kept.
_refreshing: set = set()
_refreshing_lock = threading.Lock()
_key_locks: dict = {}
log = logging.getLogger(__name__)


def _kept(key, cache: dict, ttl: float, compute, version=None):
    """A value kept in `cache` for `ttl` seconds (and while `version` is the one it was computed for), computed
    by one thread of the process at a time.

    Searches run in several threads of a server process at once, and what is kept here (modality counts, the
    reference samples) costs a scan of the space: each thread that found it stale computed it again, all at
    once, and on a large space every search waited behind them (a million items: p99 62 s through the API).
    Now a stale value is still used by every thread but the one that refreshes it; only the first value is
    waited for, and computed once.
    """
    cached = cache.get(key)
    if cached is not None and cached[1] == version and time.monotonic() - cached[0] < ttl:
        return cached[2]
    if cached is not None:
        with _refreshing_lock:
            if key in _refreshing:
                return cached[2]
            _refreshing.add(key)
        try:
            value = compute()
            cache[key] = (time.monotonic(), version, value)
            return value
        finally:
            with _refreshing_lock:
                _refreshing.discard(key)
    with _refreshing_lock:
        lock = _key_locks.setdefault(key, threading.Lock())
    with lock:
        cached = cache.get(key)
        if cached is not None and cached[1] == version and time.monotonic() - cached[0] < ttl:
            return cached[2]
        value = compute()
        cache[key] = (time.monotonic(), version, value)
        return value


def _sampled_rows(space: EmbeddingSpace, where: str, params: list, n: int, seed: float, matching: int | None,
                  order: str = "ORDER BY random()") -> list[str]:
    """The vectors (pgvector text) of up to n random rows of the space's embeddings that meet `where`.

    `matching`: how many rows meet it (None: unknown). Where that is more than SAMPLE_SCAN_BELOW times n, a
    random share of the table's pages is read (TABLESAMPLE SYSTEM, each row kept with probability p, so about
    SAMPLE_OVERREAD x n rows whatever the table's layout) and ordered by random(); should that give fewer than n
    rows (pages of rows unlike the rest), every row is read as for a small space. Rows stored together share a
    page, so a page sample is a little less even than a row sample: a burst of near-identical photos comes in
    whole or not at all. With n around a thousand that moves a median or a spread by little; it is the price of
    reading a few thousand rows instead of all of them.
    """
    select = ("SELECT e.vector::text FROM search_embedding e{sample} JOIN search_item i ON i.id = e.item_id"
              f" WHERE e.space_id = %s AND {where} {order} LIMIT %s")
    with connection.cursor() as cursor:
        cursor.execute("SELECT setseed(%s)", [seed])
        if matching is not None and matching > SAMPLE_SCAN_BELOW * n:
            share = min(100.0, 100.0 * SAMPLE_OVERREAD * n / matching)
            cursor.execute(select.format(sample=" TABLESAMPLE SYSTEM (%s) REPEATABLE (%s)"),
                           [share, int(seed * 1_000_000), int(space.pk), *params, n])
            rows = [row[0] for row in cursor.fetchall()]
            if len(rows) >= n:
                return rows
        cursor.execute(select.format(sample=""), [int(space.pk), *params, n])
        return [row[0] for row in cursor.fetchall()]


def _as_vectors(space: EmbeddingSpace, rows: list[str]) -> np.ndarray:
    return np.array([knn.parse_vector(text) for text in rows]) if rows else np.zeros((0, space.dimension))


def _sample_vectors(space: EmbeddingSpace, modality: str, n: int, seed: float,
                    counts: dict[str, int] | None = None) -> np.ndarray:
    """Up to n random whole-item vectors of one modality (hidden items excluded)."""
    counts = modality_counts(space, refresh=True) if counts is None else counts
    total = counts.get(modality, 0)
    if total == 0:
        return np.zeros((0, space.dimension))
    if total > SAMPLE_SCAN_BELOW * n:
        rows = _sampled_rows(space, "e.segment_start IS NULL AND i.modality = %s AND NOT i.hidden", [modality], n,
                             seed, total)
    else:
        # The first rows that pass a coin toss: no sort, and even enough at this size.
        rows = _sampled_rows(space, "e.segment_start IS NULL AND i.modality = %s AND NOT i.hidden"
                             " AND random() < %s", [modality, min(1.0, 2.0 * n / total)], n, seed, None, order="")
    return _as_vectors(space, rows)


def _sample_all(space: EmbeddingSpace, modality: str | None, n: int, seed: float,
                counts: dict[str, int] | None = None) -> np.ndarray:
    """Up to n random whole-item vectors of one modality (None: of any; PASSAGE: passages of long texts), hidden
    items excluded, and those the space leaves out of every match (its "unknown" point, search.engine.rankers):
    what a query is judged against is what it can be matched with."""
    no_meaning, no_meaning_params = meaningless_vectors_sql(space)
    rows_wanted = "e.passage" if modality == PASSAGE else \
        "e.segment_start IS NULL AND (%s::text IS NULL OR i.modality = %s)"
    params = [] if modality == PASSAGE else [modality, modality]
    matching = None
    if counts is not None and modality != PASSAGE:
        matching = sum(counts.values()) if modality is None else counts.get(modality, 0)
    rows = _sampled_rows(space, f"NOT i.hidden AND {rows_wanted}{no_meaning}", [*params, *no_meaning_params], n,
                         seed, matching)
    return _as_vectors(space, rows)


def _spread_and_close(vectors: np.ndarray) -> dict | None:
    """The median and the spread (from the lower half, so that related pairs do not widen it) of the
    similarity between distinct items, and the similarity at which a tenth of them meet their nearest
    neighbour; None for fewer than two items."""
    if len(vectors) < 2:
        return None
    sims = vectors @ vectors.T
    np.fill_diagonal(sims, np.nan)
    values = sims[np.isfinite(sims)]
    median = float(np.median(values))
    spread = float(max((median - np.quantile(values, 0.1)) / 1.2816, 1e-3))
    nearest = np.nanmax(sims, axis=1)
    return {"median": median, "spread": spread, "close": float(np.quantile(nearest, CLOSE_QUANTILE)),
            "n": int(len(vectors))}


def reference_stats(space: EmbeddingSpace, seed: float = 0.42, counts: dict[str, int] | None = None
                    ) -> dict[str, dict]:
    """Per modality: the median and spread of item-to-item similarity and the nearest-neighbour level
    (`_spread_and_close`), from a random sample of the space's own items. A modality with fewer than
    MIN_REFERENCE items borrows the spread of all the space's items (DEFAULT_SPREAD below that) and has no
    nearest-neighbour level of its own."""
    counts = modality_counts(space, refresh=True) if counts is None else counts
    pooled = _spread_and_close(_sample_all(space, None, REFERENCE_SAMPLE, seed, counts)) or {}
    out = {}
    for modality in [m for m in Modality.values if counts.get(m)]:
        own = _spread_and_close(_sample_all(space, modality, REFERENCE_SAMPLE, seed, counts)) \
            if counts[modality] >= MIN_REFERENCE else None
        out[modality] = own if own and own["n"] >= MIN_REFERENCE else {
            "median": pooled.get("median", 0.0),
            "spread": pooled["spread"] if pooled.get("n", 0) >= MIN_REFERENCE else DEFAULT_SPREAD,
            "close": None, "n": int(counts[modality])}
    passages = _spread_and_close(_sample_all(space, PASSAGE, REFERENCE_SAMPLE, seed))
    if passages and passages["n"] >= MIN_PASSAGES:
        out[PASSAGE] = passages
    return out


def _reference_vectors(space: EmbeddingSpace, calibration: dict, modality: str) -> np.ndarray:
    """The sample of a modality's items a query is compared with, kept in the process for REFERENCE_TTL seconds
    and renewed with the calibration (which is refitted when the data drifts); the old sample serves the
    searches that come while one of them draws the new one."""
    return _kept((space.pk, space.identity, modality), _references, REFERENCE_TTL,
                 lambda: _sample_all(space, modality, REFERENCE_SAMPLE, 0.42, modality_counts(space)),
                 version=calibration.get("fitted_at"))


def modality_counts(space: EmbeddingSpace, *, refresh: bool = False) -> dict[str, int]:
    """Whole items per modality in the space (hidden ones left out), kept COUNTS_TTL seconds (`refresh`: now)."""
    if refresh:
        counts = _count_modalities(space)
        _counts_cache[space.pk] = (time.monotonic(), None, counts)
        return counts
    return _kept(space.pk, _counts_cache, COUNTS_TTL, lambda: _count_modalities(space))


def _count_modalities(space: EmbeddingSpace) -> dict[str, int]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT i.modality, count(*) FROM search_embedding e JOIN search_item i ON i.id = e.item_id"
            " WHERE e.space_id = %s AND e.segment_start IS NULL AND NOT i.hidden GROUP BY i.modality",
            [int(space.pk)],
        )
        return dict(cursor.fetchall())


def _sample_passages(space: EmbeddingSpace, n: int, seed: float) -> np.ndarray:
    """Up to n random passage vectors of long texts."""
    return _as_vectors(space, _sampled_rows(space, "e.passage AND NOT i.hidden", [], n, seed, None))


def unrelated_stats(space: EmbeddingSpace, seed: float = 0.42, counts: dict[str, int] | None = None
                    ) -> dict[str, dict]:
    """Mean and spread of the similarity of unrelated pairs, for every pair of modalities with data; and,
    where texts have passages, of a query against one passage (`<modality>->passage`)."""
    modalities = [m for m in Modality.values if m in space.modalities]
    counts = modality_counts(space, refresh=True) if counts is None else counts
    samples = {m: _sample_vectors(space, m, TARGET_SAMPLE, seed, counts) for m in modalities}
    if Modality.TEXT in modalities:
        samples[PASSAGE] = _sample_passages(space, TARGET_SAMPLE, seed)
    pairs = {}
    for query_modality in modalities:
        queries = samples[query_modality][:QUERY_SAMPLE]
        for target_modality in [*modalities, *([PASSAGE] if PASSAGE in samples else [])]:
            targets = samples[target_modality]
            if len(queries) < 2 or len(targets) < 2:
                continue
            sims = queries @ targets.T
            if query_modality == target_modality:
                # An item against itself is not an unrelated pair.
                n = min(len(queries), len(targets))
                sims[np.arange(n), np.arange(n)] = np.nan
            values = sims[np.isfinite(sims)]
            pairs[f"{query_modality}->{target_modality}"] = {
                "mean": float(values.mean()), "std": float(max(values.std(), 1e-3)), "n": int(values.size),
            }
    return pairs


def fit_logistic(z: np.ndarray, labels: np.ndarray, slopes: np.ndarray | None = None) -> tuple[float, float]:
    """Slope and midpoint of P(relevant | z) = sigmoid(slope * (z - midpoint)) maximising the likelihood, with
    both classes weighted equally (the cutoff must not depend on how many negatives were sampled).

    A grid search rather than Newton's method: with well-separated classes the likelihood has no finite
    optimum, and a grid keeps the answer finite and the slope sensible.
    """
    z = np.asarray(z, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.float64)
    weights = np.where(labels == 1, 0.5 / max(labels.sum(), 1), 0.5 / max((1 - labels).sum(), 1))
    slopes = np.geomspace(0.25, 8.0, 32) if slopes is None else slopes
    midpoints = np.linspace(*np.quantile(z, [0.01, 0.99]), 200)
    best = (-np.inf, DEFAULT_SLOPE, DEFAULT_MIDPOINT)
    for slope in slopes:
        logits = slope * (z[None, :] - midpoints[:, None])
        # log(sigmoid(x)) and log(1 - sigmoid(x)) without overflow.
        likelihood = ((labels * -np.logaddexp(0.0, -logits) + (1 - labels) * -np.logaddexp(0.0, logits))
                      * weights).sum(axis=-1)
        j = int(np.argmax(likelihood))
        if likelihood[j] > best[0]:
            best = (float(likelihood[j]), float(slope), float(midpoints[j]))
    return best[1], best[2]


def calibrate(space: EmbeddingSpace, golden: list[tuple[str, np.ndarray, list[tuple]]] | None = None,
              *, save: bool = True, extra_pairs: dict | None = None) -> dict:
    """Fit and (by default) store the space's calibration.

    `golden`: for each golden query, its modality, its vector, and (item modality, similarity, relevant?[,
    passages]) for the items it ranks highest, relevant ones included. `extra_pairs`: unrelated-pair
    statistics measured elsewhere, for pairs the space's own data lacks (the passages of the long-text
    probe, search.engine.evaluation.long_texts, whose documents are rolled back).
    """
    counts = modality_counts(space, refresh=True)
    pairs = unrelated_stats(space, counts=counts)
    for key, stats in (extra_pairs or {}).items():
        pairs.setdefault(key, dict(stats))
    slope, midpoint, source, used = DEFAULT_SLOPE, DEFAULT_MIDPOINT, "default", 0
    query_midpoints = {}
    if golden:
        query_midpoints = _fit_query_midpoints(golden)
        by_pair: dict[str, tuple[list, list]] = {}
        for query_modality, _, scored in golden:
            for item_modality, similarity, relevant, *rest in scored:
                count = rest[0] if rest else 0
                key = _pair_key(query_modality, item_modality, count)
                if key in pairs:
                    zs, labels = by_pair.setdefault(key, ([], []))
                    zs.append(z_score({"pairs": pairs}, query_modality, item_modality, similarity, passages=count))
                    labels.append(1.0 if relevant else 0.0)
        # Texts matched by a passage get a midpoint of their own (below) but do not move everyone's.
        whole = {key: value for key, value in by_pair.items() if not key.endswith(f"->{PASSAGE}")}
        zs = np.array([z for pair_zs, _ in whole.values() for z in pair_zs])
        labels = np.array([label for _, pair_labels in whole.values() for label in pair_labels])
        if 0 < labels.sum() < len(labels):
            slope, midpoint = fit_logistic(zs, labels)
            source, used = "golden", len(labels)
        if query_midpoints:
            source, used = "golden", max(used, sum(fit["pairs"] for fit in query_midpoints.values()))
        # Where the golden set covers a pair well, that pair gets its own midpoint (same slope): z puts
        # pairs on one scale, but not perfectly (a sound's neighbours are denser than a picture's).
        for key, (pair_zs, pair_labels) in by_pair.items():
            positives = sum(pair_labels)
            if positives >= 10 and len(pair_labels) - positives >= 10:
                pairs[key]["midpoint"] = fit_logistic(np.array(pair_zs), np.array(pair_labels),
                                                      slopes=np.array([slope]))[1]
    calibration = {
        "pairs": pairs, "slope": slope, "midpoint": midpoint, "source": source, "golden_pairs": used,
        "modalities": reference_stats(space, counts=counts), "query_midpoints": query_midpoints,
        "counts": counts, "identity": space.identity,
        "fitted_at": timezone.now().isoformat(timespec="seconds"),
    }
    if save:
        space.calibration = calibration
        EmbeddingSpace.objects.filter(pk=space.pk).update(calibration=calibration)
        spaces.forget(space.name)
    return calibration


def _drifted(calibration: dict, counts: dict) -> bool:
    fitted = calibration.get("counts") or {}
    for modality in set(fitted) | set(counts):
        before, now = fitted.get(modality, 0), counts.get(modality, 0)
        if abs(now - before) > DRIFT * max(before, 20):
            return True
    return False


def current(space: EmbeddingSpace) -> dict:
    """The space's calibration, refitting the unrelated-pair statistics when the data has drifted (or the
    encoder changed) and keeping the golden fit's slope and midpoint.

    One search refits, the others meanwhile judge by the calibration they have: in this process a lock, across
    processes a PostgreSQL advisory lock per space. (Every search that found the data drifted refitted it at
    once: on a million items, a scan of the space in each of a server's threads.) A space never calibrated, or
    whose encoder changed, has nothing to judge by: its searches wait for the one that fits it.
    """
    calibration = space.calibration or {}
    usable = _judges(calibration, space)
    if usable and not _drifted(calibration, modality_counts(space)):
        return calibration
    lock = _refit_locks.setdefault(space.pk, threading.Lock())
    if not lock.acquire(blocking=not usable):
        return calibration  # another thread of this process is refitting it
    try:
        with transaction.atomic():
            with connection.cursor() as cursor:
                key = zlib.crc32(f"calibrate:{space.pk}".encode())
                if usable:
                    cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [key])
                    if not cursor.fetchone()[0]:
                        return calibration  # another process is refitting it
                else:
                    cursor.execute("SELECT pg_advisory_xact_lock(%s)", [key])
            # Refitted meanwhile by the search that held the lock (here or in another process)?
            stored = EmbeddingSpace.objects.filter(pk=space.pk).values_list("calibration", flat=True).first() or {}
            if stored.get("fitted_at") != calibration.get("fitted_at") and _judges(stored, space) \
                    and not _drifted(stored, modality_counts(space, refresh=True)):
                space.calibration = stored
                spaces.forget(space.name)
                return stored
            return _refit(space, calibration)
    finally:
        lock.release()


_refit_locks: dict[int, threading.Lock] = {}


def _judges(calibration: dict, space: EmbeddingSpace) -> bool:
    """Whether a calibration can judge this space's searches: fitted, with per-modality statistics, for its encoder."""
    return bool(calibration.get("pairs")) and "modalities" in calibration \
        and calibration.get("identity") == space.identity


def _refit(space: EmbeddingSpace, calibration: dict) -> dict:
    started = time.monotonic()
    fresh = calibrate(space, save=False)
    if calibration.get("identity") == space.identity:
        fresh |= {key: calibration[key] for key in ("slope", "midpoint", "source", "golden_pairs",
                                                    "query_midpoints") if key in calibration}
        for key, stats in (calibration.get("pairs") or {}).items():
            if "midpoint" in stats and key in fresh["pairs"]:
                fresh["pairs"][key]["midpoint"] = stats["midpoint"]
            elif key.endswith(f"->{PASSAGE}") and key not in fresh["pairs"]:
                fresh["pairs"][key] = stats  # measured on the long-text probe: no passages here to refresh it
    space.calibration = fresh
    EmbeddingSpace.objects.filter(pk=space.pk).update(calibration=fresh)
    spaces.forget(space.name)  # the row kept for searches is stale now
    log.info("calibration of space %s refitted from its data in %.1f s", space.name, time.monotonic() - started)
    return fresh


def _pair_key(query_modality: str, item_modality: str, passages: int) -> str:
    return f"{query_modality}->{PASSAGE if passages and item_modality == Modality.TEXT else item_modality}"


def z_score(calibration: dict, query_modality: str, item_modality: str, similarity: float, *,
            passages: int = 0) -> float | None:
    """How many standard deviations above unrelated pairs a similarity stands (None: no statistics).

    A text with passages is matched by the best of its vectors, and the best of many unrelated
    passages is high by chance alone (the demo's documents have ~40: their best unrelated passage
    stands ~2.2 deviations up). So its similarity is judged as a passage against unrelated passages,
    and its tail probability p becomes the chance that any of its n+1 vectors does as well,
    1 - (1 - p)^(n+1) (Šidák), before it is turned back into a z. A text without passages is unchanged.
    """
    table = calibration.get("pairs") or {}
    stats = table.get(f"{query_modality}->{item_modality}")
    if stats is None:
        # No data for that pair yet: judge against the item modality's own spread.
        stats = table.get(f"{item_modality}->{item_modality}")
    if passages and item_modality == Modality.TEXT:
        stats = table.get(f"{query_modality}->{PASSAGE}", stats)
    if stats is None:
        return None
    z = (similarity - stats["mean"]) / stats["std"]
    if not passages:
        return z
    tail = 0.5 * math.erfc(z / math.sqrt(2.0))
    if tail <= 0.0:
        return z
    any_of = -math.expm1((passages + 1) * math.log1p(-min(tail, 1.0 - 1e-16)))
    return -_NORMAL.inv_cdf(min(max(any_of, 1e-300), 1.0 - 1e-16))


def relevance(calibration: dict, query_modality: str, item_modality: str, similarity: float, *,
              passages: int = 0) -> float:
    z = z_score(calibration, query_modality, item_modality, similarity, passages=passages)
    if z is None:
        return float(min(1.0, max(0.0, similarity)))
    key = _pair_key(query_modality, item_modality, passages)
    stats = (calibration.get("pairs") or {}).get(key) or {}
    slope = calibration.get("slope", DEFAULT_SLOPE)
    fallback = DEFAULT_PASSAGE_MIDPOINT if key.endswith(f"->{PASSAGE}") else calibration.get("midpoint",
                                                                                           DEFAULT_MIDPOINT)
    midpoint = stats.get("midpoint", fallback)
    return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, slope * (z - midpoint)))))


# --------------------------------------------------------------------------- per query (issue 26)


@dataclass
class Judged:
    relevance: float
    z: float | None = None  # stands this many of its modality's spreads above the query's unrelated level
    demoted: bool = False  # below the query's top cluster, or (an example) not as close as neighbours come
    kind: str | None = None  # "description" or "example": which midpoint judged it (None: a passage match)


def judge(space: EmbeddingSpace, calibration: dict, vector: np.ndarray | None, query_modality: str | None,
          example: bool, candidates: dict[int, tuple[str, float, int]], *,
          nearest_own: float | None = None) -> dict[int, Judged]:
    """Relevance of each candidate (id -> (item modality, cosine similarity, passages)) to one query.

    Per target modality: the query's unrelated level is its median similarity to a random sample of that
    modality's items, and z = (similarity - level) / the modality's spread; relevance is a logistic on z
    (midpoint DESCRIPTION_MIDPOINT or EXAMPLE_MIDPOINT, or the golden set's). Then two structural rules, each
    only ever lowering a relevance below 0.5 and keeping the order:

    - the top cluster: among the candidates that pass, a gap larger than BREAK_SPREAD times the spread of
      those above it (and than BREAK_RANGE of the best match's height) ends the query's matches: "a red
      circle" keeps the red circles, not the red squares; "circle" has no such break and keeps every circle;
    - an example (a picture or a sound as query) whose nearest item of its own modality (`nearest_own`) does
      not come as close as items of the collection come to their nearest neighbour is unlike anything stored:
      nothing, of its own modality or another, is a close match to it (a photo the model reads as "some
      shape", a diagram that is no caption). An example like something stored is judged as above.

    A text matched by one of its passages is judged against a sample of passages (the query's level among
    them, their spread) and as the best of its n + 1 vectors (`_best_of`), where the space has MIN_PASSAGES
    that can be matched; for an example, against the whole texts where it has fewer. Otherwise, and for a
    raw-vector query with no vector to compare (None), the pairwise judgement (`relevance`).
    """
    out: dict[int, Judged] = {}
    by_modality: dict[str, list[tuple[int, float]]] = {}
    tries: dict[int, int] = {}
    for item_id, (item_modality, similarity, passages) in candidates.items():
        if vector is None:
            out[item_id] = Judged(relevance(calibration, query_modality or item_modality, item_modality, similarity,
                                            passages=passages))
        elif passages and item_modality == Modality.TEXT:
            if PASSAGE in (calibration.get("modalities") or {}) or example:
                # An example (a picture, a sound) has no pairwise fit for passages: the long-text probe fitted
                # text queries. Too few passages to sample, it is judged against the whole texts instead, as the
                # best of the text's n + 1 vectors, and held to the same "unlike anything stored" rule.
                target = PASSAGE if PASSAGE in (calibration.get("modalities") or {}) else Modality.TEXT
                by_modality.setdefault(target, []).append((item_id, similarity))
                tries[item_id] = passages + 1
            else:
                out[item_id] = Judged(relevance(calibration, query_modality or item_modality, item_modality,
                                                similarity, passages=passages))
        else:
            by_modality.setdefault(item_modality, []).append((item_id, similarity))
    known = calibration.get("modalities") or {}
    for modality, scored in by_modality.items():
        # An example in its own modality is held to the nearest-neighbour level below, and otherwise judged as a
        # description; an example of another modality (a picture for sounds) has no such level: a higher bar.
        kind = "example" if example and modality != query_modality else "description"
        midpoint = _query_midpoint(calibration, kind)
        stats = known.get(modality) or {}
        spread = stats.get("spread") or DEFAULT_SPREAD
        reference = _reference_vectors(space, calibration, modality)
        level = float(np.median(reference @ vector)) if len(reference) else stats.get("median", 0.0)
        scored.sort(key=lambda pair: -pair[1])
        judged = []
        for item_id, similarity in scored:
            z = _best_of((similarity - level) / spread, tries.get(item_id, 1))
            judged.append([item_id, similarity, z, _logistic(QUERY_SLOPE * (z - midpoint)), False])
        _cut_at_break(judged, level)
        close = _close_level(known.get(query_modality) or {}) if example else None
        nearest = nearest_own if nearest_own is not None else (
            scored[0][1] if scored and modality == query_modality else None)
        if close is not None and nearest is not None and nearest < close:
            # Unlike anything stored: nothing is a close match to it, of its own kind or of another.
            for row in judged:
                lowered = min(row[3], 0.49 * _logistic((row[1] - close) / (0.1 * spread)))
                row[4] = row[4] or row[3] >= 0.5 > lowered
                row[3] = lowered
        for item_id, _, z, value, demoted in judged:
            out[item_id] = Judged(float(value), float(z), demoted, kind)
    return out


def _query_midpoint(calibration: dict, kind: str) -> float:
    """The midpoint for a description or an example: the default, or a golden set's fit within the bounds
    (applied when read, so that a fit stored under older bounds follows the current ones)."""
    default = EXAMPLE_MIDPOINT if kind == "example" else DESCRIPTION_MIDPOINT
    fit = (calibration.get("query_midpoints") or {}).get(kind) or {}
    fitted = fit.get("fitted", fit.get("midpoint"))
    return default if fitted is None else float(min(default + GOLDEN_RAISE, max(default - GOLDEN_LOWER, fitted)))


def _close_level(stats: dict) -> float | None:
    """The similarity an example must reach in its own modality (None: too few items there to tell)."""
    if stats.get("close") is None:
        return None
    spread = stats.get("spread") or DEFAULT_SPREAD
    return max(stats["close"] - CLOSE_MARGIN * spread, stats.get("median", 0.0) + CLOSE_FLOOR * spread)


def _best_of(z: float, tries: int) -> float:
    """The z of the best of `tries` chances (a text's passages and itself) as if it were one: its tail
    probability p becomes 1 - (1 - p)^tries (Šidák) before it is turned back into a z."""
    if tries <= 1:
        return z
    tail = 0.5 * math.erfc(z / math.sqrt(2.0))
    if tail <= 0.0:
        return z
    any_of = -math.expm1(tries * math.log1p(-min(tail, 1.0 - 1e-16)))
    return -_NORMAL.inv_cdf(min(max(any_of, 1e-300), 1.0 - 1e-16))


def _cut_at_break(judged: list[list], level: float) -> None:
    """Lower the candidates after the first break in the passing ones' scores (rows: id, similarity, z,
    relevance, demoted; best first) below 0.5, in proportion to their height above the query's level."""
    passing = [row for row in judged if row[3] >= 0.5]
    if len(passing) < 2:
        return
    top = passing[0][1]
    for above, below in zip(passing, passing[1:], strict=False):
        gap = above[1] - below[1]
        if gap > BREAK_SPREAD * (top - above[1]) and gap > BREAK_RANGE * (top - level):
            height = max(below[1] - level, 1e-9)
            for row in judged:
                if row[1] <= below[1]:
                    lowered = min(row[3], 0.49 * max(0.0, row[1] - level) / height)
                    row[4] = row[4] or row[3] >= 0.5 > lowered
                    row[3] = lowered
            return


def _logistic(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, x))))


def _fit_query_midpoints(golden) -> dict:
    """The per-query midpoints refined on a golden set: for descriptions and for examples, a logistic on z of
    the relevant items against the non-relevant ones the structural rules leave standing (the slope stays
    QUERY_SLOPE), moved from the default by at most GOLDEN_LOWER down and GOLDEN_RAISE up."""
    rows: dict[str, tuple[list, list]] = {}
    for _, _, scored in golden:
        for _, _, relevant, *rest in scored:
            extra = rest[1] if len(rest) > 1 else None
            if not isinstance(extra, dict) or extra.get("z") is None or (extra.get("demoted") and not relevant):
                continue
            zs, labels = rows.setdefault(extra["kind"], ([], []))
            zs.append(extra["z"])
            labels.append(1.0 if relevant else 0.0)
    out = {}
    for kind, (zs, labels) in rows.items():
        positives = sum(labels)
        if positives < 10 or len(labels) - positives < 10:
            continue
        default = EXAMPLE_MIDPOINT if kind == "example" else DESCRIPTION_MIDPOINT
        fitted = fit_logistic(np.array(zs), np.array(labels), slopes=np.array([QUERY_SLOPE]))[1]
        out[kind] = {"midpoint": float(min(default + GOLDEN_RAISE, max(default - GOLDEN_LOWER, fitted))),
                     "fitted": float(fitted), "pairs": len(labels)}
    return out


def clear_cache() -> None:
    _counts_cache.clear()
    _references.clear()
