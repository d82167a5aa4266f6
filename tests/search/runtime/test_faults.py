"""Faults and load: rolled-back work is invisible, a stopped database answers 503 and recovers,
and a bounded soak of concurrent searches, writes, deletes and VACUUM ends with zero errors."""

import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
from django.contrib.auth.models import User
from django.db import connection, transaction
from rest_framework.authtoken.models import Token

from search.engine.query_vectors import QueryPart
from search.engine.requests import SearchRequest
from search.engine.search_service import search
from search.ingest.ingester import Ingester, IngestInput
from search.models import Embedding, Item
from search.storage import spaces
from tests.conftest import ROOT, run_manage
from tests.search.conftest import FAKE_SPACES
from tests.search.helpers import png_bytes


@pytest.mark.django_db
@pytest.mark.usefixtures("fake_spaces")
def test_a_rolled_back_transaction_leaves_nothing_searchable(settings):
    query = [QueryPart(text="a lighthouse in the fog")]

    class Abort(Exception):
        pass

    with pytest.raises(Abort), transaction.atomic():
        item = Ingester().ingest(IngestInput(data=png_bytes(seed=11), caption="a lighthouse in the fog")).item
        assert item.pk in [h.item.pk for h in search(SearchRequest(parts=query)).hits]
        raise Abort
    assert not Item.objects.exists() and not Embedding.objects.exists()
    assert search(SearchRequest(parts=query)).hits == []
    assert search(SearchRequest(parts=query, mode="lexical")).hits == []


def test_check_deploy_is_clean_under_production_settings(tmp_path):
    env = {
        "DJANGO_PRODUCTION": "1",
        "DJANGO_SECRET_KEY": "k3y-" + "x9Qz" * 16,
        "DJANGO_ALLOWED_HOSTS": "search.example.com",
        "DJANGO_STATIC_ROOT": str(tmp_path / "static"),
    }
    # A production deployment collects its static files first; the check warns until it has.
    assert run_manage("collectstatic", "--noinput", env=env).returncode == 0
    result = run_manage("check", "--deploy", "--fail-level", "WARNING", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def _get(url: str, timeout: float = 30) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


@pytest.mark.slow
def test_a_stopped_database_answers_503_and_the_server_recovers(tmp_path):
    env = {
        **os.environ,
        "SEARCH_VAR_DIR": str(tmp_path / "var"),
        "SEARCH_SPACES_JSON": json.dumps(FAKE_SPACES),
        "PYTHONUNBUFFERED": "1",
    }
    manage = [sys.executable, str(ROOT / "manage.py")]
    subprocess.run([*manage, "migrate", "-v", "0"], env=env, cwd=ROOT, check=True, timeout=180)
    # Keep the database up across commands, as a deployment would, so the server does not own it.
    subprocess.run([*manage, "dbserver", "start"], env=env, cwd=ROOT, check=True, timeout=60)
    port = 18000 + os.getpid() % 1000
    server = subprocess.Popen([*manage, "runserver", f"127.0.0.1:{port}", "--noreload"], env=env, cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/api/search/?q=hello"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                status, _ = _get(url)
                break
            except OSError:
                assert time.monotonic() < deadline, "the server did not come up"
                time.sleep(0.5)
        assert status == 200
        subprocess.run([*manage, "dbserver", "stop"], env=env, cwd=ROOT, check=True, timeout=60)
        status, body = _get(url)
        assert status == 503 and "database is unavailable" in body["detail"]
        subprocess.run([*manage, "dbserver", "start"], env=env, cwd=ROOT, check=True, timeout=60)
        assert _get(url)[0] == 200
    finally:
        server.terminate()
        server.wait(10)
        subprocess.run([*manage, "dbserver", "stop"], env=env, cwd=ROOT, timeout=60)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("fake_spaces")
def test_soak_concurrent_searches_writes_deletes_and_vacuum(live_server, settings, output_dir):
    settings.SEARCH_THROTTLE_RATES = {"search": "100000/min", "write": "100000/min"}
    space = spaces.register("fake")
    rng = np.random.default_rng(5)
    vectors = rng.normal(size=(3000, 32)).astype(np.float32)
    items = Item.objects.bulk_create(Item(modality="text", text=f"seed {i}", sha256=f"{i:064x}",
                                          embedding_status="done") for i in range(len(vectors)))
    Embedding.objects.bulk_create(Embedding(item=it, space=space, vector=v) for it, v in zip(items, vectors,
                                                                                             strict=True))
    token = Token.objects.create(user=User.objects.create_user("soak", is_staff=True)).key
    errors: list[str] = []
    counts = {"search": 0, "insert": 0, "delete": 0, "vacuum": 0}
    stop = time.monotonic() + float(os.environ.get("SOAK_SECONDS", "45"))

    def call(method, path, body=None):
        request = urllib.request.Request(live_server.url + path, method=method,
                                         data=json.dumps(body).encode() if body is not None else None,
                                         headers={"Authorization": f"Token {token}",
                                                  "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def worker(kind):
        local = np.random.default_rng(hash(kind) % 2**32)
        n = 0
        try:
            while time.monotonic() < stop:
                if kind.startswith("search"):
                    status, _ = call("GET", f"/api/search/?q=seed+{local.integers(0, 3000)}&k=10")
                elif kind == "insert":
                    status, _ = call("POST", "/api/items/", {"text": f"new {kind} {n} {local.random()}"})
                elif kind == "delete":
                    victim = Item.objects.filter(text__startswith="new").order_by("?").values_list("pk", flat=True)
                    victim = victim.first()
                    if victim is None:
                        time.sleep(0.05)
                        continue
                    status, _ = call("DELETE", f"/api/items/{victim}/")
                    status = 204 if status == 404 else status  # deleted meanwhile by nobody else: fine
                else:
                    with connection.cursor() as cursor:
                        cursor.execute("VACUUM ANALYZE search_embedding")
                    status = 200
                    time.sleep(2)
                if status >= 500:
                    errors.append(f"{kind}: HTTP {status}")
                counts[kind.rstrip("0123456789")] += 1
                n += 1
        except Exception as exc:  # any exception is a failure of the promise
            errors.append(f"{kind}: {exc!r}")
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(k,)) for k in ("search1", "search2", "insert", "delete",
                                                                     "vacuum")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert counts["search"] > 50 and counts["insert"] > 10 and counts["delete"] > 5 and counts["vacuum"] >= 2

    recalls = []
    for query in rng.normal(size=(40, 32)):
        approx = search(SearchRequest(parts=[QueryPart(vector=list(query))], k=10))
        exact = search(SearchRequest(parts=[QueryPart(vector=list(query))], k=10, exact=True))
        recalls.append(len({h.item.pk for h in approx.hits} & {h.item.pk for h in exact.hits}) / 10)
    figures = {**counts, "errors": len(errors), "recall_at_10": round(float(np.mean(recalls)), 4),
               "seconds": float(os.environ.get("SOAK_SECONDS", "45"))}
    (output_dir / "soak.json").write_text(json.dumps(figures, indent=2))
    assert float(np.mean(recalls)) >= 0.97
