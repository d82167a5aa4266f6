"""Media files in the storage that STORAGES["default"] names (the local disk or an S3-compatible bucket), for what
Django's Storage API does not do well on an object store: read a byte range without downloading the whole object
(`open_range`), list what is stored (`stored_names`), and build either backend on demand (`local_storage`,
`s3_storage`) for `manage.py move_media`.

django-storages' S3File downloads an object whole on its first read; a player seeking in a ten-minute recording asks
for a few hundred kilobytes, so ranges go to S3 as Range GETs through the storage's own boto3 bucket.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.core.files.storage import FileSystemStorage, Storage, default_storage

CHUNK = 64 * 1024


class RangeNotSatisfiable(Exception):
    def __init__(self, size: int):
        super().__init__(f"the range is outside the file's {size} bytes")
        self.size = size


@dataclass
class Opened:
    """A file, or the part of it asked for: its bytes in chunks, the whole file's size, and the part's bounds."""

    chunks: Iterator[bytes]
    size: int
    start: int
    end: int  # inclusive, as in Content-Range
    ranged: bool
    handle: object | None = None  # a local file opened whole: FileResponse can hand it to the server (sendfile)

    @property
    def length(self) -> int:
        return self.end - self.start + 1


def is_s3(storage: Storage) -> bool:
    return hasattr(storage, "bucket") and hasattr(storage, "_normalize_name")


def _bounds(first: int | None, last: int | None, size: int) -> tuple[int, int]:
    if first is None:  # "bytes=-N": the last N bytes
        start, end = max(0, size - (last or 0)), size - 1
    else:
        start, end = first, min(size - 1 if last is None else last, size - 1)
    if start > end or start >= size:
        raise RangeNotSatisfiable(size)
    return start, end


def _read(handle, length: int) -> Iterator[bytes]:
    with handle:
        while length > 0:
            data = handle.read(min(CHUNK, length))
            if not data:
                return
            length -= len(data)
            yield data


def open_range(name: str, byte_range: tuple[int | None, int | None] | None = None,
               storage: Storage | None = None) -> Opened:
    """Open a stored file, or the range (first, last) of it as HTTP gives it (first None: the last `last` bytes).

    Raises FileNotFoundError for a name that is not stored, RangeNotSatisfiable for a range past its end."""
    storage = storage or default_storage
    if is_s3(storage):
        return _open_s3(storage, name, byte_range)
    try:
        handle = storage.open(name, "rb")
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        raise FileNotFoundError(name) from None
    try:
        size = handle.size
        if byte_range is None:
            return Opened(_read(handle, size), size, 0, size - 1, ranged=False, handle=handle)
        start, end = _bounds(*byte_range, size)
        handle.seek(start)
    except BaseException:
        handle.close()
        raise
    return Opened(_read(handle, end - start + 1), size, start, end, ranged=True)


def _open_s3(storage, name: str, byte_range) -> Opened:
    from botocore.exceptions import ClientError

    key = storage._normalize_name(name)
    request = {"Bucket": storage.bucket_name, "Key": key}
    if byte_range is not None:
        first, last = byte_range
        request["Range"] = f"bytes={'' if first is None else first}-{'' if last is None else last}"
    client = storage.connection.meta.client
    try:
        answer = client.get_object(**request)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code in ("NoSuchKey", "404", "NotFound"):
            raise FileNotFoundError(name) from None
        if code == "InvalidRange" or exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 416:
            raise RangeNotSatisfiable(storage.size(name)) from None
        raise
    body = answer["Body"]

    def chunks():
        try:
            yield from body.iter_chunks(CHUNK)
        finally:
            body.close()

    content_range = answer.get("ContentRange")  # "bytes 0-99/1234" when the store honoured a range
    if content_range:
        span, size = content_range.split(" ", 1)[1].split("/")
        start, end = (int(part) for part in span.split("-"))
        return Opened(chunks(), int(size), start, end, ranged=True)
    size = int(answer["ContentLength"])
    if byte_range is None:
        return Opened(chunks(), size, 0, size - 1, ranged=False)
    # A store that ignores Range sends everything: skip to the range.
    start, end = _bounds(*byte_range, size)
    return Opened(_skip(chunks(), start, end - start + 1), size, start, end, ranged=True)


def _skip(chunks: Iterator[bytes], offset: int, length: int) -> Iterator[bytes]:
    for data in chunks:
        if offset >= len(data):
            offset -= len(data)
            continue
        data = data[offset:offset + length]
        offset = 0
        length -= len(data)
        yield data
        if length <= 0:
            chunks.close()
            return


def stored_names(prefix: str, storage: Storage | None = None) -> Iterator[tuple[str, datetime | None]]:
    """Every stored name under `prefix` ("items", "previews") with its modification time (None where unknown)."""
    storage = storage or default_storage
    if is_s3(storage):
        location = storage.location.strip("/")
        paginator = storage.connection.meta.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=storage.bucket_name, Prefix=storage._normalize_name(prefix) + "/"):
            for entry in page.get("Contents", []):
                key = entry["Key"]
                yield (key[len(location) + 1:] if location else key), entry.get("LastModified")
        return
    yield from _walk(storage, prefix)


def _walk(storage: Storage, folder: str) -> Iterator[tuple[str, datetime | None]]:
    try:
        folders, files = storage.listdir(folder)
    except (FileNotFoundError, NotADirectoryError):
        return
    for name in files:
        path = f"{folder}/{name}"
        try:
            yield path, storage.get_modified_time(path)
        except (FileNotFoundError, NotImplementedError):
            yield path, None
    for sub in folders:
        yield from _walk(storage, f"{folder}/{sub}")


def local_storage(root: str | None = None) -> FileSystemStorage:
    """The local-disk backend at `root` (default DJANGO_MEDIA_ROOT), whichever backend is the default."""
    return FileSystemStorage(location=root)  # None: Django's MEDIA_ROOT


def s3_storage() -> Storage:
    """The S3 backend from the AWS_* settings, whichever backend is the default."""
    from search.storage.s3_media import MediaS3Storage

    return MediaS3Storage(**settings.SEARCH_S3_OPTIONS)


def copy_file(name: str, source: Storage, target: Storage, *, delete_source: bool = False) -> str:
    """Copy one stored file from `source` to `target` under the same name: "copied", "present" (already whole on the
    target: the same size, so a copy cut short by a kill is made again) or "missing" (in neither). With
    `delete_source`, the source's copy goes once the target's is whole. Safe to run again after a kill."""
    on_source = source.exists(name)
    on_target = target.exists(name)
    if not on_source:
        return "present" if on_target else "missing"
    size = source.size(name)
    if on_target and target.size(name) == size:
        outcome = "present"
    else:
        if on_target:
            target.delete(name)  # a copy cut short; saving over it would store under a new name instead
        with source.open(name, "rb") as handle:
            saved = target.save(name, handle)
        if saved != name or target.size(name) != size:
            raise OSError(f"{name} was stored as {saved} with {target.size(saved)} bytes, not {size}")
        outcome = "copied"
    if delete_source:
        source.delete(name)
    return outcome
