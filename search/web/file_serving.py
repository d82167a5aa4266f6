"""Serving stored media and previews after the access check, with byte ranges for audio seeking.

Files come from the media storage (the local disk, or a private S3 bucket: search/storage/media_store.py), always
through this view: a hidden item's files are as hidden as its page, at once and on every node, and each answer
carries the headers below (a document is only ever downloaded). Signed bucket URLs would take the bytes off the web
nodes but stay valid for anyone holding one until they expire, could not carry those headers, and need the bucket
reachable from browsers; a range is one ranged GET to the bucket, streamed in 64 KiB chunks.
"""

import mimetypes
import os
import re

from django.http import FileResponse, Http404, HttpResponse, StreamingHttpResponse

from search.engine import access
from search.models import Item
from search.storage import media_store

# Media is only ever served as one of these types, whatever its file name says.
# Documents are only ever downloaded, never shown by the browser from this origin (an uploaded HTML page
# is someone else's page), and text in UTF-8 as it was uploaded.
DOCUMENT_DOWNLOADS = {"text/plain": "text/plain", "text/markdown": "text/markdown", "text/html": "text/html",
                      "application/pdf": "application/pdf"}


SERVED_TYPES = {  # the types of search.media.media_formats.FORMATS, as mimetypes names them by extension
    "image/png", "image/jpeg", "image/webp", "image/gif", "image/heic", "image/avif", "image/tiff", "image/bmp",
    "image/jp2", "image/jxl",
    "audio/wav", "audio/x-wav", "audio/flac", "audio/ogg", "audio/mpeg", "audio/mp4", "video/webm",
} | DOCUMENT_DOWNLOADS.keys()


# At most 18 digits a side: a longer number is no file offset, and int() of thousands of digits is a 500.
_RANGE = re.compile(r"bytes=(\d{0,18})-(\d{0,18})$")


# The only names ingest writes (search.models.media_path, preview_path); nothing else is looked up in the storage.
_NAME = re.compile(r"(items|previews)/[0-9a-f]{2}/[0-9a-f]{64}\.[a-z0-9]{1,8}")


def _media_owner(path: str) -> Item | None:
    """The item a media or preview path belongs to (paths are named by the content's sha256)."""
    stem = os.path.splitext(os.path.basename(path))[0]
    if not re.fullmatch(r"[0-9a-f]{64}", stem):
        return None
    item = Item.objects.filter(sha256=stem).only("id", "hidden", "owner_id", "media", "preview").first()
    if item is None or path not in (item.media.name, item.preview.name):
        return None
    return item


def _download_name(item: Item) -> str:
    """A safe file name for a download: the item's title in plain letters, digits and dashes."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", item.display_title).strip("-.")[:80]
    return name or f"item-{item.pk}"


def media(request, path: str):
    if not _NAME.fullmatch(path):
        raise Http404("no such file")
    content_type, _ = mimetypes.guess_type(path)
    if content_type not in SERVED_TYPES:
        raise Http404("no such file")
    # Only files of items the caller may see: a hidden item's media is as hidden as its page.
    item = _media_owner(path)
    if item is None or not access.can_view(request.user, item):
        raise Http404("no such file")
    # Byte ranges let audio players seek (to the matched moment, say) without downloading everything first.
    match = _RANGE.match(request.headers.get("Range", ""))
    byte_range = None
    if match and (match[1] or match[2]):
        byte_range = (int(match[1]) if match[1] else None, int(match[2]) if match[2] else None)
    try:
        opened = media_store.open_range(path, byte_range)
    except FileNotFoundError:
        raise Http404("no such file") from None
    except media_store.RangeNotSatisfiable as exc:
        response = HttpResponse(status=416)
        response["Content-Range"] = f"bytes */{exc.size}"
        return response
    if opened.ranged:
        response = StreamingHttpResponse(opened.chunks, status=206, content_type=content_type)
        response["Content-Range"] = f"bytes {opened.start}-{opened.end}/{opened.size}"
    elif opened.handle is not None:
        response = FileResponse(opened.handle, content_type=content_type)
    else:
        response = StreamingHttpResponse(opened.chunks, content_type=content_type)
    response["Content-Length"] = str(opened.length)
    if content_type in DOCUMENT_DOWNLOADS:
        extension = os.path.splitext(path)[1]
        response["Content-Disposition"] = f'attachment; filename="{_download_name(item)}{extension}"'
    response["Accept-Ranges"] = "bytes"
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response
