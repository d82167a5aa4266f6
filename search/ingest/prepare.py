"""Turning an upload into what ingest stores: media decoded and checked (search.media), or a document reduced to
its text (search.documents), with its hash; and the checks every stored text passes."""

import hashlib
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
from django.conf import settings
from PIL import Image

from search import documents
from search.media import audio as media_audio
from search.media.image_decoding import decode_image
from search.media.media_formats import BY_MIME, FORMATS, describe, sniff
from search.media.rejections import EmptyContent, MediaTooLarge, UnsupportedMediaType

EXTENSIONS = {f.mime: f.extension for f in FORMATS} | {  # and documents (search.documents.DOCUMENT_TYPES)
    "text/plain": "txt", "text/markdown": "md", "text/html": "html", "application/pdf": "pdf"}


# Names of binary formats: a file so named that holds text is refused rather than stored as a document.
BINARY_EXTENSIONS = {f.extension for f in FORMATS} | {
    "jpeg", "jpe", "tiff", "heif", "opus", "oga", "aac", "m4b", "mp4", "mov", "avi", "mkv", "pdf", "zip", "gz",
    "tgz", "7z", "rar", "xz", "bz2", "exe", "dll", "so", "dmg", "iso", "doc", "docx", "xls", "xlsx", "ppt", "pptx",
    "odt", "ods", "epub", "psd", "raw", "cr2", "nef", "dng", "arw", "svg", "eps", "ps", "ico"}


def describe_all() -> str:
    """What an upload may be: media or a document."""
    return f"{describe()}, or {documents.describe()}"


@dataclass
class PreparedMedia:
    modality: str  # "image", "audio", or "text" for a document
    mime_type: str
    sha256: str
    data: bytes
    width: int | None = None  # upright, of the original
    height: int | None = None
    duration: float | None = None
    sample_rate: int | None = None  # of `waveform` (what encoders get), at most SEARCH_AUDIO_ANALYSIS_RATE
    source_sample_rate: int | None = None  # of the file, as stored on the item
    image: Image.Image | None = None  # RGB, upright, on white, reduced to what the consumers need
    waveform: np.ndarray | None = field(default=None, repr=False)
    taken_at: datetime | None = None
    metadata: dict = field(default_factory=dict)  # capture metadata read from the file
    preview: bytes | None = field(default=None, repr=False)  # the thumbnail or waveform PNG, when made already
    # A document (search.documents): the text a reader sees, its title, and where each PDF page starts.
    text: str | None = field(default=None, repr=False)
    title: str = ""
    pages: list[int] | None = None
    size: int = 0  # bytes of the file, kept where `data` does not travel with it (search.ingest.decode_pool)

    @property
    def byte_size(self) -> int:
        return len(self.data) if self.data else self.size

    @property
    def extension(self) -> str:
        return EXTENSIONS[self.mime_type]


def prepare_media(data: bytes, *, query: bool = False, digest: str | None = None,
                  filename: str = "") -> PreparedMedia:
    """Validate and decode an uploaded file; raise MediaRejected when it cannot be an item.

    `query`: the file is a search query, not an item to store (audio gets the shorter query cap).
    `digest`: the sha256 of `data` when the caller has it already. `filename`: only tells Markdown
    from plain text (search.documents); the type is always decided by the bytes.
    """
    if not data:
        raise EmptyContent("the file is empty (0 bytes)")
    limit = settings.SEARCH_MAX_UPLOAD_BYTES
    if len(data) > limit:
        raise MediaTooLarge(f"the file is {len(data):,} bytes; the limit is {limit:,} bytes")
    mime = sniff(data[:64])
    if mime is None:
        kind = documents.sniff_document(data[:documents.SNIFF_BYTES], filename)
        if kind is None:
            raise UnsupportedMediaType(f"unsupported file type: expected {describe_all()}")
        extension = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
        if kind != "application/pdf" and extension in BINARY_EXTENSIONS:
            # Words in a file named .png (or .pdf, .mp3, .zip) are a broken or mislabelled file, not a document.
            raise UnsupportedMediaType(f"unsupported file type: {filename} holds text, not what its name says; "
                                       f"expected {describe_all()}")
        if query:
            raise UnsupportedMediaType(f"a {documents.LABELS[kind]} document cannot be part of a query; "
                                       "search with its words instead")
        document = documents.extract_document(data, kind, filename=filename)
        return PreparedMedia("text", kind, digest or hashlib.sha256(data).hexdigest(), data, text=document.text,
                             title=document.title, pages=document.pages, metadata=document.metadata)
    digest = digest or hashlib.sha256(data).hexdigest()
    if BY_MIME[mime].modality == "image":
        decoded = decode_image(
            data, mime, max_pixels=settings.SEARCH_MAX_IMAGE_PIXELS, min_side=settings.SEARCH_IMAGE_DECODE_SIZE,
            store_gps=settings.SEARCH_STORE_GPS,
        )
        return PreparedMedia("image", mime, digest, data, width=decoded.width, height=decoded.height,
                             image=decoded.image, taken_at=decoded.taken_at, metadata=decoded.metadata)
    limits = media_audio.AudioLimits.from_settings(query=query)
    sound = media_audio.decode(data, mime, limits, what=" for a query clip" if query else "")
    return PreparedMedia("audio", mime, digest, data, duration=sound.duration, sample_rate=sound.rate,
                         source_sample_rate=sound.source_rate, waveform=sound.waveform)


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def clean_text(text: str, *, what: str = "text") -> str:
    text = (text or "").replace("\x00", "").strip()
    if not text:
        raise EmptyContent(f"the {what} is empty")
    limit = settings.SEARCH_MAX_TEXT_CHARS
    if len(text) > limit:
        raise MediaTooLarge(f"the {what} is {len(text):,} characters; the limit is {limit:,}")
    return text
