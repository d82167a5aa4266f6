"""Every file kind we accept, in one table, and the one function that recognises them.

The type of a file is decided by its first bytes, never by its name or the client's
Content-Type. A kind that is not in `FORMATS` is refused before any decoder sees it; an
image decoder is only ever asked for the Pillow plugin named here (so EPS/PS, which start
Ghostscript, PDF and SVG can never be decoded), an audio file only ever reaches libsndfile or
the one PyAV demuxer named here.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Format:
    mime: str
    modality: str  # "image" or "audio"
    extension: str  # of the stored file
    label: str  # for people: error messages, README, API schema
    decoder: str  # "pillow" (image), "sndfile" (libsndfile) or "pyav" (FFmpeg demuxer, in memory)
    pillow: str = ""  # the Pillow format name (images)
    demuxer: str = ""  # the FFmpeg demuxer (PyAV audio)


FORMATS: tuple[Format, ...] = (
    Format("image/jpeg", "image", "jpg", "JPEG", "pillow", pillow="JPEG"),
    Format("image/png", "image", "png", "PNG", "pillow", pillow="PNG"),
    Format("image/gif", "image", "gif", "GIF", "pillow", pillow="GIF"),
    Format("image/webp", "image", "webp", "WebP", "pillow", pillow="WEBP"),
    Format("image/heic", "image", "heic", "HEIC/HEIF", "pillow", pillow="HEIF"),
    Format("image/avif", "image", "avif", "AVIF", "pillow", pillow="AVIF"),
    Format("image/tiff", "image", "tif", "TIFF", "pillow", pillow="TIFF"),
    Format("image/bmp", "image", "bmp", "BMP", "pillow", pillow="BMP"),
    Format("image/jp2", "image", "jp2", "JPEG 2000", "pillow", pillow="JPEG2000"),
    Format("image/jxl", "image", "jxl", "JPEG XL", "pillow", pillow="JXL"),
    Format("audio/wav", "audio", "wav", "WAV", "sndfile"),
    Format("audio/flac", "audio", "flac", "FLAC", "sndfile"),
    Format("audio/ogg", "audio", "ogg", "Ogg Vorbis/Opus", "sndfile"),
    Format("audio/mpeg", "audio", "mp3", "MP3", "sndfile"),
    Format("audio/mp4", "audio", "m4a", "M4A (AAC, ALAC)", "pyav", demuxer="mp4"),
    Format("audio/webm", "audio", "webm", "WebM (Opus, Vorbis)", "pyav", demuxer="webm"),
)
BY_MIME: dict[str, Format] = {f.mime: f for f in FORMATS}
PILLOW_FORMATS: dict[str, str] = {f.pillow: f.mime for f in FORMATS if f.pillow}


def accepted(modality: str | None = None) -> str:
    """`JPEG, PNG, ...` for messages and docs."""
    return ", ".join(f.label for f in FORMATS if modality in (None, f.modality))


def describe() -> str:
    """One sentence listing what is accepted, for error messages and the API schema."""
    return f"an image ({accepted('image')}) or a sound ({accepted('audio')})"


# ISO base media (HEIF, AVIF, MP4) names its family by "brands" in the leading `ftyp` box.
_HEIF_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"heif", b"mif1", b"msf1", b"mif2"}
_AVIF_BRANDS = {b"avif", b"avis"}
_AUDIO_MP4_BRANDS = {b"M4A ", b"M4B ", b"mp42", b"mp41", b"isom", b"iso2", b"iso5", b"iso6", b"dash", b"3gp4",
                     b"3gp5", b"3gp6", b"3g2a", b"caqv", b"qt  "}
_BMP_HEADERS = {12, 40, 52, 56, 64, 108, 124}


def _ftyp_brands(head: bytes) -> list[bytes]:
    if head[4:8] != b"ftyp" or len(head) < 16:
        return []
    size = int.from_bytes(head[:4], "big")
    end = min(max(size, 16), len(head))
    return [head[8:12]] + [head[i : i + 4] for i in range(16, end - 3, 4)]


def sniff(head: bytes) -> str | None:
    """The MIME type of an allowlisted format from its first bytes (64 are enough), else None."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "image/tiff"
    if head[:2] == b"BM" and len(head) >= 18 and int.from_bytes(head[14:18], "little") in _BMP_HEADERS:
        return "image/bmp"
    if head.startswith(b"\x00\x00\x00\x0cjP  \r\n\x87\n") or head.startswith(b"\xff\x4f\xff\x51"):
        return "image/jp2"
    if head.startswith(b"\xff\x0a") or head.startswith(b"\x00\x00\x00\x0cJXL \r\n\x87\n"):
        return "image/jxl"
    brands = _ftyp_brands(head)
    if brands:
        # The major brand decides; a generic one (mif1, isom) defers to the compatible brands.
        if brands[0] in _AVIF_BRANDS or (brands[0] in (b"mif1", b"msf1") and _AVIF_BRANDS & set(brands[1:])):
            return "image/avif"
        if brands[0] in _HEIF_BRANDS:
            return "image/heic"
        if brands[0] in _AUDIO_MP4_BRANDS:
            return "audio/mp4"
        return None
    if head[:4] in (b"RIFF", b"RIFX") and head[8:12] == b"WAVE":
        return "audio/wav"
    if head.startswith(b"fLaC"):
        return "audio/flac"
    if head.startswith(b"OggS"):
        return "audio/ogg"
    if head.startswith(b"\x1a\x45\xdf\xa3") and b"webm" in head[:64]:
        return "audio/webm"
    # MP3: an ID3v2 tag, or an MPEG audio frame sync (11 set bits, layer III).
    if head.startswith(b"ID3") or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE6 == 0xE2):
        return "audio/mpeg"
    return None
