"""Bulk work as background jobs: the batch API, job status, cancelling, resuming and retrying.

The worker's loop is procrastinate's; these tests run the job the task runs (search.jobs.runner.run) in
this process, against the real database. test_production_stack.py runs real workers.
"""

import pytest
from django.core.cache import cache
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from search.jobs import runner, submit
from search.models import Embedding, EmbeddingStatus, Item, Job, JobInput
from tests.search.helpers import png_bytes
from tests.search.users import make_user

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_throttles():
    cache.clear()


@pytest.fixture
def alice():
    user = make_user("alice")
    return user, Token.objects.create(user=user).key


def client_for(token=None) -> APIClient:
    client = APIClient()
    if token:
        client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


def queued_tasks(job_id: int) -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM procrastinate_jobs WHERE args->>'job_id' = %s AND status = 'todo'",
                       [str(job_id)])
        return cursor.fetchone()[0]


@pytest.mark.usefixtures("fake_spaces")
def test_a_json_batch_is_accepted_with_202_and_each_text_is_stored_once(alice):
    user, token = alice
    client = client_for(token)
    assert client.post("/api/items/", {"text": "already here"}, format="json").status_code == 201
    body = {"items": [{"text": "a red circle", "tags": ["shape"]}, {"text": "already here"},
                      {"text": "a blue square", "title": "Square", "metadata": {"n": 3}}]}
    response = client.post("/api/items/batch/", body, format="json")
    assert response.status_code == 202, response.content
    job = response.json()
    assert response["Location"] == job["url"]
    assert (job["status"], job["total"], job["processed"]) == ("queued", 3, 0)
    assert queued_tasks(job["id"]) == 1  # deferred in the same transaction as the job row

    runner.run(job["id"])  # what the worker's task does

    done = client.get(job["url"]).json()
    assert (done["status"], done["processed"], done["succeeded"], done["failed"]) == ("done", 3, 3, 0)
    assert [entry["outcome"] for entry in done["inputs"]] == ["added", "present", "added"]
    assert all(entry["item_url"].endswith(f"/api/items/{entry['item']}/") for entry in done["inputs"])
    square = Item.objects.get(pk=done["inputs"][2]["item"])
    assert (square.title, square.metadata, square.owner_id) == ("Square", {"n": 3}, user.pk)
    assert Item.objects.filter(text="a red circle", tags=["shape"]).count() == 1
    assert not JobInput.objects.filter(job_id=job["id"], data__isnull=False).exists()  # payloads cleared


def test_a_multipart_batch_of_files_is_embedded_by_the_real_model(alice):
    _, token = alice
    files = [("red.png", png_bytes((220, 20, 20))), ("blue.png", png_bytes((20, 20, 220), seed=1)),
             ("notes.png", b"this is no image at all")]  # words in a file named .png: refused
    from django.core.files.uploadedfile import SimpleUploadedFile

    response = client_for(token).post("/api/items/batch/", {
        "file": [SimpleUploadedFile(name, data) for name, data in files], "tags": "batch,demo",
    }, format="multipart")
    assert response.status_code == 202, response.content
    runner.run(response.json()["id"])
    job = client_for(token).get(response.json()["url"]).json()
    assert (job["status"], job["succeeded"], job["failed"]) == ("done", 2, 1)
    outcomes = {entry["name"]: entry for entry in job["inputs"]}
    assert outcomes["red.png"]["outcome"] == outcomes["blue.png"]["outcome"] == "added"
    assert outcomes["notes.png"]["outcome"] == "failed" and outcomes["notes.png"]["error"]
    stored = Item.objects.get(pk=outcomes["red.png"]["item"])
    assert stored.tags == ["batch", "demo"] and stored.embedding_status == EmbeddingStatus.DONE
    assert Embedding.objects.filter(item=stored, segment_start__isnull=True).exists()


@pytest.mark.usefixtures("fake_spaces")
@pytest.mark.parametrize("body, field", [
    ({"items": []}, "items"),
    ({"items": [{"text": "ok"}, {"title": "no text"}]}, "items"),
    ({"items": [{"text": "ok"}, "just a string"]}, "items"),
    ({"nothing": 1}, "items"),
    ([{"text": "x"}] * 6, "items"),  # over the cap set below
])
def test_bad_batches_get_400_naming_the_input(alice, settings, body, field):
    settings.SEARCH_MAX_BATCH_ITEMS = 5
    response = client_for(alice[1]).post("/api/items/batch/", body, format="json")
    assert response.status_code == 400 and field in response.json()
    assert not Job.objects.exists()


@pytest.mark.usefixtures("fake_spaces")
def test_batches_need_a_token_and_jobs_are_seen_by_their_owner_only(alice):
    assert client_for().post("/api/items/batch/", {"items": [{"text": "x"}]}, format="json").status_code in (401, 403)
    job = client_for(alice[1]).post("/api/items/batch/", {"items": [{"text": "x"}]}, format="json").json()
    assert client_for().get(job["url"]).status_code in (401, 403)
    mallory = make_user("mallory")
    assert client_for(Token.objects.create(user=mallory).key).get(job["url"]).status_code == 404
    assert client_for().get("/api/jobs/999999/").status_code in (401, 403)


@pytest.mark.usefixtures("fake_spaces")
def test_a_cancelled_job_stores_nothing(alice):
    job = client_for(alice[1]).post("/api/items/batch/", {"items": [{"text": "x"}, {"text": "y"}]},
                                    format="json").json()
    cancelled = client_for(alice[1]).post(f"/api/jobs/{job['id']}/cancel/").json()
    assert cancelled["status"] == "cancelled"
    runner.run(job["id"])
    assert Job.objects.get(pk=job["id"]).status == "cancelled"
    assert not Item.objects.exists()


@pytest.mark.usefixtures("fake_spaces")
def test_a_stopping_worker_leaves_the_job_queued_and_the_next_run_finishes_it_without_duplicates(alice, settings):
    settings.SEARCH_JOB_CHUNK = 2
    texts = [{"text": f"note {n}"} for n in range(5)]
    job_id = client_for(alice[1]).post("/api/items/batch/", {"items": texts}, format="json").json()["id"]
    runner.STOPPING.set()
    try:
        runner.run(job_id)  # the worker got SIGTERM: nothing more than the first chunk check runs
    finally:
        runner.STOPPING.clear()
    job = Job.objects.get(pk=job_id)
    assert job.status == "queued" and queued_tasks(job_id) == 2  # the original task and the re-deferred one
    runner.run(job_id)
    job.refresh_from_db()
    assert (job.status, job.processed, job.succeeded) == ("done", 5, 5)
    assert Item.objects.filter(text__startswith="note ").count() == 5


@pytest.mark.usefixtures("fake_spaces")
def test_a_failing_attempt_is_retried_and_the_last_one_marks_the_job_failed(alice, monkeypatch):
    from search.runtime import metrics

    job_id = client_for(alice[1]).post("/api/items/batch/", {"items": [{"text": "x"}]}, format="json").json()["id"]

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(runner.Ingester, "ingest_many", broken)
    with pytest.raises(OSError):
        runner.run(job_id, final_attempt=False)  # raised again: the queue retries with backoff
    job = Job.objects.get(pk=job_id)
    assert job.status == "queued" and "disk full" in job.error
    before = metrics.JOB_FAILURES.labels(kind="ingest")._value.get()
    runner.run(job_id, final_attempt=True)
    job.refresh_from_db()
    assert (job.status, job.attempts) == ("failed", 2) and "disk full" in job.error
    assert metrics.JOB_FAILURES.labels(kind="ingest")._value.get() == before + 1


@pytest.mark.usefixtures("fake_spaces")
def test_a_re_embed_job_computes_the_vectors_again(alice):
    user, token = alice
    created = [client_for(token).post("/api/items/", {"text": f"t{n}"}, format="json").json()["id"] for n in range(3)]
    job = submit.submit_embed(["fake"], item_ids=created[:2], owner_id=user.pk)
    assert Embedding.objects.filter(item_id__in=created[:2]).count() == 0  # dropped when submitted
    runner.run(job.pk)
    job.refresh_from_db()
    assert (job.status, job.total, job.processed, job.succeeded) == ("done", 2, 2, 2)
    assert Embedding.objects.filter(item_id__in=created, segment_start__isnull=True).count() == 3


@pytest.mark.usefixtures("fake_spaces")
def test_embed_background_queues_a_backfill_job(alice):
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command("embed", "--space", "fake", "--missing-only", "--background", stdout=out)
    job = Job.objects.get()
    assert job.kind == "embed" and job.params["spaces"] == ["fake"] and f"job {job.pk}" in out.getvalue()
    assert queued_tasks(job.pk) == 1
