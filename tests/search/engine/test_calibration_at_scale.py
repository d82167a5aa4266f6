"""What the relevance judgement keeps between searches, under concurrent searches and on large spaces (issue 28:
a million items answered through the API with p99 62 s, every server thread refitting and resampling at once).

- a value kept per process (modality counts, reference samples) is computed by one thread while the others wait
  for the first value, or go on with the stale one while it is renewed;
- a drifted calibration is refitted by one search; one that finds another process refitting judges by the old
  calibration instead of waiting;
- a large space is sampled from a share of its pages, not by ordering every row by random().
"""

import threading
import time
import zlib

import psycopg
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from search.engine import calibration
from search.ingest.ingester import Ingester, IngestInput
from search.models import EmbeddingSpace
from tests.search.helpers import png_bytes


@pytest.fixture(autouse=True)
def _fresh():
    calibration.clear_cache()
    yield
    calibration.clear_cache()


def test_a_first_value_is_computed_once_however_many_threads_ask_at_once():
    calls, cache, gate = [], {}, threading.Event()

    def compute():
        calls.append(1)
        gate.wait(5)
        return len(calls)

    threads = [threading.Thread(target=lambda: results.append(calibration._kept("k", cache, 60, compute)))
               for _ in range(8)]
    results: list[int] = []
    for thread in threads:
        thread.start()
    time.sleep(0.2)
    gate.set()
    for thread in threads:
        thread.join(5)
    assert calls == [1] and results == [1] * 8


def test_a_stale_value_serves_other_threads_while_one_renews_it():
    cache = {"k": (time.monotonic() - 120, None, "old")}
    started, release = threading.Event(), threading.Event()

    def compute():
        started.set()
        release.wait(5)
        return "new"

    renewer = threading.Thread(target=lambda: calibration._kept("k", cache, 60, compute))
    renewer.start()
    assert started.wait(5)
    begun = time.monotonic()
    # Asked while it is renewed: the old value, at once, and no second computation.
    assert calibration._kept("k", cache, 60, lambda: pytest.fail("computed twice")) == "old"
    assert time.monotonic() - begun < 1
    release.set()
    renewer.join(5)
    assert calibration._kept("k", cache, 60, lambda: pytest.fail("fresh: not computed")) == "new"
    # A new version (a refitted calibration) renews a fresh value too.
    assert calibration._kept("k", cache, 60, lambda: "newer", version="fit 2") == "newer"


@pytest.fixture
def fitted(db, fake_spaces):
    Ingester().ingest_many([IngestInput(text=f"note number {n} about the {thing}", title=f"note {n}")
                            for n, thing in enumerate(["garden", "kitchen", "station", "harbour"] * 10)])
    space = EmbeddingSpace.objects.get(name="fake")
    calibration.calibrate(space)
    space.refresh_from_db()
    return space


def _drift(space):
    """A third more texts than the calibration counted: the next search refits."""
    Ingester().ingest_many([IngestInput(text=f"another note {n} on the harbour wall") for n in range(20)])
    calibration.clear_cache()
    space.refresh_from_db()


def _hold_refit_lock(space):
    """Another process's refit of this space, as far as the advisory lock goes."""
    other = psycopg.connect(**connection.get_connection_params(), autocommit=True)  # the test's own database
    other.execute("SELECT pg_advisory_lock(%s)", [zlib.crc32(f"calibrate:{space.pk}".encode())])
    return other


def test_a_drifted_calibration_is_refitted_by_the_search_that_finds_it(fitted):
    before = fitted.calibration["fitted_at"], fitted.calibration["counts"]["text"]
    _drift(fitted)
    refitted = calibration.current(fitted)
    assert refitted["counts"]["text"] == 60 and before[1] == 40
    fitted.refresh_from_db()
    assert fitted.calibration["counts"]["text"] == 60


def test_a_search_judges_by_the_old_calibration_while_another_process_refits(fitted, monkeypatch):
    _drift(fitted)
    old = fitted.calibration
    other = _hold_refit_lock(fitted)
    try:
        monkeypatch.setattr(calibration, "calibrate", lambda *a, **k: pytest.fail("refitted a second time"))
        begun = time.monotonic()
        assert calibration.current(fitted) is old
        assert time.monotonic() - begun < 1
    finally:
        other.close()
    monkeypatch.undo()
    assert calibration.current(fitted)["counts"]["text"] == 60  # the lock free: this search refits


def test_a_large_space_is_sampled_from_a_share_of_its_pages(db, fake_spaces, monkeypatch):
    Ingester().ingest_many([IngestInput(text=f"a line of text number {n}") for n in range(120)]
                           + [IngestInput(data=png_bytes(seed=n), title=f"picture {n}") for n in range(6)])
    space = EmbeddingSpace.objects.get(name="fake")
    counts = calibration.modality_counts(space, refresh=True)
    assert counts == {"text": 120, "image": 6}
    # 5 of 120 texts: more than SAMPLE_SCAN_BELOW (20) times the sample, so a page sample first. (A table this
    # small has a few pages: the share drawn may hold fewer than 5 rows, and then every row is read.)
    with CaptureQueriesContext(connection) as queries:
        texts = calibration._sample_all(space, "text", 5, 0.42, counts)
    assert len(texts) == 5 and "TABLESAMPLE SYSTEM" in queries.captured_queries[1]["sql"]
    monkeypatch.setattr(calibration, "SAMPLE_OVERREAD", 24)  # every page drawn: the page sample suffices
    with CaptureQueriesContext(connection) as queries:
        texts = calibration._sample_all(space, "text", 5, 0.42, counts)
    assert len(texts) == 5 and "TABLESAMPLE SYSTEM" in queries.captured_queries[-1]["sql"]
    # Every row sampled is a text: compare with the texts' own vectors.
    with connection.cursor() as cursor:
        cursor.execute("SELECT e.vector::text FROM search_embedding e JOIN search_item i ON i.id = e.item_id"
                       " WHERE e.space_id = %s AND i.modality = 'text' AND e.segment_start IS NULL", [space.pk])
        known = {tuple(calibration.knn.parse_vector(row[0]).round(4)) for row in cursor.fetchall()}
    assert all(tuple(vector.round(4)) in known for vector in texts)
    # The same seed draws the same sample; a small modality is read whole, in random order.
    assert (calibration._sample_all(space, "text", 5, 0.42, counts) == texts).all()
    with CaptureQueriesContext(connection) as queries:
        assert len(calibration._sample_all(space, "image", 5, 0.42, counts)) == 5
    assert "TABLESAMPLE" not in queries.captured_queries[-1]["sql"]
    # Too few rows from the pages drawn: every row is read instead, and the sample is still full.
    monkeypatch.setattr(calibration, "SAMPLE_OVERREAD", 0.01)
    with CaptureQueriesContext(connection) as queries:
        assert len(calibration._sample_all(space, "text", 5, 0.42, counts)) == 5
    assert "TABLESAMPLE" not in queries.captured_queries[-1]["sql"]
