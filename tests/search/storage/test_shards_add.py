"""Adding a shard server (issue 30): three shards hold 1,000 items, `manage.py add_shard URL` moves a fourth's share
to it in slices (`--max-steps`, standing in for a kill: every step commits, so stopping after any of them is what a
kill between two leaves), with items written and edited between slices; after each slice every item is owned by
exactly one shard and a search gives the exact top 10 and k of k under a 1 % filter; at the end every item's vectors
are on exactly one shard's disk and the buckets are spread evenly. About 60-90 s (five servers, a dozen Django
processes)."""

import psycopg
import pytest

from tests.search.storage import shard_cluster
from tests.search.storage.test_shards import ITEMS, _held, _run, shard_env

LATER = 20  # items written during the move


@pytest.fixture
def cluster(tmp_path):
    servers = [shard_cluster.start(tmp_path / name) for name in ("coordinator", "shard1", "shard2", "shard3", "shard4")]
    yield servers
    for server, _ in servers:
        shard_cluster.stop(server)


def _each_item_owned_once(coordinator: str, urls: list[str], expected: int) -> None:
    """Every item's whole-item vector is searched on exactly one shard (the buckets the coordinator gives it)."""
    with psycopg.connect(coordinator) as db:
        buckets = dict(db.execute("SELECT server, array_agg(bucket) FROM search_shard_bucket GROUP BY server"))
    owned = []
    for number, url in enumerate(urls, start=1):
        with psycopg.connect(url) as shard:
            owned += [row[0] for row in shard.execute(
                "SELECT item_id FROM search_embedding WHERE segment_start IS NULL AND bucket = ANY(%s)",
                [buckets.get(number, [])])]
    assert len(owned) == len(set(owned)) == expected


def test_add_shard(cluster, tmp_path):
    (_, coordinator), *servers = cluster
    urls = [url for _, url in servers]
    three, four = shard_env(coordinator, urls[:3], tmp_path), shard_env(coordinator, urls, tmp_path)
    _run(three, "manage.py", "migrate", "-v", "0")
    assert _run(three, "-m", "tests.search.storage.shard_scenario", "store", str(ITEMS))["stored"] == ITEMS
    _run(three, "manage.py", "migrate", "-v", "0")

    new = shard_cluster.django_url(urls[3])
    total = ITEMS
    for steps in (3, 9, 25):  # stopped mid-copy, then later in other phases
        done = _run_add(four, new, "--max-steps", str(steps))
        assert f"stopped after {steps} steps" in done
        _each_item_owned_once(coordinator, urls, total)
        seen = _run(four, "-m", "tests.search.storage.shard_scenario", "check")
        assert all(seen["same_top_k"]) and seen["filtered"] == 10, seen
        if steps == 9:
            assert _run(four, "-m", "tests.search.storage.shard_scenario", "write", str(LATER))["stored"] == LATER
            total += LATER
    done = _run_add(four)
    assert "buckets per shard: shard 1: 16, shard 2: 16, shard 3: 16, shard 4: 16" in done, done
    assert "buckets moved" in _run_add(four)  # nothing left: a rerun is a no-op

    held = [_held(url) for url in urls]
    assert all(held)
    assert sum(len(items) for items in held) == len(set().union(*held)) == total
    _each_item_owned_once(coordinator, urls, total)
    seen = _run(four, "-m", "tests.search.storage.shard_scenario", "check")
    assert all(seen["same_top_k"]) and seen["filtered"] == 10 and seen["moved_tag"] == 1, seen
    assert seen["items"] == total
    _run(four, "manage.py", "migrate", "-v", "0")  # the four-shard layout is what migrate expects now


def _run_add(env: dict, *args: str) -> str:
    import subprocess
    import sys

    from tests.conftest import ROOT

    done = subprocess.run([sys.executable, "manage.py", "add_shard", *args, "--batch", "5", "--settle", "0"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout
