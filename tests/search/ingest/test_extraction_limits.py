"""Words inside media (issue 27), bounded and private: each item is read in a child process under memory and CPU
limits, with the caps on pixels checked before any decoding. An item that breaks a limit fails alone with the
reason, the job reads the rest, and words stored before stay searchable. The child opens no connection.

Real models and the real database; the job runs here as the worker's task would (search.jobs.runner.run).
"""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.cache import cache
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from bench import _extraction_cases as cases
from search.jobs import runner, submit
from search.models import Embedding, Item
from tests.search.users import make_user

pytestmark = pytest.mark.django_db
REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(autouse=True)
def _fresh_throttles():
    cache.clear()


@pytest.fixture
def client():
    user = make_user("alice")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return api


def upload(client, name: str, data: bytes) -> int:
    from django.core.files.uploadedfile import SimpleUploadedFile

    response = client.post("/api/items/", {"file": SimpleUploadedFile(name, data)}, format="multipart")
    assert response.status_code == 201, response.content
    return response.json()["id"]


def read_again(item_ids: list[int]):
    job = submit.submit_extract(item_ids, missing_only=False)
    runner.run(job.pk)
    job.refresh_from_db()
    return job


@pytest.mark.skipif(not cases.espeak_available(), reason="espeak-ng makes the test speech")
def test_a_recording_over_its_cpu_time_fails_alone_and_keeps_the_words_read_before(client, settings):
    memo = upload(client, "memo.wav", cases.spoken_wav(" ".join(["The train to Boston leaves at nine."] * 4)))
    sign = upload(client, "sign.jpg", cases.sign_picture(["FRESH BREAD", "OPEN DAILY"], seed=1))
    assert read_again([memo, sign]).status == "done"
    before = Item.objects.get(pk=memo)
    vectors = Embedding.objects.filter(item_id=memo).count()
    assert "boston" in before.extracted_text and vectors

    # One second of CPU time, none for each second of sound: the recogniser needs several.
    settings.SEARCH_EXTRACT_CPU_SECONDS = 1
    settings.SEARCH_EXTRACT_CPU_PER_AUDIO_SECOND = 0
    job = read_again([memo, sign])
    assert (job.status, job.succeeded, job.failed) == ("done", 1, 1)
    after = Item.objects.get(pk=memo)
    assert after.extraction_status == "failed"
    assert after.extraction_error == "reading it took more than 1 s of CPU time"
    assert after.extracted_text == before.extracted_text  # the words read before, still searchable
    assert Embedding.objects.filter(item_id=memo).count() == vectors
    assert Item.objects.get(pk=sign).extraction_status == "done"  # read by a new child after the first ended


def test_a_picture_over_the_memory_limit_fails_with_the_reason_and_the_job_goes_on(client, settings):
    ids = [upload(client, f"sign{n}.jpg", cases.sign_picture([f"GATE {n}"], seed=n)) for n in range(2)]
    settings.SEARCH_EXTRACT_MAX_MEMORY = 512 * 2**20  # less than the models need
    job = read_again(ids)
    assert (job.status, job.succeeded, job.failed) == ("done", 0, 2)
    for item in Item.objects.filter(pk__in=ids):
        assert (item.extraction_status, item.extraction_error) == (
            "failed", "reading it needed more than the 512 MiB of memory allowed")

    settings.SEARCH_EXTRACT_MAX_MEMORY = 3 * 2**30
    assert read_again(ids).succeeded == 2  # a new child under the new limit


def test_a_picture_over_the_pixel_cap_is_refused_before_it_is_decoded(client, settings):
    item = upload(client, "sign.jpg", cases.sign_picture(["NO PARKING"], seed=2))
    settings.SEARCH_MAX_IMAGE_PIXELS = 100_000  # the sign is 800x520
    job = read_again([item])
    assert (job.status, job.failed) == ("done", 1)
    stored = Item.objects.get(pk=item)
    assert stored.extraction_status == "failed"
    assert stored.extraction_error == "the image is 800x520 pixels; the limit is 100,000 pixels"


CHILD = """
import time
from bench import _extraction_cases as cases
from search.ingest.extraction_worker import Limits, Reader

reader = Reader(Limits(max_memory=3 * 2**30, cpu_seconds=60, idle_seconds=60))
picture = {"kind": "picture", "mime": "image/jpeg", "max_pixels": 10**7, "max_side": 2000, "cpu_seconds": 60}
print(reader.read(picture, [cases.sign_picture(["FRESH BREAD"])], wall_seconds=120)["text"])
audio = {"seconds": 60, "samples": 10**7, "channels": 2, "sample_rate": 48000, "output_rate": 16000}
speech = {"kind": "speech", "mime": "audio/wav", "audio": audio, "language": "en-us", "cpu_seconds": 60,
          "cpu_per_second": 1.0}
reader.read(speech, [cases.tone_wav(1.0)], wall_seconds=120)
time.sleep(15)
reader.close()
"""


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed (apt-get install strace)")
def test_the_reading_child_opens_no_connection(tmp_path):
    """Every thread of the parent and of the reading child (onnxruntime with telemetry on looks up its events
    host about ten seconds after a session starts), for 15 s after both readers ran; the parent's environment
    does not turn telemetry off, the child must."""
    env = {k: v for k, v in __import__("os").environ.items() if k != "ORT_DISABLE_TELEMETRY"}
    env.update(HOME=str(tmp_path), XDG_CACHE_HOME=str(tmp_path / ".cache"), PYTHONPATH=str(REPO))
    trace = tmp_path / "trace.txt"
    done = subprocess.run(["strace", "-f", "-qq", "-e", "trace=connect,sendto,sendmsg", "-o", str(trace),
                           sys.executable, "-c", CHILD], env=env, cwd=REPO, capture_output=True, text=True,
                          timeout=240)
    assert done.returncode == 0, done.stderr
    assert "BREAD" in done.stdout
    assert [row for row in trace.read_text().splitlines() if "AF_INET" in row] == []
    assert not (tmp_path / ".cache" / "Microsoft").exists()
