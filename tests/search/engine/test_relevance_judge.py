"""The per-query judgement of relevance (search.engine.calibration.judge, issue 26) on scores made to order:
what it keeps of a precise query, a broad one and a picture as the query, and how far a golden set moves it.

The scores are the candidates' cosine similarities as the ranking hands them over; the query's unrelated level
comes from a reference sample of random directions (median similarity about 0), so each case states exactly the
score pattern it is about. The worlds these rules were measured on are in test_relevance_cold.py,
test_relevance_mixed.py and bench/bench_relevance.py.
"""

import numpy as np
import pytest

from search.engine import calibration

DIMENSION = 64
SPREAD = 0.25
NEAREST_NEIGHBOUR = 0.95  # a quarter of the stored pictures meet their nearest neighbour at this similarity


@pytest.fixture
def reference(monkeypatch):
    """Random unit directions and their opposites as every modality's reference sample: the query's level is 0."""
    rng = np.random.default_rng(26)
    vectors = rng.normal(size=(256, DIMENSION))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    vectors = np.concatenate([vectors, -vectors])
    monkeypatch.setattr(calibration, "_reference_vectors", lambda space, fitted, modality: vectors)


def fitted(**extra) -> dict:
    stats = {"median": 0.0, "spread": SPREAD, "close": NEAREST_NEIGHBOUR, "n": 512}
    return {"modalities": {"image": dict(stats), "audio": dict(stats), "text": dict(stats, close=0.6)},
            # What the pairwise table says of a picture against one passage in a collection like the mixed one.
            "pairs": {"image->passage": {"mean": -0.03, "std": 0.14, "n": 1000},
                      "text->passage": {"mean": 0.18, "std": 0.49, "n": 1000, "midpoint": -2.87}},
            **extra}


def query() -> np.ndarray:
    vector = np.zeros(DIMENSION)
    vector[0] = 1.0
    return vector


def kept(judged: dict, ids) -> list:
    return [item_id for item_id in ids if judged[item_id].relevance >= 0.5]


def test_a_precise_query_keeps_its_matches_and_not_the_half_matches_after_the_break(reference):
    """Before: a break needed a gap of a quarter of the best match's height above the level; the demo data's
    precise queries break at 0.14-0.33 of it (mixed collection, top 5 on topic 0.75)."""
    matches = {1: 0.97, 2: 0.96, 3: 0.95}
    half = {10 + n: 0.73 - 0.01 * n for n in range(12)}  # one attribute of two: still far above the level
    candidates = {item_id: ("image", score, 0) for item_id, score in (matches | half).items()}
    judged = calibration.judge(None, fitted(), query(), "text", False, candidates)
    assert kept(judged, candidates) == [1, 2, 3]
    assert all(judged[item_id].demoted for item_id in half)


def test_a_broad_query_keeps_every_graded_match(reference):
    scores = {n: 0.9 - 0.02 * n for n in range(16)}  # one attribute, every item that has it, no break
    candidates = {item_id: ("audio", score, 0) for item_id, score in scores.items()}
    judged = calibration.judge(None, fitted(), query(), "text", False, candidates)
    assert kept(judged, candidates) == list(scores)


def test_a_picture_like_something_stored_keeps_its_kind_drawn_differently(reference):
    """Before: items of its own kind below the nearest-neighbour level (0.9 here) were cut, image->image
    precision@5 0.80 on a cold database."""
    same_kind = {1: 0.99, 2: 0.93, 3: 0.86, 4: 0.82, 5: 0.80}
    others = {10 + n: 0.30 - 0.01 * n for n in range(10)}
    candidates = {item_id: ("image", score, 0) for item_id, score in (same_kind | others).items()}
    judged = calibration.judge(None, fitted(), query(), "image", True, candidates, nearest_own=0.99)
    assert kept(judged, candidates) == list(same_kind)


def test_a_picture_unlike_anything_stored_matches_nothing_not_even_a_long_text_by_a_passage(reference):
    """Before: with too few passages to sample, a long text matched by a passage was judged by the pairwise fit
    of text queries, and a diagram matched README files at relevance 1.0 (mixed collection: "no close match"
    for unrelated pictures 0.00, and for spoken sentences 0.00)."""
    candidates = {1: ("image", 0.80, 0), 2: ("image", 0.78, 0), 3: ("text", 0.65, 21), 4: ("text", 0.64, 51),
                  5: ("audio", 0.6, 0)}
    judged = calibration.judge(None, fitted(), query(), "image", True, candidates, nearest_own=0.80)
    assert kept(judged, candidates) == []
    # Like something stored, the same long text is judged against the texts: as the best of its 22 vectors.
    judged = calibration.judge(None, fitted(), query(), "image", True, {3: ("text", 0.65, 21)}, nearest_own=0.99)
    assert judged[3].kind == "example" and judged[3].z is not None


def test_a_golden_set_may_lower_a_midpoint_but_never_raise_it():
    precise = {"query_midpoints": {"description": {"fitted": 2.55, "midpoint": 1.75, "pairs": 700}}}
    assert calibration._query_midpoint(precise, "description") == calibration.DESCRIPTION_MIDPOINT
    generous = {"query_midpoints": {"example": {"fitted": 0.2, "pairs": 300}}}
    assert calibration._query_midpoint(generous, "example") == calibration.EXAMPLE_MIDPOINT - calibration.GOLDEN_LOWER
    assert calibration._query_midpoint({}, "example") == calibration.EXAMPLE_MIDPOINT
