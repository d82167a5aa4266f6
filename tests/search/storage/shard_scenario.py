"""The sharding test's Django side, run as `python -m tests.search.storage.shard_scenario` in a process whose
DATABASE_URL is the coordinator and DATABASE_SHARD_URLS the shards (settings are read once per process). Stores
items through the product's write path, searches through the product's search, prints what it saw as JSON."""

import json
import os
import sys

import django


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "search.settings")
    django.setup()
    from django.conf import settings
    from django.db import connection
    from django.test import Client
    from django.test.utils import override_settings

    from search.engine import ranking_batch
    from search.engine.requests import Filters, SearchRequest
    from search.engine.search_service import search
    from search.ingest.ingester import Ingester, IngestInput
    from search.models import Item
    from search.storage import spaces

    words = ["red", "green", "blue", "circle", "square", "star", "loud", "quiet", "river", "stone", "cloud", "lamp"]
    report: dict = {}
    step = sys.argv[1]
    if step == "store":
        count = int(sys.argv[2])
        inputs = [IngestInput(text=f"note {n}: {words[n % 12]} {words[(n * 7) % 12]} {words[(n * 5 + 3) % 12]}",
                              tags=["rare"] if n % 100 == 0 else [], collection="c")
                  for n in range(count)]
        with Ingester() as ingester:
            outcomes = ingester.ingest_many(inputs)
        report["stored"] = sum(1 for outcome in outcomes if outcome.item is not None)
        # A curator's edit of a filtered column reaches the shard.
        first = Item.objects.order_by("id").first()
        first.tags = ["rare", "edited"]
        first.save(update_fields=["tags"])
        report["items"] = Item.objects.count()
    elif step == "search":
        space = spaces.searchable(settings.SEARCH_DEFAULT_SPACE)
        queries = ["red circle", "quiet river stone", "blue lamp", "green star cloud", "loud square"]
        report["same_top_k"], report["sharded_hits"] = [], []
        for exact in (True, False):
            for text in queries:
                request = dict(parts=[], space=space.name, k=10, exact=exact, min_relevance=0.0, include_weak=True,
                               balance_modalities=False)
                from search.engine.query_vectors import QueryPart

                sharded = [hit.item.id for hit in search(SearchRequest(**{**request, "parts": [QueryPart(text=text)]}))
                           .hits]
                with override_settings(SEARCH_SHARDS=[]):
                    single = [hit.item.id for hit in search(SearchRequest(**{**request,
                                                                             "parts": [QueryPart(text=text)]})).hits]
                report["same_top_k"].append(sharded == single)
                report["sharded_hits"].append(len(sharded))
        # The index path under a 1 % filter: k of k from the shards.
        encoder = spaces.get_encoder(space.name)
        vector = encoder.encode_texts(["red circle"])[0]
        scan = ranking_batch.VectorScan(space, vector, Filters(tags=["rare"]), limit=10)
        ranked, _, _, _ = ranking_batch.run([scan], default_ef=settings.SEARCH_HNSW_EF_SEARCH)
        report["filtered"] = len(ranked[0].rows)
        report["edited_found"] = len(ranking_batch.run(
            [ranking_batch.VectorScan(space, vector, Filters(tags=["edited"]), limit=10)],
            default_ef=settings.SEARCH_HNSW_EF_SEARCH)[0][0].rows)
        # The plan of an unfiltered scan through the index: async foreign scans, each with ORDER BY and LIMIT.
        unfiltered = ranking_batch.VectorScan(space, vector, Filters(), limit=10)
        sql, params = unfiltered.nearest_sql("(SELECT v FROM q0)")
        with connection.cursor() as cursor:
            cursor.execute(f"EXPLAIN (VERBOSE, COSTS OFF) WITH q0 AS (SELECT %s::halfvec({space.dimension}) AS v),"
                           f" s AS MATERIALIZED ({sql}) SELECT * FROM s", [knn_literal(vector), *params])
            report["plan"] = "\n".join(row[0] for row in cursor.fetchall())
        # What each shard runs: the statement postgres_fdw ships for each arm, planned on that shard (unfiltered,
        # and under the 1 % filter).
        report["shard_plans"] = {label: shard_plans(space, ranking_batch.VectorScan(space, vector, filters, limit=10))
                                 for label, filters in (("all", Filters()), ("rare", Filters(tags=["rare"])))}
        report["index_name"] = space.index_name
        # Passages counted for the candidates of a scan that ranks texts by their passages, against each item's
        # passage rows counted through the partitioned table.
        scan = ranking_batch.VectorScan(space, vector, Filters(), limit=20, with_passages=True, fanout=2)
        sharded_counts = ranking_batch.run([scan], default_ef=settings.SEARCH_HNSW_EF_SEARCH)[3]
        with connection.cursor() as cursor:
            cursor.execute("SELECT space_id, item_id, count(*) FROM search_embedding WHERE passage"
                           " AND item_id = ANY(%s) GROUP BY 1, 2", [[item for _, item in sharded_counts]])
            truth = {(space_id, item_id): n for space_id, item_id, n in cursor.fetchall()}
        report["passage_counts"] = [sorted(sharded_counts.items())[:5], sorted(truth.items())[:5]]
        report["passage_counts_same"] = bool(truth) and sharded_counts == truth
        # A space's statistics (search.storage.space_stats): computed on each shard, the same as over every row.
        import numpy as np

        from search.storage import space_stats
        from search.storage.shards import fanout

        space_stats.forget()
        sharded_stats = space_stats.of(space)
        with override_settings(SEARCH_SHARDS=[]):  # the one-server statement, over the partitioned table's rows
            space_stats.forget()
            whole = space_stats.of(space)
        space_stats.forget()
        report["stats_same"] = (sharded_stats.items == whole.items and sharded_stats.rows == whole.rows
                                and sharded_stats.centroids.keys() == whole.centroids.keys()
                                and all(np.allclose(sharded_stats.centroids[m], whole.centroids[m], atol=1e-3)
                                        for m in whole.centroids))
        report["stats_items"] = sum(sharded_stats.items.values())
        sql, params = fanout.space_stats_sql(space)
        with connection.cursor() as cursor:
            cursor.execute("EXPLAIN (VERBOSE, COSTS OFF) " + sql, params)
            report["stats_plan"] = "\n".join(row[0] for row in cursor.fetchall())
    elif step == "write":
        # Written while a move is under way: new items, and a changed filter column of an old one.
        count = int(sys.argv[2])
        inputs = [IngestInput(text=f"later {n}: {words[n % 12]} {words[(n * 5) % 12]}", tags=["later"],
                              collection="c") for n in range(count)]
        with Ingester() as ingester:
            report["stored"] = sum(1 for outcome in ingester.ingest_many(inputs) if outcome.item is not None)
        item = Item.objects.order_by("-id")[count + 3]
        item.tags = [*item.tags, "moved"]
        item.save(update_fields=["tags"])
    elif step == "check":
        # During and after a move: the index path's top 10 equals the exact top 10 read through the coordinator's
        # partitioned table, and the 1 % filter still gives k of k.
        from search.engine.query_vectors import QueryPart

        space = spaces.searchable(settings.SEARCH_DEFAULT_SPACE)
        report["same_top_k"] = []
        for text in ["red circle", "quiet river stone", "blue lamp"]:
            request = dict(parts=[QueryPart(text=text)], space=space.name, k=10, min_relevance=0.0, include_weak=True,
                           balance_modalities=False)
            sharded = [hit.item.id for hit in search(SearchRequest(**request, exact=False)).hits]
            with override_settings(SEARCH_SHARDS=[]):
                single = [hit.item.id for hit in search(SearchRequest(**request, exact=True)).hits]
            report["same_top_k"].append(sharded == single and len(sharded) == 10)
        vector = spaces.get_encoder(space.name).encode_texts(["red circle"])[0]
        report["filtered"] = len(ranking_batch.run(
            [ranking_batch.VectorScan(space, vector, Filters(tags=["rare"]), limit=10)],
            default_ef=settings.SEARCH_HNSW_EF_SEARCH)[0][0].rows)
        report["moved_tag"] = len(ranking_batch.run(
            [ranking_batch.VectorScan(space, vector, Filters(tags=["moved"]), limit=10)],
            default_ef=settings.SEARCH_HNSW_EF_SEARCH)[0][0].rows)
        report["items"] = Item.objects.count()
    elif step == "api":
        response = Client().get("/api/search/", {"q": "red circle", "k": 5})
        report["status"] = response.status_code
        report["body"] = response.content.decode()[:500]
    print("REPORT " + json.dumps(report))


def shard_plans(space, scan) -> list[dict]:
    """Per shard: the remote SQL the coordinator's plan ships for `scan`'s arm, and that statement's plan on the
    shard (PREPAREd with the values postgres_fdw binds: no bucket under a move, the InitPlan's false, the vector)."""
    import re

    import psycopg
    from django.conf import settings
    from django.db import connection

    from search.storage.shards import layout

    vector = knn_literal(scan.vector)
    sql, params = scan.nearest_sql("(SELECT v FROM q0)")
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (VERBOSE, COSTS OFF) WITH q0 AS (SELECT %s::halfvec({space.dimension}) AS v),"
                       f" s AS MATERIALIZED ({sql}) SELECT * FROM s", [vector, *params])
        plan = "\n".join(row[0] for row in cursor.fetchall())
    shipped = re.findall(r"Foreign Scan on public\.search_shard_(\d+)_vectors.*?Remote SQL: ([^\n]+)", plan, re.S)
    values = {"smallint[]": "{}", "boolean": "false"}
    found = []
    for number, remote in shipped:
        kinds = dict(re.findall(r"\$(\d+)::([\w.]+(?:\(\d+\))?(?:\[\])?)", remote))
        arguments = [values.get(kinds[str(n)], vector) for n in range(1, len(kinds) + 1)]
        with psycopg.connect(layout.conninfo(settings.SEARCH_SHARDS[int(number) - 1]), autocommit=True) as shard:
            shard.execute("SET plan_cache_mode = force_custom_plan")
            shard.execute(f"PREPARE arm AS {remote}")
            literals = ", ".join("'" + value.replace("'", "''") + "'" for value in arguments)  # typed by the PREPARE
            explain = f"EXPLAIN (COSTS OFF) EXECUTE arm({literals})"
            # The shard's own choice (a few hundred rows: an exact scan is cheaper, rightly), then with every other
            # way to read the rows in order costed out: the HNSW index only if it can answer the statement (its
            # partial predicate implied, its expression and operator the ORDER BY's).
            chosen = "\n".join(row[0] for row in shard.execute(explain))
            shard.execute("SET enable_seqscan = off; SET enable_sort = off")
            forced = "\n".join(row[0] for row in shard.execute(explain))
        found.append({"shard": int(number), "remote_sql": remote, "plan": chosen, "forced": forced})
    return found


def knn_literal(vector) -> str:
    from search.storage import knn

    return knn.vector_literal(vector)


if __name__ == "__main__":
    main()
