"""`manage.py ingest`: files, folders and manifests; bad rows reported, good rows stored; re-runs finish the job."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from io import StringIO

import psutil
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from search.models import Embedding, Item
from tests.conftest import ROOT
from tests.search.conftest import FAKE_SPACES
from tests.search.helpers import png_bytes, truncated, wav_bytes

pytestmark = pytest.mark.django_db


def run(*args):
    out, err = StringIO(), StringIO()
    try:
        call_command("ingest", *args, stdout=out, stderr=err, verbosity=1)
        code = 0
    except CommandError as exc:
        err.write(str(exc))
        code = exc.returncode
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def library(tmp_path):
    folder = tmp_path / "library"
    (folder / "nested").mkdir(parents=True)
    (folder / "red.png").write_bytes(png_bytes((220, 20, 20), seed=1))
    (folder / "nested" / "blue.png").write_bytes(png_bytes((20, 20, 220), seed=2))
    (folder / "beep.wav").write_bytes(wav_bytes(seconds=1.5, freq=880))
    (folder / "note.txt").write_text("a quiet humming drone in the night")
    return folder


@pytest.mark.usefixtures("fake_spaces")
def test_a_folder_is_ingested_recursively_and_a_rerun_adds_nothing(library):
    code, out, err = run(str(library))
    assert code == 0, err
    assert "4 added, 0 already present, 0 failed" in out
    assert sorted(Item.objects.values_list("modality", flat=True)) == ["audio", "image", "image", "text"]
    assert Item.objects.get(modality="text").title == "note"
    code, out, _ = run(str(library))
    assert code == 0 and "0 added, 4 already present, 0 failed" in out
    assert Item.objects.count() == 4 and Embedding.objects.filter(segment_start__isnull=True).count() == 4


@pytest.mark.usefixtures("fake_spaces")
def test_a_manifest_with_bad_rows_stores_the_good_ones_and_reports_the_bad(tmp_path):
    (tmp_path / "ok.png").write_bytes(png_bytes(seed=4))
    (tmp_path / "ok.wav").write_bytes(wav_bytes(seconds=1))
    (tmp_path / "corrupt.png").write_bytes(truncated(png_bytes(size=(200, 200), seed=5), 0.4))
    (tmp_path / "truncated.wav").write_bytes(truncated(wav_bytes(seconds=1), 0.002))
    (tmp_path / "mystery.xyz").write_bytes(b"\x00\x01\x02 not a known format at all")
    manifest = tmp_path / "manifest.csv"
    with open(manifest, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "text", "title", "caption", "tags", "collection", "metadata"])
        writer.writerow(["ok.png", "", "Good image", "a small picture", "a;b", "col", '{"k": 1}'])
        writer.writerow(["ok.wav", "", "Good sound", "", "", "", ""])
        writer.writerow(["corrupt.png", "", "Bad image", "", "", "", ""])
        writer.writerow(["truncated.wav", "", "Bad sound", "", "", "", ""])
        writer.writerow(["mystery.xyz", "", "Unknown", "", "", "", ""])
        writer.writerow(["", "just some text", "A text", "", "x", "", ""])
    code, out, err = run(str(manifest))
    assert code == 1
    assert "3 added, 0 already present, 3 failed" in out
    assert "corrupt.png" in err and "truncated.wav" in err and "mystery.xyz" in err
    assert "unsupported file type" in err
    image = Item.objects.get(title="Good image")
    assert (image.text, image.tags, image.collection) == ("a small picture", ["a", "b"], "col")
    assert image.metadata == {"k": 1}
    assert set(Item.objects.values_list("title", flat=True)) == {"Good image", "Good sound", "A text"}


@pytest.mark.usefixtures("fake_spaces")
def test_a_jsonl_manifest_and_its_row_errors(tmp_path):
    manifest = tmp_path / "rows.jsonl"
    manifest.write_text("\n".join([
        json.dumps({"text": "first text", "tags": ["t1"], "metadata": {"lang": "en"}}),
        "{not json",
        json.dumps({"title": "no content"}),
        json.dumps({"path": "missing.png"}),
    ]) + "\n")
    code, out, err = run(str(manifest))
    assert code == 1
    assert "1 added, 0 already present, 3 failed" in out
    assert "invalid JSON" in err and "needs a 'path' or a 'text'" in err and "cannot read the file" in err
    assert Item.objects.get().metadata == {"lang": "en"}


def test_missing_paths_are_an_error():
    with pytest.raises(CommandError, match="no such file or folder"):
        call_command("ingest", "/nope/nothing-here")


def test_ingest_through_the_real_demo_model(library):
    code, out, err = run(str(library))
    assert code == 0, err
    assert Item.objects.filter(embedding_status="done").count() == 4
    audio = Item.objects.get(modality="audio")
    assert audio.embeddings.get(segment_start__isnull=True).space.name == "demo"


WORKER_OF_A_GONE_PARENT = """
import os, sys, time
from search.ingest import decode_pool
decode_pool.init_worker({}, parent=int(sys.argv[1]))  # started by a process that is not its parent (any more)
time.sleep(30)
"""


def test_a_decode_worker_whose_parent_died_while_it_started_ends():
    # The parent of a spawned worker can be killed while the worker still imports; by the time the worker watches,
    # it has another parent, and watching "whoever is the parent now" would keep it waiting for work forever.
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", WORKER_OF_A_GONE_PARENT, str(gone.pid)], cwd=ROOT, timeout=30,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - started < 15


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_kill_9_then_rerun_finishes_without_duplicates_or_orphans(tmp_path, settings):
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(120):
        (folder / f"img{i:03d}.png").write_bytes(png_bytes((i * 2 % 255, 90, 160), size=(64, 64), seed=i))
    media = tmp_path / "media"
    env = {
        **os.environ,
        "SEARCH_DB_NAME": connection.settings_dict["NAME"],
        "DJANGO_MEDIA_ROOT": str(media),
        "SEARCH_SPACES_JSON": json.dumps(FAKE_SPACES),
    }
    command = [sys.executable, str(ROOT / "manage.py"), "ingest", str(folder), "--batch-size", "8", "-v", "0"]
    # Kill mid-run twice, once early and once later, each time while batches are being written.
    workers = []
    for reached in (10, 60):
        child = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while Item.objects.count() < reached and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        workers += psutil.Process(child.pid).children(recursive=True)  # its decode pool (120 files)
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    assert Item.objects.count() < 120, "the run finished before it could be interrupted"
    assert workers, "the runs had no decode pool"
    _, alive = psutil.wait_procs(workers, timeout=10)
    assert not alive, "decode workers outlived their killed parent"
    finished = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr
    assert Item.objects.count() == 120
    assert Item.objects.filter(embeddings__isnull=True).count() == 0
    assert Embedding.objects.filter(segment_start__isnull=True).count() == 120
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM search_embedding WHERE NOT (l2_norm(vector) BETWEEN 0.999 AND 1.001)")
        assert cursor.fetchone()[0] == 0, "NaN, zero or unnormalised vectors were stored"
    stored = set(Item.objects.values_list("media", flat=True)) | set(Item.objects.values_list("preview", flat=True))
    on_disk = {p.relative_to(media).as_posix() for p in media.rglob("*") if p.is_file()}
    assert on_disk == stored
