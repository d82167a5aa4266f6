"""Two web nodes that share nothing but the database, the object store and the cache (issue 29), for real: two
`manage.py serve` stacks (gunicorn, 2 workers each) with their own var/ and media folders, this run's test database,
a moto S3 server on a local port, and the cache table in the database. Upload on A, fetch and search on B, one
throttle counted across both, a write on A read on B, and A killed with -9 while both take traffic."""

import concurrent.futures
import http.client
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
import uuid

import pytest
from django.db import connection
from rest_framework.authtoken.models import Token

from search.models import Item
from tests.conftest import ROOT
from tests.search.helpers import png_bytes, wav_bytes
from tests.search.object_store import free_port, make_bucket, s3_environment
from tests.search.users import make_user

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

FAKE_SPACES = json.dumps({"fake": {"ENCODER": "encoders.fake.FakeSpace", "OPTIONS": {"dim": 32}}})
ANON_SEARCHES = 30  # a minute, for each client address, whichever node it reaches


class Node:
    def __init__(self, name: str, tmp_path, shared: dict):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"}
        env.update(shared)
        env.update({"SEARCH_VAR_DIR": str(tmp_path / name / "var"),
                    "DJANGO_MEDIA_ROOT": str(tmp_path / name / "media")})
        # Its own session: kill -9 of the group takes gunicorn's master and workers at once, as a lost machine.
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), "serve", "--web-workers", "2", "--job-workers", "0",
             "--bind", f"127.0.0.1:{self.port}"],
            cwd=ROOT, env=env, start_new_session=True, stdout=subprocess.DEVNULL)

    def wait_healthy(self, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"the node exited with {self.process.returncode}"
            try:
                with urllib.request.urlopen(self.base + "/healthz", timeout=5) as response:
                    if json.loads(response.read())["status"] == "ok":
                        return
            except OSError:
                pass
            time.sleep(0.5)
        raise AssertionError("the node never became healthy")

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
        """(status, headers, body bytes); status -1 when the node does not answer."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        except OSError as exc:
            return -1, {}, str(exc).encode()
        finally:
            conn.close()

    def json(self, method: str, path: str, payload=None, token: str | None = None):
        headers = {"Authorization": f"Token {token}"} if token else {}
        body = None
        if payload is not None:
            headers["Content-Type"] = "application/json"
            body = json.dumps(payload).encode()
        status, _, data = self.request(method, path, body, headers)
        return status, (json.loads(data) if data[:1] in (b"{", b"[") else data)

    def upload(self, token: str, name: str, data: bytes):
        boundary = uuid.uuid4().hex
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n"
                "Content-Type: application/octet-stream\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
        status, _, answer = self.request("POST", "/api/items/", body, {
            "Authorization": f"Token {token}", "Content-Type": f"multipart/form-data; boundary={boundary}"})
        return status, (json.loads(answer) if answer[:1] == b"{" else answer)

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(30)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.kill()


def path_of(url: str) -> str:
    return "/" + url.split("://", 1)[1].split("/", 1)[1]


def test_two_nodes_share_media_cache_and_database_and_survive_losing_one(tmp_path, s3_endpoint):
    import boto3

    bucket = f"two-nodes-{uuid.uuid4().hex[:8]}"
    make_bucket(s3_endpoint, bucket)
    objects = boto3.resource("s3", endpoint_url=s3_endpoint, region_name="us-east-1", aws_access_key_id="testing",
                             aws_secret_access_key="testing").Bucket(bucket)
    shared = {
        "SEARCH_DB_NAME": connection.settings_dict["NAME"], "SEARCH_PGDATA": connection.settings_dict["PGDATA"],
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(64),  # every node signs sessions and tokens alike
        "SEARCH_SPACES_JSON": FAKE_SPACES, "SEARCH_MIN_RELEVANCE": "0",
        "SEARCH_EXTRACT_OCR": "0", "SEARCH_EXTRACT_SPEECH": "0",
        "SEARCH_THROTTLE_SEARCH": f"{ANON_SEARCHES}/min", "SEARCH_THROTTLE_SEARCH_USER": "none",
        "DJANGO_DB_POOL_MAX_SIZE": "6",
        **s3_environment(s3_endpoint, bucket),
    }
    token = Token.objects.create(user=make_user("integration")).key
    a, b = Node("a", tmp_path, shared), Node("b", tmp_path, shared)
    try:
        a.wait_healthy()
        b.wait_healthy()

        # Upload on A; the file is in the bucket, not on A's disk, and B serves it, ranges included.
        wav = wav_bytes(seconds=1.0, freq=330)
        status, item = a.upload(token, "tone.wav", wav)
        assert status == 201, item
        media, preview = path_of(item["media_url"]), path_of(item["preview_url"])
        assert objects.Object(media.removeprefix("/media/")).content_length == len(wav)
        assert not (tmp_path / "a" / "media").exists() and not (tmp_path / "b" / "media").exists()
        status, headers, whole = b.request("GET", media)
        assert status == 200 and whole == wav
        status, headers, part = b.request("GET", media, headers={"Range": "bytes=1000-1999"})
        assert status == 206 and part == wav[1000:2000] and headers["Content-Range"] == f"bytes 1000-1999/{len(wav)}"
        assert b.request("GET", preview)[0] == 200

        # Search on B finds it.
        status, page = b.json("GET", "/api/search/?q=tone&k=10", token=token)
        assert status == 200 and item["id"] in [hit["id"] for hit in page["results"]], page

        # A write on A is read on B at once.
        assert a.json("PATCH", f"/api/items/{item['id']}/", {"title": "Renamed on A"}, token)[0] == 200
        assert b.json("GET", f"/api/items/{item['id']}/")[1]["title"] == "Renamed on A"

        # One anonymous client, one limit, however its searches are spread over the nodes. The cache table is no
        # model, so a flush between tests leaves it: earlier tests' searches from this address would count too.
        from django.core.cache import cache

        cache.clear()
        codes = [(a if n % 2 else b).request("GET", f"/api/search/?q=count+{n}")[0] for n in range(ANON_SEARCHES + 10)]
        assert codes.count(200) == ANON_SEARCHES and codes.count(429) == 10, codes

        # Throughput through both nodes (searches of a token holder, unthrottled), 8 clients.
        def searching(n: int) -> list[int]:
            node = a if n % 2 else b
            return [node.request("GET", f"/api/search/?q=circle+{n}+{i}&k=5",
                                 headers={"Authorization": f"Token {token}"})[0] for i in range(25)]

        started = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            codes = [code for batch in pool.map(searching, range(8)) for code in batch]
        elapsed = time.monotonic() - started
        assert codes == [200] * 200
        print(f"\ntwo nodes: {200 / elapsed:.1f} searches/s (200 searches, 8 clients, {elapsed:.2f} s)")

        # A dies (kill -9 of its whole process group) while both take uploads and searches.
        stored: list[dict] = []
        b_codes: list[int] = []
        a_codes: list[int] = []

        def uploading(n: int) -> None:
            for i in range(12):
                status, answer = a.upload(token, f"p{n}-{i}.png", png_bytes(seed=1000 + n * 100 + i))
                a_codes.append(status)
                if status == 201:
                    stored.append(answer)

        def searching_b(n: int) -> None:
            deadline = time.monotonic() + 6
            while time.monotonic() < deadline:
                b_codes.append(b.request("GET", f"/api/search/?q=after+{n}&k=5",
                                         headers={"Authorization": f"Token {token}"})[0])

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            futures = [pool.submit(uploading, n) for n in range(4)] + [pool.submit(searching_b, n) for n in range(4)]
            while len(stored) < 4 and time.monotonic() - started < 120:
                time.sleep(0.05)
            a.kill()
            for future in futures:
                future.result()
        assert stored, a_codes
        assert -1 in a_codes  # some uploads met a dead node
        assert b_codes and set(b_codes) == {200}, sorted(set(b_codes))
        # Nothing A acknowledged is lost: every 201 is a row, its files are in the bucket, and B serves them.
        for answer in stored:
            row = Item.objects.get(pk=answer["id"])
            for name in (row.media.name, row.preview.name):
                assert objects.Object(name).content_length > 0
            head = b.request("GET", path_of(answer["media_url"]), headers={"Range": "bytes=0-7"})[2]
            assert head == b"\x89PNG\r\n\x1a\n"
        # And no row points at a file that is not stored (files are written before the row commits).
        keys = {entry.key for entry in objects.objects.all()}
        for row in Item.objects.exclude(media=""):
            assert row.media.name in keys and row.preview.name in keys
        assert b.json("GET", "/healthz")[0] == 200
    finally:
        a.stop()
        b.stop()
