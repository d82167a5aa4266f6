"""One walk of a space's index for every modality of a search (search_nearest_walk, migration 0013; issue 28).

A search ranks each modality on its own; each modality's index scan walked the same graph from the same query
vector. One walk now hands every modality the rows its own scan would have read. What must hold: the same rows,
distances and counts as the scans one by one, under filters, with passages, with a modality that has few items,
and in one statement.
"""

from dataclasses import replace

import numpy as np
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from search.engine import rankers, ranking_batch
from search.engine.requests import Filters
from search.ingest.ingester import Ingester, IngestInput
from search.models import EmbeddingSpace, Item
from search.storage import spaces
from tests.search.helpers import png_bytes, wav_bytes

pytestmark = pytest.mark.django_db

WORDS = "harbour garden station kitchen river lamp chair cloud train boat house apple".split()


@pytest.fixture
def world(passage_spaces, settings):
    settings.SEARCH_EXACT_BELOW = 0  # the index, whatever the size: the walk is an index walk
    rng = np.random.default_rng(28)
    inputs = [IngestInput(text=" ".join(rng.choice(WORDS, 4)), title=f"note {n}", tags=["north" if n % 2 else "south"])
              for n in range(120)]
    # Long texts: their passages are vectors of their own, read by the text scan only.
    inputs += [IngestInput(text=" ".join(rng.choice(WORDS, 90)), title=f"letter {n}") for n in range(8)]
    inputs += [IngestInput(data=png_bytes(colour=tuple(int(c) for c in rng.integers(0, 255, 3)), seed=n),
                           title=f"picture {n}", tags=["north" if n % 3 else "south"]) for n in range(90)]
    inputs += [IngestInput(data=wav_bytes(seconds=0.3, freq=200.0 + 40 * n), title=f"sound {n}") for n in range(5)]
    outcomes = Ingester().ingest_many(inputs)
    assert all(outcome.item is not None for outcome in outcomes)
    Item.objects.filter(title__in=["note 3", "picture 4"]).update(hidden=True)
    space = EmbeddingSpace.objects.get(name="fake")
    assert spaces.index_exists(space)
    return space


def _scans(space, text, filters=None, limit=20, **options):
    vector = spaces.get_encoder("fake").encode_texts([text])[0]
    plan = rankers.cross_modal_plan(space, vector, filters or Filters(), limit, **options)
    # The same index settings for the walk and for each scan alone (one statement's setting is its widest scan's).
    widest = max(scan.knobs(0)["ef_search"] for scan in plan.scans)
    return [replace(scan, ef_search=widest) for scan in plan.scans]


def _one_by_one(scans):
    return [ranking_batch.run([scan], default_ef=40)[0][0] for scan in scans]


@pytest.mark.parametrize("case", ["plain", "filtered", "excluding", "deep"])
def test_one_walk_reads_what_each_modality_scan_read(world, case):
    filters = Filters(tags=["north"]) if case == "filtered" else Filters()
    options = {"exclude_ids": tuple(Item.objects.filter(title__startswith="note 1").values_list("id", flat=True))
               } if case == "excluding" else {}
    scans = _scans(world, "harbour garden lamp", filters, limit=60 if case == "deep" else 20, **options)
    assert [scan.filters.modalities for scan in scans] == [["audio"], ["image"], ["text"]]
    assert scans[2].with_passages and not scans[0].with_passages
    assert ranking_batch._walks(scans) == [[0, 1, 2]]
    with CaptureQueriesContext(connection) as captured:
        walked, _, items, counts = ranking_batch.run(scans, default_ef=40)
    [statement] = captured.captured_queries
    assert "search_nearest_walk" in statement["sql"]
    alone = _one_by_one(scans)
    for together, single in zip(walked, alone, strict=True):
        assert together.rows == single.rows
        assert together.scanned == single.scanned
    # The rare modality has what there is of it; the others their limit; nothing hidden or filtered out.
    assert len(walked[0].rows) == (0 if case == "filtered" else 5)
    assert len(walked[1].rows) == len(walked[2].rows) == scans[1].limit
    shown = Item.objects.filter(pk__in=[item_id for found in walked for item_id, _ in found.rows])
    assert not shown.filter(hidden=True).exists()
    if case == "filtered":
        assert all("north" in item.tags for item in shown)
    if case == "excluding":
        assert not shown.filter(pk__in=options["exclude_ids"]).exists()
    # The long texts' passages are counted for the text candidates, as with separate scans (the letters have no
    # tags: filtered out with them).
    assert any(count > 0 for count in counts.values()) == (case != "filtered")


def test_scans_that_differ_in_more_than_their_modality_are_not_walked_together(world):
    scans = _scans(world, "a red picture")
    other_vector = replace(scans[1], vector=scans[1].vector.copy())
    exact = replace(scans[2], exact=True)
    assert ranking_batch._walks([scans[0], other_vector, exact]) == []
    assert ranking_batch._walks([scans[0], replace(scans[1], filters=replace(scans[1].filters, tags=["x"]))]) == []
    assert ranking_batch._walks([scans[0], scans[1], replace(scans[2], ef_search=999)]) == [[0, 1]]
