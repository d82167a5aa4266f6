"""Validation of untrusted media and the derivatives the UI shows.

The type of a file is decided by its first bytes, never by its name or the client's
Content-Type, and only formats on the allowlist are ever decoded. Images are decoded by
Pillow with its decoders restricted to that allowlist (so no format that shells out, such
as EPS); audio by libsndfile only. Each rejection is a `MediaRejected` subclass whose
message a user can act on.
"""

import hashlib
import io
import warnings
from dataclasses import dataclass, field

import numpy as np
from django.conf import settings
from PIL import Image, ImageDraw

from encoders.audio.frontend import decode_audio, probe_audio
from encoders.base import AudioDecodeError, ImageDecodeError
from encoders.images import load_image

# Pillow must never try plugins beyond these, whatever the bytes claim to be.
IMAGE_FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "GIF": "image/gif", "WEBP": "image/webp"}
AUDIO_TYPES = {"audio/wav", "audio/flac", "audio/ogg", "audio/mpeg"}
EXTENSIONS = {
    "image/png": "png", "image/jpeg": "jpg", "image/gif": "gif", "image/webp": "webp",
    "audio/wav": "wav", "audio/flac": "flac", "audio/ogg": "ogg", "audio/mpeg": "mp3",
}
THUMBNAIL_SIZE = 320

# Pillow only warns between 1x and 2x its pixel limit; for uploads from strangers that must be an error.
warnings.simplefilter("error", Image.DecompressionBombWarning)
WAVEFORM_SIZE = (640, 96)


class MediaRejected(ValueError):
    """Input refused before anything was stored. `code` is stable for API clients."""

    code = "invalid"


class UnsupportedMediaType(MediaRejected):
    code = "unsupported_type"


class MediaTooLarge(MediaRejected):
    code = "too_large"


class CorruptMedia(MediaRejected):
    code = "corrupt"


class EmptyContent(MediaRejected):
    code = "empty"


def sniff(head: bytes) -> str | None:
    """The MIME type of an allowlisted format from its magic bytes, else None."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[:4] in (b"RIFF", b"RIFX") and head[8:12] == b"WAVE":
        return "audio/wav"
    if head.startswith(b"fLaC"):
        return "audio/flac"
    if head.startswith(b"OggS"):
        return "audio/ogg"
    # MP3: an ID3v2 tag, or an MPEG audio frame sync (11 set bits, layer III).
    if head.startswith(b"ID3") or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE6 == 0xE2):
        return "audio/mpeg"
    return None


@dataclass
class PreparedMedia:
    modality: str
    mime_type: str
    sha256: str
    data: bytes
    width: int | None = None
    height: int | None = None
    duration: float | None = None
    sample_rate: int | None = None
    image: Image.Image | None = None
    waveform: np.ndarray | None = field(default=None, repr=False)

    @property
    def extension(self) -> str:
        return EXTENSIONS[self.mime_type]


def prepare_media(data: bytes) -> PreparedMedia:
    """Validate and fully decode an uploaded file; raise MediaRejected when it cannot be an item."""
    if not data:
        raise EmptyContent("the file is empty (0 bytes)")
    limit = settings.SEARCH_MAX_UPLOAD_BYTES
    if len(data) > limit:
        raise MediaTooLarge(f"the file is {len(data):,} bytes; the limit is {limit:,} bytes")
    mime = sniff(data[:16])
    if mime is None:
        raise UnsupportedMediaType(
            "unsupported file type: expected an image (PNG, JPEG, GIF, WebP) or audio (WAV, FLAC, OGG, MP3)"
        )
    digest = hashlib.sha256(data).hexdigest()
    if mime.startswith("image/"):
        return _prepare_image(data, mime, digest)
    return _prepare_audio(data, mime, digest)


def _prepare_image(data: bytes, mime: str, digest: str) -> PreparedMedia:
    try:
        with Image.open(io.BytesIO(data), formats=list(IMAGE_FORMATS)) as probe:
            width, height = probe.size
            actual = IMAGE_FORMATS.get(probe.format or "")
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise MediaTooLarge(
            f"the image has far too many pixels; the limit is {settings.SEARCH_MAX_IMAGE_PIXELS:,} pixels"
        ) from None
    except Exception as exc:
        raise CorruptMedia(f"the image cannot be read ({type(exc).__name__})") from None
    if actual != mime:
        raise UnsupportedMediaType("the image's content does not match a supported format")
    pixels = settings.SEARCH_MAX_IMAGE_PIXELS
    if width * height > pixels:
        raise MediaTooLarge(f"the image is {width}x{height} pixels; the limit is {pixels:,} pixels")
    try:
        image = load_image(data, max_pixels=pixels)
    except ImageDecodeError as exc:
        raise CorruptMedia(f"the image cannot be decoded: {exc}") from None
    return PreparedMedia("image", mime, digest, data, width=width, height=height, image=image)


def _prepare_audio(data: bytes, mime: str, digest: str) -> PreparedMedia:
    try:
        info = probe_audio(data)
    except AudioDecodeError as exc:
        raise CorruptMedia(f"the audio cannot be read: {exc}") from None
    if info.samplerate > settings.SEARCH_MAX_AUDIO_SAMPLE_RATE:
        raise MediaTooLarge(
            f"the audio's sample rate is {info.samplerate} Hz; the limit is {settings.SEARCH_MAX_AUDIO_SAMPLE_RATE} Hz"
        )
    seconds = settings.SEARCH_MAX_AUDIO_SECONDS
    if info.duration > seconds:
        raise MediaTooLarge(f"the audio lasts {info.duration:.1f} s; the limit is {seconds} s")
    try:
        # Decode at most one frame past the cap: a header that lies about its length is caught below.
        waveform, sample_rate = decode_audio(data, max_seconds=seconds + 1)
    except AudioDecodeError as exc:
        raise CorruptMedia(f"the audio cannot be decoded: {exc}") from None
    duration = len(waveform) / sample_rate
    if duration > seconds:
        raise MediaTooLarge(f"the audio lasts more than {seconds} s")
    if duration < 0.05:
        raise CorruptMedia("the audio is shorter than 50 ms")
    if not np.isfinite(waveform).all():
        raise CorruptMedia("the audio contains invalid samples")
    return PreparedMedia(
        "audio", mime, digest, data, duration=round(duration, 3), sample_rate=sample_rate, waveform=waveform
    )


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


def thumbnail_png(image: Image.Image) -> bytes:
    """A re-encoded copy: no EXIF, GPS or other metadata of the original survives."""
    thumb = image.copy()
    thumb.thumbnail((THUMBNAIL_SIZE, THUMBNAIL_SIZE))
    out = io.BytesIO()
    # Level 1: a thumbnail is a few KB either way, and the default level costs more CPU than encoding it.
    thumb.save(out, format="PNG", compress_level=1)
    return out.getvalue()


def waveform_png(waveform: np.ndarray) -> bytes:
    """A min/max envelope per pixel column, the usual audio-editor look."""
    width, height = WAVEFORM_SIZE
    samples = np.asarray(waveform, dtype=np.float32)
    columns = np.array_split(samples, width) if len(samples) >= width else [samples] * width
    peak = max(float(np.abs(samples).max()), 1e-6)
    canvas = Image.new("RGB", WAVEFORM_SIZE, (245, 247, 251))
    draw = ImageDraw.Draw(canvas)
    middle = height / 2
    for x, column in enumerate(columns):
        if len(column) == 0:
            continue
        top = middle - float(column.max()) / peak * (middle - 2)
        bottom = middle - float(column.min()) / peak * (middle - 2)
        draw.line([(x, top), (x, max(bottom, top + 1))], fill=(47, 91, 211))
    out = io.BytesIO()
    canvas.save(out, format="PNG", compress_level=1)
    return out.getvalue()
