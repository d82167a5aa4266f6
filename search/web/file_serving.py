"""Serving stored media and previews after the access check, with byte ranges for audio seeking."""

import mimetypes
import os
import re

from django.conf import settings
from django.http import FileResponse, Http404, HttpResponse, StreamingHttpResponse
from django.utils._os import safe_join

from search.engine import access
from search.models import Item

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


def _chunks(handle, length: int, chunk: int = 64 * 1024):
    with handle:
        while length > 0:
            data = handle.read(min(chunk, length))
            if not data:
                return
            length -= len(data)
            yield data


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
    try:
        full = safe_join(settings.MEDIA_ROOT, path)
    except Exception:
        raise Http404("no such file") from None
    content_type, _ = mimetypes.guess_type(full)
    if content_type not in SERVED_TYPES:
        raise Http404("no such file")
    # Only files of items the caller may see: a hidden item's media is as hidden as its page.
    item = _media_owner(path)
    if item is None or not access.can_view(request.user, item):
        raise Http404("no such file")
    try:
        handle = open(full, "rb")
    except (FileNotFoundError, IsADirectoryError):
        raise Http404("no such file") from None
    size = os.fstat(handle.fileno()).st_size
    # Byte ranges let audio players seek (to the matched moment, say) without downloading everything first.
    match = _RANGE.match(request.headers.get("Range", ""))
    if match and (match[1] or match[2]):
        if match[1]:
            start, end = int(match[1]), min(int(match[2] or size - 1), size - 1)
        else:
            start, end = max(0, size - int(match[2])), size - 1
        if start > end or start >= size:
            handle.close()
            response = HttpResponse(status=416)
            response["Content-Range"] = f"bytes */{size}"
            return response
        handle.seek(start)
        response = StreamingHttpResponse(_chunks(handle, end - start + 1), status=206, content_type=content_type)
        response["Content-Length"] = str(end - start + 1)
        response["Content-Range"] = f"bytes {start}-{end}/{size}"
    else:
        response = FileResponse(handle, content_type=content_type)
    if content_type in DOCUMENT_DOWNLOADS:
        extension = os.path.splitext(path)[1]
        response["Content-Disposition"] = f'attachment; filename="{_download_name(item)}{extension}"'
    response["Accept-Ranges"] = "bytes"
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response
