"""The production stack as `make serve` runs it (gunicorn + job workers under `manage.py serve`), and a job
worker killed with -9 mid-job. Real processes, real sockets, the real demo model, this run's test database."""

import concurrent.futures
import http.client
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid

import psutil
import pytest
from django.db import connection
from rest_framework.authtoken.models import Token

from search.jobs import submit
from search.models import Item, Job, JobInput
from tests.conftest import ROOT
from tests.search.users import make_user

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _env(tmp_path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"}
    env.update({
        # This test run's database on the shared embedded server; everything else in a folder of its own.
        "SEARCH_DB_NAME": connection.settings_dict["NAME"],
        "SEARCH_PGDATA": connection.settings_dict["PGDATA"],
        "SEARCH_VAR_DIR": str(tmp_path / "var"),
        "DJANGO_MEDIA_ROOT": str(tmp_path / "media"),
        "DJANGO_STATIC_ROOT": str(tmp_path / "static"),
        "DJANGO_PRODUCTION": "1",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(64),
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "DJANGO_SECURE_SSL_REDIRECT": "0",  # no TLS proxy in front of the test
        **extra,
    })
    return env


def _wait_healthy(base: str, proc: subprocess.Popen, timeout: float = 180) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the stack exited with {proc.returncode}"
        try:
            with urllib.request.urlopen(base + "/healthz", timeout=5) as response:
                return json.loads(response.read())
        except OSError:
            time.sleep(0.5)
    raise AssertionError("the stack never became healthy")


def _request(base: str, method: str, path: str, body=None, token=None) -> tuple[int, dict | str]:
    conn = http.client.HTTPConnection(base.removeprefix("http://"), timeout=120)
    headers = {"Authorization": f"Token {token}"} if token else {}
    if body is not None:
        headers["Content-Type"] = "application/json"
        body = json.dumps(body)
    try:
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        data = response.read().decode()
        kind = response.getheader("Content-Type", "")
        return response.status, json.loads(data) if kind.startswith("application/json") else data
    except OSError as exc:
        return -1, str(exc)
    finally:
        conn.close()


def test_the_production_stack_serves_concurrent_clients_runs_jobs_and_stops_together(tmp_path):
    token = Token.objects.create(user=make_user("integration")).key
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    stack = subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), "serve", "--web-workers", "2", "--job-workers", "1"],
        cwd=ROOT, env=_env(tmp_path, HOST=f"127.0.0.1:{port}"),
    )
    try:
        health = _wait_healthy(base, stack)
        # The first answer already comes from a warmed worker: the models loaded before it took traffic.
        assert health["status"] == "ok" and health["spaces"] == {"demo": "ready", "text": "ready"}
        children = psutil.Process(stack.pid).children(recursive=True)
        assert len(children) >= 4  # gunicorn master + 2 workers + a job worker
        status, css = _request(base, "GET", "/static/search/site.css")
        assert status == 200 and css  # collected by the command, served by WhiteNoise

        job = _request(base, "POST", "/api/items/batch/",
                       {"items": [{"text": f"batch note {n}"} for n in range(40)]}, token)
        assert job[0] == 202, job

        def client(n: int) -> list[int]:
            codes = []
            for i in range(8):
                if i == 0:
                    codes.append(_request(base, "POST", "/api/items/", {"text": f"client {n} says hi"}, token)[0])
                else:
                    codes.append(_request(base, "GET", f"/api/search/?q=a+red+circle+{i}&k=5")[0])
            return codes

        with concurrent.futures.ThreadPoolExecutor(32) as pool:
            codes = [code for codes in pool.map(client, range(32)) for code in codes]
        assert codes.count(201) == 32 and codes.count(200) == 32 * 7, sorted(set(codes))

        deadline = time.monotonic() + 120
        while (done := _request(base, "GET", f"/api/jobs/{job[1]['id']}/", token=token)[1])["status"] != "done":
            assert time.monotonic() < deadline and done["status"] in ("queued", "running"), done
            time.sleep(0.5)
        assert (done["processed"], done["succeeded"]) == (40, 40)

        metrics = _request(base, "GET", "/metrics")[1]
        searches = sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
                       if line.startswith("search_http_request_duration_seconds_count")
                       and 'endpoint="api-search"' in line)
        assert searches == 32 * 7  # summed over both gunicorn workers
        assert 'search_jobs{kind="ingest",status="done"} 1.0' in metrics
    finally:
        stack.send_signal(signal.SIGTERM)
        try:
            stack.wait(timeout=60)
        except subprocess.TimeoutExpired:
            stack.kill()
            raise
    assert stack.returncode == 0
    time.sleep(0.5)
    assert not [child for child in children if child.is_running() and child.status() != psutil.STATUS_ZOMBIE]


def _start_worker(tmp_path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), "worker"], cwd=ROOT, stdout=subprocess.PIPE,
        env=_env(tmp_path, SEARCH_JOB_CHUNK="2", SEARCH_JOB_HEARTBEAT_SECONDS="0.5", SEARCH_JOB_STALLED_SECONDS="2",
                 DJANGO_PRODUCTION="0"),
    )


def test_a_job_whose_worker_is_killed_with_9_finishes_on_restart_with_no_item_lost_or_duplicated(tmp_path):
    marker = uuid.uuid4().hex[:8]
    texts = [f"kill test {marker} {n}" for n in range(300)]
    job = submit.submit_ingest([{"text": text} for text in texts], owner_id=None)
    first = _start_worker(tmp_path)
    try:
        deadline = time.monotonic() + 120
        while Job.objects.get(pk=job.pk).processed < 10:
            assert time.monotonic() < deadline and first.poll() is None
            time.sleep(0.02)
        first.send_signal(signal.SIGKILL)
        first.wait()
    finally:
        if first.poll() is None:
            first.kill()
    job.refresh_from_db()
    assert job.status == "running" and 10 <= job.processed < 300, (job.status, job.processed)

    second = _start_worker(tmp_path)  # takes over the dead worker's job once its heartbeat is stale
    try:
        deadline = time.monotonic() + 180
        while (job := Job.objects.get(pk=job.pk)).status != "done":
            assert time.monotonic() < deadline and second.poll() is None and job.status != "failed", job.error
            time.sleep(0.2)
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(timeout=60)
    assert (job.processed, job.succeeded, job.failed) == (300, 300, 0)
    outcomes = list(JobInput.objects.filter(job=job).values_list("outcome", "item_id"))
    assert {outcome for outcome, _ in outcomes} == {"added"}  # no chunk was stored twice, or half
    assert len({item for _, item in outcomes}) == 300
    assert sorted(Item.objects.filter(text__startswith=f"kill test {marker} ").values_list("text", flat=True)) \
        == sorted(texts)
    assert second.returncode == 0
