"""Bulk ingest with a pool of decode workers, threads or processes: the same outcomes, in the same order, as
in-process."""

import pytest

from search.ingest.ingester import Ingester, IngestInput
from search.models import Item
from tests.search.documents_gen import image_pdf, text_pdf
from tests.search.helpers import png_bytes, truncated, wav_bytes
from tests.search.media_corpus import camera_jpeg

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fake_spaces")]


def inputs():
    good = png_bytes(seed=11)
    return [
        IngestInput(data=good, source="good.png"),
        IngestInput(data=truncated(png_bytes(size=(200, 200), seed=12), 0.4), source="corrupt.png"),
        IngestInput(text="a humming drone", source="note"),
        IngestInput(data=good, source="twin.png"),
        IngestInput(data=wav_bytes(seconds=2), source="long.wav"),
        IngestInput(data=camera_jpeg(), source="camera.jpg"),
        IngestInput(data=bytes(range(256)) * 8, source="mystery.bin"),
        IngestInput(data=wav_bytes(seconds=0.5, freq=880), source="beep.wav"),
        IngestInput(data=text_pdf(["A report on harbour cranes.", "Their maintenance."]), source="report.pdf",
                    filename="report.pdf"),
        IngestInput(data=image_pdf(), source="scan.pdf", filename="scan.pdf"),
        IngestInput(data=b"# Notes\n\nThe *kettle* whistles.\n", source="notes.md", filename="notes.md"),
    ]


def summary(outcomes):
    return [(o.source, o.status, o.code) for o in outcomes]


@pytest.mark.parametrize("threads", [False, True], ids=["processes", "threads"])
def test_a_pool_gives_the_outcomes_of_in_process_decoding_in_input_order(settings, threads):
    settings.SEARCH_MAX_AUDIO_SECONDS = 1  # the workers must apply the caps of this process
    settings.SEARCH_EXTRACT_OCR = False  # and its switches: without text recognition a scan is refused
    in_process = summary(Ingester(batch_size=3).ingest_many(inputs()))
    Item.objects.all().delete()
    with Ingester(batch_size=3, workers=2, threads=threads) as ingester:
        pooled = ingester.ingest_many(inputs())
    assert summary(pooled) == in_process
    assert [status for _, status, _ in in_process] == [
        "added", "failed", "added", "present", "failed", "added", "failed", "added", "added", "failed", "added"]
    assert dict((s, c) for s, _, c in in_process)["long.wav"] == "too_large"
    camera = next(o.item for o in pooled if o.source == "camera.jpg")
    assert camera.taken_at is not None and camera.metadata["camera_make"] == "Canon"
    assert camera.preview and camera.media
    assert dict((s, c) for s, _, c in in_process)["scan.pdf"] == "no_text_layer"
    report = next(o.item for o in pooled if o.source == "report.pdf")
    assert report.text_pages and "harbour cranes" in report.text
    assert Item.objects.count() == 6


def as_files(folder):
    """The same inputs as files named by path (what `manage.py ingest` gives), and one that is not there."""
    out = []
    for n, source in enumerate(inputs()):
        if source.data is None:
            out.append(source)
            continue
        path = folder / f"{n}-{source.source}"
        path.write_bytes(source.data)
        out.append(IngestInput(path=str(path), source=source.source, filename=path.name))
    out.append(IngestInput(path=str(folder / "gone.jpg"), source="gone.jpg", filename="gone.jpg"))
    return out


@pytest.mark.parametrize("threads", [False, True], ids=["processes", "threads"])
def test_files_named_by_path_are_read_by_the_workers_with_the_same_outcomes(settings, tmp_path, threads):
    from django.core.files.storage import default_storage

    settings.SEARCH_MAX_AUDIO_SECONDS = 1
    settings.SEARCH_EXTRACT_OCR = False  # the scan among the files is refused, as without text recognition
    in_process = summary(Ingester(batch_size=3).ingest_many(as_files(tmp_path)))
    Item.objects.all().delete()
    with Ingester(batch_size=3, workers=2, threads=threads) as ingester:
        pooled = ingester.ingest_many(as_files(tmp_path))
    assert summary(pooled) == in_process
    assert in_process[-1] == ("gone.jpg", "failed", "unreadable")
    assert dict((s, c) for s, _, c in in_process)["long.wav"] == "too_large"
    for outcome in pooled:
        if outcome.status == "added" and outcome.item.media:
            original = next(tmp_path.glob(f"*-{outcome.source}")).read_bytes()
            with default_storage.open(outcome.item.media.name) as stored:
                assert stored.read() == original  # the original, copied whole
            assert outcome.item.byte_size == len(original)
    assert Item.objects.count() == 6


def test_a_file_that_changes_between_hashing_and_decoding_is_refused(tmp_path, settings):
    from search.ingest import decode_pool
    from search.ingest.prepare import PreparedMedia
    from search.media import UnreadableFile

    path = tmp_path / "photo.png"
    path.write_bytes(png_bytes(seed=1))
    digest, stamp = decode_pool.digest_file(str(path))
    assert isinstance(decode_pool.decode_file(str(path), digest, stamp, path.name), PreparedMedia)
    path.write_bytes(png_bytes(seed=2, size=(40, 40)))
    refused = decode_pool.decode_file(str(path), digest, stamp, path.name)
    assert isinstance(refused, UnreadableFile) and "changed" in str(refused)
    settings.SEARCH_MAX_UPLOAD_BYTES = 10
    assert decode_pool.digest_file(str(path)).code == "too_large"
    assert decode_pool.digest_file(str(tmp_path)).code == "unreadable"  # a folder


def stored_state():
    """What a run leaves, by content: each item's fields, its vectors and the bytes of its files."""
    from django.core.files.storage import default_storage

    from search.models import Embedding

    def read(name):
        with default_storage.open(name) as handle:
            return handle.read()

    items = {}
    for item in Item.objects.order_by("sha256"):
        vectors = sorted((e.space.name, e.segment_start or -1.0, [float(x) for x in e.vector])
                         for e in Embedding.objects.filter(item=item).select_related("space"))
        items[item.sha256] = (item.modality, item.width, item.height, item.taken_at, item.metadata, item.text,
                              item.embedding_status, vectors, read(item.media.name) if item.media else b"",
                              read(item.preview.name) if item.preview else b"")
    return items


def test_the_items_vectors_and_thumbnails_are_the_same_whatever_the_pool_size(settings, tmp_path):
    """Decoded here, by one worker process or two, or by two threads, while the models load in a thread: byte
    for byte the same."""
    settings.SEARCH_MAX_AUDIO_SECONDS = 1
    settings.SEARCH_EXTRACT_OCR = False
    files = as_files(tmp_path)  # written once: a generated PDF holds the time it was made
    runs = []
    for workers, threads in ((0, False), (1, False), (2, False), (2, True)):
        Item.objects.all().delete()
        with Ingester(batch_size=4, workers=workers, threads=threads) as ingester:
            outcomes = ingester.ingest_many(
                IngestInput(path=f.path, source=f.source, filename=f.filename) if f.path
                else IngestInput(text=f.text, source=f.source) for f in files)
        runs.append((summary(outcomes), stored_state()))
    assert runs[0][1] and any(len(state[7]) for state in runs[0][1].values())  # vectors were compared
    assert runs[1] == runs[0]
    assert runs[2] == runs[0]
    assert runs[3] == runs[0]


def test_the_command_decodes_a_small_folder_in_threads_and_a_large_one_in_processes(tmp_path, monkeypatch):
    """A corrupt photo is reported with its reason and the others are stored, whatever the workers are."""
    import os
    from io import StringIO

    from django.core.management import call_command
    from django.core.management.base import CommandError

    from search.management.commands import ingest

    made = []

    class Recording(Ingester):
        def __init__(self, **kwargs):
            made.append(kwargs)
            super().__init__(**kwargs)

    monkeypatch.setattr(ingest, "Ingester", Recording)
    for n in range(3):
        (tmp_path / f"{n}.png").write_bytes(png_bytes(size=(120, 90), seed=n))
    (tmp_path / "corrupt.png").write_bytes(truncated(png_bytes(size=(200, 200), seed=9), 0.4))
    cores = os.cpu_count() or 1
    for processes_from, threads in ((ingest.PROCESSES_FROM, True), (4, False)):
        Item.objects.all().delete()
        monkeypatch.setattr(ingest, "PROCESSES_FROM", processes_from)
        errors = StringIO()
        with pytest.raises(CommandError, match="3 added, 0 already present, 1 failed"):
            call_command("ingest", str(tmp_path), stderr=errors, verbosity=0)
        assert f"failed: {tmp_path / 'corrupt.png'}: the image cannot be decoded" in errors.getvalue()
        assert made[-1]["threads"] is threads
        assert made[-1]["workers"] == (min(cores, 4) if threads else 1)  # a process per 16 inputs
        assert Item.objects.filter(modality="image").exclude(preview="").count() == 3
