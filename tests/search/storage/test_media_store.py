"""Media in an S3-compatible bucket (a real moto server on a local port) and on the local disk, through
search/storage/media_store.py: byte ranges as ranged GETs, listing for the orphan sweep, and `manage.py move_media`
between the two, resumable after a kill (issue 29)."""

import io
import os

import pytest
from django.core.files.base import ContentFile
from django.core.management import call_command
from django.core.management.base import CommandError

from search.ingest.ingester import Ingester, IngestInput, sweep_orphan_files
from search.storage import media_store
from tests.search.helpers import png_bytes, wav_bytes

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fake_spaces")]

DATA = bytes(range(256)) * 40  # 10,240 bytes


def read(opened) -> bytes:
    return b"".join(opened.chunks)


@pytest.fixture(params=["local", "s3"])
def storage(request, tmp_path):
    if request.param == "local":
        return media_store.local_storage(str(tmp_path))
    request.getfixturevalue("s3_media")
    return media_store.s3_storage()


def test_ranges_are_read_without_the_whole_file(storage):
    storage.save("items/ab/f.bin", ContentFile(DATA))
    whole = media_store.open_range("items/ab/f.bin", storage=storage)
    assert (whole.size, whole.ranged, read(whole)) == (len(DATA), False, DATA)
    part = media_store.open_range("items/ab/f.bin", (100, 199), storage=storage)
    assert (part.start, part.end, part.size, part.ranged) == (100, 199, len(DATA), True)
    assert read(part) == DATA[100:200]
    assert read(media_store.open_range("items/ab/f.bin", (None, 16), storage=storage)) == DATA[-16:]
    assert read(media_store.open_range("items/ab/f.bin", (10_000, None), storage=storage)) == DATA[10_000:]
    past = media_store.open_range("items/ab/f.bin", (10_000, 99_999), storage=storage)
    assert (past.end, read(past)) == (len(DATA) - 1, DATA[10_000:])
    with pytest.raises(media_store.RangeNotSatisfiable) as refused:
        media_store.open_range("items/ab/f.bin", (len(DATA) + 5, None), storage=storage)
    assert refused.value.size == len(DATA)
    with pytest.raises(FileNotFoundError):
        media_store.open_range("items/ab/none.bin", storage=storage)


def test_stored_names_lists_every_file_under_a_folder(storage):
    for name in ("items/aa/1.png", "items/bb/2.png", "previews/aa/1.jpg"):
        storage.save(name, ContentFile(b"x"))
    listed = dict(media_store.stored_names("items", storage=storage))
    assert sorted(listed) == ["items/aa/1.png", "items/bb/2.png"]
    assert all(modified is not None for modified in listed.values())


def test_uploads_previews_and_orphans_live_in_the_bucket(s3_media, tmp_path, settings):
    settings.MEDIA_ROOT = str(tmp_path / "unused")
    item = Ingester().ingest(IngestInput(data=wav_bytes(seconds=0.5), title="tone")).item
    keys = {entry.key for entry in s3_media.objects.all()}
    assert keys == {item.media.name, item.preview.name}
    s3_media.put_object(Key="items/00/" + "0" * 64 + ".png", Body=b"left by a crash")
    assert sweep_orphan_files() == ["items/00/" + "0" * 64 + ".png"]
    assert {entry.key for entry in s3_media.objects.all()} == keys
    assert not os.path.exists(tmp_path / "unused")  # nothing was written to the local disk


def test_move_media_copies_everything_and_resumes_after_a_kill(s3_media, tmp_path, settings):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    settings.STORAGES = {**settings.STORAGES, "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"}}
    items = [Ingester().ingest(IngestInput(data=png_bytes(seed=n), title=f"p{n}")).item for n in range(3)]
    names = sorted(name for item in items for name in (item.media.name, item.preview.name))
    local = media_store.local_storage()
    # A run killed halfway: one file copied whole, one cut short.
    s3_media.upload_fileobj(local.open(names[0], "rb"), names[0])
    s3_media.put_object(Key=names[1], Body=b"partial")
    out = io.StringIO()
    call_command("move_media", "--from", "local", "--to", "s3", stdout=out)
    assert "6/6 files: 5 copied, 1 there already, 0 missing" in out.getvalue()
    for name in names:
        assert s3_media.Object(name).get()["Body"].read() == local.open(name, "rb").read()
    call_command("move_media", "--from", "local", "--to", "s3", "--delete-source", stdout=out)
    assert "6/6 files: 0 copied, 6 there already" in out.getvalue()
    assert not any(local.exists(name) for name in names)
    # And back, with the disk as the target.
    call_command("move_media", "--from", "s3", "--to", "local", stdout=out)
    assert all(local.open(name, "rb").read() == s3_media.Object(name).get()["Body"].read() for name in names)
    local.delete(names[2])
    s3_media.Object(names[2]).delete()
    with pytest.raises(CommandError, match="1 files that items refer to are in neither backend"):
        call_command("move_media", "--from", "s3", "--to", "local", stdout=out)
    with pytest.raises(CommandError, match="same backend"):
        call_command("move_media", "--from", "s3", "--to", "s3")
