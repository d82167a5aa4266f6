"""Searches go to a streaming replica, writes to the primary, and the primary takes over when the
replica lags or stops: tested against a real replica of the embedded server (pg_basebackup -R)."""

import copy
import shutil
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psycopg
import pytest
from django.conf import settings as django_settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.utils import load_backend
from django.http import HttpResponse
from django.test import RequestFactory

from search.engine.query_vectors import QueryPart
from search.engine.requests import SearchRequest
from search.engine.search_service import search
from search.models import Embedding, Item
from search.storage import replicas, spaces
from search.storage.replicas import embedded
from search.storage.replicas import replica_health as health
from search.storage.replicas.middleware import COOKIE, ReplicaRoutingMiddleware

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("fake_spaces")]
ALIAS = "replica_test"
DIM = 32


PRIMARY = Path(django_settings.DATABASES[DEFAULT_DB_ALIAS]["PGDATA"])


@pytest.fixture(scope="module")
def replica_server(django_db_setup, django_db_blocker):
    """A streaming replica of the test database's server (cloned once: a base backup takes seconds)."""
    folder = Path(tempfile.mkdtemp(prefix="rep", dir="/tmp")) / "pgdata"
    with django_db_blocker.unblock():
        embedded.start(PRIMARY, folder)
    yield folder
    embedded.stop(folder, PRIMARY)
    shutil.rmtree(folder.parent, ignore_errors=True)


@pytest.fixture
def replica(replica_server, settings):
    """The replica, running, as the Django alias `replica_test` and the only entry of SEARCH_REPLICAS."""
    if not (replica_server / "postmaster.pid").exists():
        embedded.run(replica_server, PRIMARY)  # a test before stopped it
    entry = copy.deepcopy(connections.settings[DEFAULT_DB_ALIAS])
    entry.update(ENGINE="django.db.backends.postgresql", HOST=str(replica_server), PORT="",
                 NAME=connections[DEFAULT_DB_ALIAS].settings_dict["NAME"], CONN_MAX_AGE=0, OPTIONS={})
    entry.pop("PGDATA", None)
    # Set on the handler but not in its settings: a connection made during the test, which Django's test
    # case allows (the alias did not exist when the test's databases were chosen).
    connections[ALIAS] = load_backend(entry["ENGINE"]).DatabaseWrapper(entry, ALIAS)
    settings.SEARCH_REPLICAS = [ALIAS]
    settings.SEARCH_REPLICA_CHECK_SECONDS = 0  # judge the replica afresh on every read
    settings.SEARCH_REPLICA_MAX_LAG = 1.0
    health.forget()
    try:
        yield replica_server
    finally:
        connections[ALIAS].close()
        del connections[ALIAS]
        health.forget()


def recorder(log):
    def record(execute, sql, params, many, context):
        log.append(sql)
        return execute(sql, params, many, context)
    return record


def put_items(n=20, seed=0):
    space = spaces.register("fake")
    rng = np.random.default_rng(seed)
    for i in range(n):
        item = Item.objects.create(modality="image", title=f"r{seed}-{i}", sha256=f"{seed:04d}{i:060d}",
                                   embedding_status="done")
        vector = rng.normal(size=DIM).astype(np.float32)
        Embedding.objects.create(item=item, space=space, vector=vector / np.linalg.norm(vector))
    return vector / np.linalg.norm(vector)


def wait_for_replay(title):
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if Item.objects.using(ALIAS).filter(title=title).exists():
            return
        time.sleep(0.05)
    raise AssertionError(f"the replica never showed {title!r}")


def wait_until_caught_up():
    deadline = time.monotonic() + 30
    while health.lag_seconds(ALIAS) > 0.5:
        assert time.monotonic() < deadline, "the replica never caught up"
        time.sleep(0.1)


def pause_replay():
    with connections[ALIAS].cursor() as cursor:
        cursor.execute("SELECT pg_wal_replay_pause()")
        for _ in range(600):  # the pause takes effect at the next record
            cursor.execute("SELECT pg_get_wal_replay_pause_state()")
            if cursor.fetchone()[0] == "paused":
                return
            time.sleep(0.05)


def resume_replay():
    with connections[ALIAS].cursor() as cursor:
        cursor.execute("SELECT pg_wal_replay_resume()")


def served_by(query):
    """Run a search as one unit of work (a request) and say which servers ran its k-NN statement."""
    on_primary, on_replica = [], []
    token = replicas.begin()
    try:
        with connections[DEFAULT_DB_ALIAS].execute_wrapper(recorder(on_primary)), \
                connections[ALIAS].execute_wrapper(recorder(on_replica)):
            page = search(SearchRequest(parts=[QueryPart(vector=list(query))], k=5, min_relevance=0.0))
    finally:
        replicas.end(token)
    def ranks(sql: str) -> bool:  # the statement of every ranking (search.engine.ranking_batch)
        return "<=>" in sql and "MATERIALIZED" in sql

    knn = [sql for sql in on_primary + on_replica if ranks(sql)]
    assert knn, "no k-NN statement ran"
    where = {"primary" if any(ranks(sql) for sql in on_primary) else None,
             "replica" if any(ranks(sql) for sql in on_replica) else None} - {None}
    return page, where


@pytest.mark.slow  # a base backup and a second server: ~40 s
def test_searches_go_to_the_replica_and_the_primary_takes_over(replica):
    query = put_items()
    wait_for_replay("r0-19")
    wait_until_caught_up()  # the shared primary writes for other tests too

    page, where = served_by(query)
    assert where == {"replica"}
    assert page.hits[0].item.title == "r0-19"  # the page's items were read from the replica too

    # A lagging replica (replay paused while the primary writes) is passed over.
    pause_replay()
    put_items(n=1, seed=1)
    time.sleep(1.5)
    assert health.lag_seconds(ALIAS) > 1.0
    assert served_by(query)[1] == {"primary"}
    resume_replay()
    wait_for_replay("r1-0")
    wait_until_caught_up()
    assert served_by(query)[1] == {"replica"}

    # A stopped replica: searches are answered by the primary.
    embedded.stop(replica, PRIMARY)
    page, where = served_by(query)
    assert where == {"primary"} and page.hits[0].item.title == "r0-19"


@pytest.mark.slow  # a base backup and a second server: ~40 s
def test_a_process_first_check_judges_a_replica_by_its_lag_not_by_its_last_commit_age(replica):
    """A replica whose last replayed commit is old but which replays the primary's latest write within
    moments is fresh: a new process (no earlier check) reads from it. The age of the last replayed commit
    alone would have said it was more than SEARCH_REPLICA_MAX_LAG behind."""
    put_items()
    wait_for_replay("r0-19")
    pause_replay()
    put_items(n=1, seed=1)
    time.sleep(1.3)  # the replica's last replayed commit is now older than SEARCH_REPLICA_MAX_LAG (1 s)
    health.forget()  # a process that has not checked this replica before
    params = connections[ALIAS].get_connection_params()

    def resume_from_another_connection():  # Django's connections belong to their thread
        with psycopg.connect(**params, autocommit=True) as connection:
            connection.execute("SELECT pg_wal_replay_resume()")

    threading.Timer(0.2, resume_from_another_connection).start()
    assert health.usable(ALIAS)
    assert Item.objects.using(ALIAS).filter(title="r1-0").exists()  # it has the write it lacked at the check

    # Still paused after the first check's patience: behind, whatever the check waited for.
    wait_until_caught_up()
    pause_replay()
    put_items(n=1, seed=2)
    time.sleep(1.3)
    health.forget()
    assert not health.usable(ALIAS)
    resume_replay()


@pytest.mark.slow  # a base backup and a second server: ~40 s
def test_a_client_that_wrote_reads_its_writes_from_the_primary(replica):
    query = put_items()
    wait_for_replay("r0-19")
    seen = {}

    def write(request):
        Item.objects.create(modality="text", title="fresh", text="fresh", sha256="f" * 64)
        return HttpResponse("ok")

    def read(request):
        seen["alias"] = replicas.read_alias()
        return HttpResponse("ok")

    factory = RequestFactory()
    wrote = ReplicaRoutingMiddleware(write)(factory.post("/api/items/", HTTP_AUTHORIZATION="Token abc"))
    assert COOKIE in wrote.cookies
    # The same client (its token) right after: the primary, which has the item whatever the replica's lag.
    ReplicaRoutingMiddleware(read)(factory.get("/api/search/?q=x", HTTP_AUTHORIZATION="Token abc"))
    assert seen["alias"] == DEFAULT_DB_ALIAS
    # Another client: the replica.
    ReplicaRoutingMiddleware(read)(factory.get("/api/search/?q=x", HTTP_AUTHORIZATION="Token other"))
    assert seen["alias"] == ALIAS
    assert query is not None


@pytest.mark.slow  # a base backup and a second server: ~40 s
def test_a_replica_failing_under_a_read_is_retried_on_the_primary(replica, settings):
    query = put_items()
    wait_for_replay("r0-19")
    settings.SEARCH_REPLICA_CHECK_SECONDS = 3600  # the replica was judged healthy and is not checked again
    health.forget()
    assert health.usable(ALIAS)
    connections[ALIAS].ensure_connection()
    embedded.stop(replica, PRIMARY)
    attempts = []

    def view(request):
        attempts.append(replicas.read_alias())
        page = search(SearchRequest(parts=[QueryPart(vector=list(query))], k=5, min_relevance=0.0))
        return HttpResponse(page.hits[0].item.title)

    response = ReplicaRoutingMiddleware(view)(RequestFactory().get("/api/search/"))
    assert attempts == [ALIAS, DEFAULT_DB_ALIAS]
    assert response.content == b"r0-19"
    assert not health.usable(ALIAS)  # sits out SEARCH_REPLICA_RETRY_SECONDS


@pytest.fixture
def same_server(settings):
    """A "replica" alias that is the primary itself (a server not in recovery: never behind), for the routing
    rules alone."""
    entry = copy.deepcopy(connections.settings[DEFAULT_DB_ALIAS])
    entry.update(ENGINE="django.db.backends.postgresql", HOST=connections[DEFAULT_DB_ALIAS].get_connection_params()
                 ["host"], NAME=connections[DEFAULT_DB_ALIAS].settings_dict["NAME"], OPTIONS={})
    entry.pop("PGDATA", None)
    connections[ALIAS] = load_backend(entry["ENGINE"]).DatabaseWrapper(entry, ALIAS)
    settings.SEARCH_REPLICAS = [ALIAS]
    health.forget()
    yield
    connections[ALIAS].close()
    del connections[ALIAS]
    health.forget()


def test_without_replicas_everything_reads_the_primary(settings):
    settings.SEARCH_REPLICAS = []
    assert replicas.read_alias() == DEFAULT_DB_ALIAS


def test_reads_go_to_a_replica_until_the_unit_of_work_writes(same_server):
    token = replicas.begin()
    try:
        assert replicas.read_alias() == ALIAS
        assert Item.objects.filter(pk=0).db == ALIAS  # the ORM follows through the router
        Item.objects.create(modality="text", title="w", text="w", sha256="w" * 64)
        assert replicas.read_alias() == DEFAULT_DB_ALIAS  # read-your-writes inside the request
    finally:
        replicas.end(token)


def test_reads_inside_a_transaction_on_the_primary_stay_there(same_server):
    from django.db import transaction

    with transaction.atomic():
        assert replicas.read_alias() == DEFAULT_DB_ALIAS


def test_a_replica_that_is_down_is_left_out(same_server):
    connections[ALIAS].settings_dict["HOST"] = "/nonexistent-socket-dir"
    assert replicas.read_alias() == DEFAULT_DB_ALIAS
    assert not health.usable(ALIAS)


def test_migrations_and_writes_go_to_the_primary():
    from search.storage.replicas.router import ReplicaRouter

    router = ReplicaRouter()
    assert router.db_for_write(Item) == DEFAULT_DB_ALIAS
    assert router.allow_migrate(DEFAULT_DB_ALIAS, "search") and not router.allow_migrate("replica1", "search")


def test_the_shared_cache_reads_and_writes_the_primary_and_pins_no_client(same_server):
    # The cache table is UNLOGGED (absent on a replica), and a throttle's count is no write of the client's:
    # a search that only counted must go on reading from replicas (issue 29).
    from django.core.cache import cache

    token = replicas.begin()
    try:
        cache.set("replica-probe", 1)
        assert cache.get("replica-probe") == 1
        assert replicas.read_alias() == ALIAS
        from search.storage.replicas.router import ReplicaRouter

        entry = cache.cache_model_class
        assert ReplicaRouter().db_for_read(entry) == ReplicaRouter().db_for_write(entry) == DEFAULT_DB_ALIAS
    finally:
        work = replicas.end(token)
    assert not work.wrote
