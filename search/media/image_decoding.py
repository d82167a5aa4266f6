"""Images: open with the one allowlisted Pillow plugin, read the capture metadata, decode once at
the size the consumers need, turn upright, flatten onto white.

Each step is a short named operation on one Pillow image (after Wagtail Willow's pillow plugin):
`open_image`, `capture_metadata`, `decode_reduced`, `flatten`, `auto_orient`, `to_srgb`.
Memory: a JPEG is decoded at 1/2, 1/4 or 1/8 scale by libjpeg itself (`draft`); any other format
is decoded once at full size and reduced strip by strip, so the only full-size buffer is the
decoder's own (at most 4 bytes x the pixel cap), never a second full-size RGB copy.
"""

from __future__ import annotations

import io
import math
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import numpy as np
import pillow_heif
import pillow_jxl  # noqa: F401  (registers the JPEG XL plugin with Pillow)
from PIL import Image, ImageCms

from search.media.media_formats import BY_MIME, PILLOW_FORMATS
from search.media.previews import THUMBNAIL_SIZE
from search.media.rejections import CorruptMedia, MediaTooLarge, UnsupportedMediaType

pillow_heif.register_heif_opener()
# Pillow only warns between 1x and 2x its pixel limit; for uploads from strangers that must be an error.
warnings.simplefilter("error", Image.DecompressionBombWarning)

# EXIF tags and IFDs (EXIF 2.32).
EXIF_IFD, GPS_IFD = 0x8769, 0x8825
MAKE, MODEL, ORIENTATION = 0x010F, 0x0110, 0x0112
DATETIME_ORIGINAL, DATETIME_DIGITIZED, OFFSET_ORIGINAL, SUBSEC_ORIGINAL = 0x9003, 0x9004, 0x9011, 0x9291
LENS_MAKE, LENS_MODEL = 0xA433, 0xA434

# What ImageOps.exif_transpose does for each EXIF orientation, applied to our reduced copy.
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
WHITE = (255, 255, 255)
_STRIP_PIXELS = 1 << 20  # pixels per strip when reducing a large decoded image (a few MB in any mode)


@dataclass
class DecodedImage:
    image: Image.Image  # RGB, upright, on white; as small as its consumers allow (see decode_reduced)
    width: int  # upright size of the original
    height: int
    taken_at: datetime | None = None
    metadata: dict = field(default_factory=dict)  # camera, lens, GPS (if allowed), frames, pages


def decode_image(data: bytes, mime: str, *, max_pixels: int, min_side: int, store_gps: bool = False) -> DecodedImage:
    """The whole image step; raises a `MediaRejected` subclass for anything that cannot be an item."""
    with open_image(data, mime, max_pixels) as img:
        try:
            frames = getattr(img, "n_frames", 1)  # a TIFF walks its pages to count them
            reduced = decode_reduced(img, min_side)
            taken_at, metadata, orientation = capture_metadata(img, store_gps=store_gps)
            icc = img.info.get("icc_profile")
            rgb = flatten(reduced, _depth_scale(reduced))
        except MemoryError:
            raise MediaTooLarge("the image is too large to decode") from None
        except Exception as exc:
            raise CorruptMedia(f"the image cannot be decoded ({type(exc).__name__}: {str(exc)[:200]})") from None
        width, height = img.size if orientation < 5 else img.size[::-1]
        original = getattr(img, "_original_size", None)
        if original is not None:  # JPEG `draft` shrank `size`; report the file's own
            width, height = original if orientation < 5 else original[::-1]
    if frames > 1:
        metadata["pages" if mime == "image/tiff" else "frames"] = frames
    rgb = to_srgb(auto_orient(rgb, orientation), icc)
    return DecodedImage(rgb, width, height, taken_at, metadata)


def open_image(data: bytes, mime: str, max_pixels: int) -> Image.Image:
    """Open lazily (header only) with the allowlisted plugin for `mime`; check the pixel cap."""
    fmt = BY_MIME[mime]
    try:
        img = Image.open(io.BytesIO(data), formats=[fmt.pillow])
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise MediaTooLarge(f"the image has far too many pixels; the limit is {max_pixels:,} pixels") from None
    except Exception as exc:
        raise CorruptMedia(f"the image cannot be read ({type(exc).__name__})") from None
    if PILLOW_FORMATS.get(img.format or "") != mime:
        img.close()
        raise UnsupportedMediaType("the image's content does not match a supported format")
    width, height = img.size
    if width <= 0 or height <= 0:
        img.close()
        raise CorruptMedia("the image has no pixels")
    if width * height > max_pixels:
        img.close()
        raise MediaTooLarge(f"the image is {width}x{height} pixels; the limit is {max_pixels:,} pixels")
    img._original_size = img.size
    return img


def decode_reduced(img: Image.Image, min_side: int, min_long_side: int = THUMBNAIL_SIZE) -> Image.Image:
    """Decode once, at the smallest size whose shorter side is still >= `min_side` (the encoders'
    input) and whose longer side is >= `min_long_side` (the thumbnail).

    JPEG: libjpeg decodes at 1/2, 1/4 or 1/8 directly (`draft`). Others: a full decode, then
    an integer box reduction done strip by strip (a strip is flattened onto white first, so
    transparency and palettes reduce correctly) into a small image.
    """
    width, height = img.size
    scale = min(min(width, height) / min_side, max(width, height) / min_long_side)
    if img.format == "JPEG" and scale >= 2:
        img.draft("RGB" if img.mode == "RGB" else img.mode, (math.ceil(width / scale), math.ceil(height / scale)))
    img.load()
    factor = int(scale * min(img.size) / min(width, height))  # what is left to reduce after `draft`
    if factor < 2:
        return img
    return _reduce_in_strips(img, factor)


def _reduce_in_strips(img: Image.Image, factor: int) -> Image.Image:
    width, height = img.size
    scale = _depth_scale(img)
    out = Image.new("RGB", (math.ceil(width / factor), math.ceil(height / factor)))
    # A strip of about _STRIP_PIXELS, a whole number of reduction blocks tall.
    step = factor * max(1, _STRIP_PIXELS // (width * factor * factor))
    for top in range(0, height, step):
        strip = img.crop((0, top, width, min(height, top + step)))
        out.paste(flatten(strip, scale).reduce(factor), (0, top // factor))
    return out


def _depth_scale(img: Image.Image) -> tuple[float, float] | None:
    """(offset, divisor) that maps a deep image's values to 0..255, from the whole image's range."""
    if img.mode.startswith("I;16"):
        return (0.0, 257.0)
    if img.mode not in ("I", "F"):
        return None
    low, high = img.getextrema()
    if img.mode == "I" and 0 <= low and high <= 255:
        return (0.0, 1.0)
    if img.mode == "I" and 0 <= low and high <= 65535:
        return (0.0, 257.0)  # 16-bit samples (PNG/TIFF) in Pillow's 32-bit integer mode
    if not (math.isfinite(low) and math.isfinite(high)) or high <= low:
        return (low if math.isfinite(low) else 0.0, 1.0)
    return (float(low), (high - low) / 255.0)


def flatten(img: Image.Image, scale: tuple[float, float] | None = None) -> Image.Image:
    """RGB of any Pillow mode: transparency composited on white, deep values scaled to 8 bits.

    The transparency of modes 1, L, I, I;16 and RGB (a PNG tRNS colour) becomes an alpha mask
    here and never travels on as `info["transparency"]`: Pillow would carry an integer key into
    an RGB image, whose PNG encoder then fails ("transparency for RGB must be list or tuple").
    """
    transparency = img.info.get("transparency")
    mode = img.mode
    if mode == "P" or mode == "PA":
        return _on_white(img.convert("RGBA")) if (transparency is not None or mode == "PA") else img.convert("RGB")
    if mode in ("La", "RGBa"):
        # Premultiplied alpha: on white, each channel is its value plus the white showing through.
        values = np.asarray(img).astype(np.uint16)
        colour = values[..., :-1] + (255 - values[..., -1:])
        rgb = np.clip(colour, 0, 255).astype(np.uint8)
        return Image.fromarray(np.repeat(rgb, 3, axis=2) if mode == "La" else rgb, "RGB")
    if mode in ("RGBA", "LA"):
        return _on_white(img.convert("RGBA"))
    if mode == "RGB":
        if isinstance(transparency, tuple) and len(transparency) == 3:
            mask = np.any(np.asarray(img) != np.array(transparency, dtype=np.uint8), axis=2)
            return _on_white(img, Image.fromarray(mask.astype(np.uint8) * 255))
        return img.copy() if img.info else img
    if mode in ("1", "L", "I", "F") or mode.startswith("I;16"):
        values = np.asarray(img)
        mask = None
        if isinstance(transparency, int | float) and not isinstance(transparency, bool):
            mask = values != (bool(transparency) if mode == "1" else transparency)
        if mode == "1":
            grey = values.astype(np.uint8) * 255
        elif mode == "L":
            grey = values
        else:
            offset, divisor = scale or _depth_scale(img) or (0.0, 1.0)
            grey = np.clip((values.astype(np.float32) - offset) / divisor, 0, 255)
            grey = np.nan_to_num(grey, nan=0.0).astype(np.uint8)
        rgb = Image.fromarray(np.ascontiguousarray(grey, dtype=np.uint8)).convert("RGB")
        if mask is None:
            return rgb
        return _on_white(rgb, Image.fromarray(mask.astype(np.uint8) * 255))
    if mode == "LAB":
        lab = ImageCms.createProfile("LAB")
        srgb = ImageCms.createProfile("sRGB")
        return ImageCms.profileToProfile(img, lab, srgb, outputMode="RGB")
    # CMYK, YCbCr, HSV, RGBX and the rest Pillow converts itself.
    return img.convert("RGB")


def _on_white(img: Image.Image, mask: Image.Image | None = None) -> Image.Image:
    background = Image.new("RGB", img.size, WHITE)
    if mask is None:
        mask = img.getchannel("A")
        img = img.convert("RGB")
    background.paste(img, (0, 0), mask)
    return background


def auto_orient(img: Image.Image, orientation: int) -> Image.Image:
    method = _TRANSPOSE.get(orientation)
    return img.transpose(method) if method is not None else img


def to_srgb(img: Image.Image, icc: bytes | None) -> Image.Image:
    """Convert from an embedded RGB profile (Display P3, Adobe RGB) to sRGB; any problem keeps the pixels."""
    if not icc or img.mode != "RGB":
        return img
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        if source.profile.xcolor_space.strip() != "RGB":
            return img
        return ImageCms.profileToProfile(img, source, ImageCms.createProfile("sRGB"), outputMode="RGB") or img
    except Exception:
        return img


def capture_metadata(img: Image.Image, *, store_gps: bool = False) -> tuple[datetime | None, dict, int]:
    """(taken_at, metadata, EXIF orientation) from the image's EXIF; anything malformed is skipped."""
    try:
        exif = img.getexif()
    except Exception:
        return None, {}, 1
    try:
        orientation = int(exif.get(ORIENTATION, 1))
    except (TypeError, ValueError):
        orientation = 1
    orientation = orientation if orientation in _TRANSPOSE or orientation == 1 else 1
    try:
        details = exif.get_ifd(EXIF_IFD)
    except Exception:
        details = {}
    metadata: dict = {}
    for key, value in (("camera_make", exif.get(MAKE)), ("camera_model", exif.get(MODEL)),
                       ("lens_make", details.get(LENS_MAKE)), ("lens_model", details.get(LENS_MODEL))):
        text = _text(value)
        if text:
            metadata[key] = text
    taken_at = _exif_datetime(
        details.get(DATETIME_ORIGINAL) or details.get(DATETIME_DIGITIZED),
        _text(details.get(OFFSET_ORIGINAL)),
        _text(details.get(SUBSEC_ORIGINAL)),
    )
    if store_gps:
        try:
            gps = _gps(exif.get_ifd(GPS_IFD))
        except Exception:
            gps = None
        if gps:
            metadata["gps"] = gps
    return taken_at, metadata, orientation


def _text(value) -> str:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        return ""
    value = value.replace("\x00", "").strip()
    # Lone surrogates cannot be stored as JSON text in PostgreSQL.
    return value.encode("utf-8", "replace").decode("utf-8")[:100]


def _exif_datetime(value, offset: str, subsec: str) -> datetime | None:
    text = _text(value)
    try:
        moment = datetime.strptime(text[:19], "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None
    if not 1826 <= moment.year <= 2200:  # the oldest surviving photograph; anything else is a broken clock
        return None
    if subsec.isdigit():
        moment = moment.replace(microsecond=int(subsec[:6].ljust(6, "0")))
    zone = _offset(offset)
    if zone is not None:
        return moment.replace(tzinfo=zone)
    # No offset recorded (most cameras): the camera's clock is local time; we read it as the server's zone.
    from django.utils import timezone as dj_timezone

    return dj_timezone.make_aware(moment, dj_timezone.get_default_timezone())


def _offset(text: str) -> timezone | None:
    if len(text) != 6 or text[0] not in "+-" or text[3] != ":":
        return None
    try:
        hours, minutes = int(text[1:3]), int(text[4:6])
    except ValueError:
        return None
    if hours > 14 or minutes > 59:
        return None
    sign = -1 if text[0] == "-" else 1
    return timezone(sign * timedelta(hours=hours, minutes=minutes))


def _gps(ifd) -> dict | None:
    def degrees(dms, ref, negative):
        d, m, s = (float(x) for x in dms)
        value = d + m / 60 + s / 3600
        return -value if _text(ref).upper() == negative else value

    try:
        lat = degrees(ifd[2], ifd.get(1), "S")
        lon = degrees(ifd[4], ifd.get(3), "W")
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return None
    if not (math.isfinite(lat) and math.isfinite(lon) and abs(lat) <= 90 and abs(lon) <= 180):
        return None
    return {"lat": round(lat, 7), "lon": round(lon, 7)}
