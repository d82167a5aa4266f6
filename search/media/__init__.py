"""Validation of untrusted media and the derivatives the UI shows.

One table says what is accepted (`search.media.media_formats.FORMATS`); the type of a file is decided
by its first bytes, never by its name or the client's Content-Type, and only formats in that
table are ever decoded. Images: `search.media.image_decoding` (Pillow, one allowlisted plugin per file).
Audio: `search.media.audio` (libsndfile, or PyAV in memory with a forced demuxer). Previews:
`search.media.previews`. Each rejection is a `MediaRejected` subclass whose message a user can
act on. Turning an upload (media or a document) into what ingest stores is search.ingest.prepare.
"""

from search.media.media_formats import BY_MIME, FORMATS, PILLOW_FORMATS, Format, describe, sniff
from search.media.previews import THUMBNAIL_SIZE, WAVEFORM_SIZE, thumbnail_jpeg, waveform_png
from search.media.rejections import (
    CorruptMedia,
    EmptyContent,
    MediaRejected,
    MediaTooLarge,
    UnreadableFile,
    UnsupportedMediaType,
)

__all__ = [
    "BY_MIME", "FORMATS", "IMAGE_FORMATS", "THUMBNAIL_SIZE", "WAVEFORM_SIZE", "CorruptMedia", "EmptyContent",
    "Format", "MediaRejected", "MediaTooLarge", "UnreadableFile", "UnsupportedMediaType", "describe", "sniff",
    "thumbnail_jpeg", "waveform_png",
]

IMAGE_FORMATS = {name: mime for name, mime in PILLOW_FORMATS.items()}  # Pillow format name -> MIME type
