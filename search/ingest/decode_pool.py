"""Decoding in a worker (the bulk ingest's pool): a thread of the ingesting process, or a process of its own.
Importable before Django is set up: a spawned worker process unpickles these functions first and runs
`init_worker` after. In a thread they run as they are: what they spend their time in (libjpeg, zlib and the
other Pillow decoders, libsndfile, waiting on the PDF child, hashing) releases the GIL."""

import hashlib
import os
import threading
import time

from search.ingest.prepare import PreparedMedia, prepare_media
from search.media import EmptyContent, MediaRejected, MediaTooLarge, UnreadableFile, thumbnail_jpeg, waveform_png

# What a file was when it was hashed (size, modification time): it is decoded only if still the same.
Stamp = tuple[int, int]


def init_worker(overrides: dict, parent: int | None = None) -> None:
    """The parent's media settings (caps, decode size; a test or a run may have changed them), and no more.
    `parent`: the pid of the process that started the pool (the worker ends when it is gone).

    Not `django.setup()`: decoding needs no app, model or database, and loading every app costs each
    worker about half a second of CPU, as much as decoding a dozen camera photos.
    """
    from django.conf import settings

    _exit_with_parent(parent)
    if not settings.configured:
        settings.configure(**overrides)
    else:  # set up already from DJANGO_SETTINGS_MODULE (a setting read on import): the parent's values win
        for name, value in overrides.items():
            setattr(settings, name, value)


def _exit_with_parent(parent: int | None = None) -> None:
    """A worker whose parent was killed (kill -9 of `manage.py ingest`) would wait for work forever: each
    worker holds the writing end of its task queue too, so the queue never reports the parent gone.

    The parent says its pid: a parent killed while this worker was still importing (a spawned worker's imports
    take a few tenths of a second) has left it with another parent already, which `getppid` alone would take
    for the one to watch."""
    parent = os.getppid() if parent is None else parent

    def watch():
        while os.getppid() == parent:
            time.sleep(1)
        os._exit(0)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def warm() -> None:
    """A no-op task: submitting one per worker starts them all before the first file arrives."""


def digest_file(path: str) -> tuple[str, Stamp] | MediaRejected:
    """The sha256 of a file named for ingest, read here rather than sent here: a photo is megabytes, and
    copying it through a pipe cost more than hashing it. Streamed, so a huge file costs no memory."""
    from django.conf import settings

    try:
        with open(path, "rb") as handle:
            stat = os.fstat(handle.fileno())
            if stat.st_size == 0:
                return EmptyContent("the file is empty (0 bytes)")
            limit = settings.SEARCH_MAX_UPLOAD_BYTES
            if stat.st_size > limit:
                return MediaTooLarge(f"the file is {stat.st_size:,} bytes; the limit is {limit:,} bytes")
            digest = hashlib.file_digest(handle, "sha256").hexdigest()
    except OSError as exc:
        return UnreadableFile.reading(exc)
    return digest, (stat.st_size, stat.st_mtime_ns)


def decode_file(path: str, digest: str, stamp: Stamp, filename: str = "") -> PreparedMedia | MediaRejected:
    """`decode` of a file hashed by `digest_file`, unless it changed since."""
    try:
        with open(path, "rb") as handle:
            stat = os.fstat(handle.fileno())
            data = handle.read()
    except OSError as exc:
        return UnreadableFile.reading(exc)
    if (stat.st_size, stat.st_mtime_ns) != tuple(stamp) or len(data) != stat.st_size:
        return UnreadableFile("the file changed while it was being stored; run the ingest again")
    return decode(data, digest, filename)


def decode(data: bytes, digest: str, filename: str = "") -> PreparedMedia | MediaRejected:
    """`prepare_media` whose refusal is returned, not raised, and whose result travels without the bytes."""
    try:
        media = prepare_media(data, digest=digest, filename=filename)
    except MediaRejected as exc:
        return exc
    # The preview is drawn here too, in parallel with the parent's encoding (a document has none).
    if media.modality == "image":
        media.preview = thumbnail_jpeg(media.image)
    elif media.modality == "audio":
        media.preview = waveform_png(media.waveform)
    media.size, media.data = len(data), b""  # the bytes stay with the parent, or in the file
    return media
