"""Derivatives the UI shows, re-encoded from decoded pixels or samples, so no EXIF, GPS or other
metadata of the original survives into them: a photo's thumbnail as JPEG (a quarter of PNG's time
and a fifth of its size for photographic content), a sound's waveform as PNG (flat colours)."""

import io

import numpy as np
from PIL import Image, ImageDraw

THUMBNAIL_SIZE = 320
WAVEFORM_SIZE = (640, 96)


THUMBNAIL_EXTENSION = "jpg"


def thumbnail_jpeg(image: Image.Image) -> bytes:
    """At most THUMBNAIL_SIZE on the longer side, from the (already reduced, upright, RGB on white) working
    image."""
    thumb = image.copy()
    thumb.thumbnail((THUMBNAIL_SIZE, THUMBNAIL_SIZE))
    if thumb.mode != "RGB":
        thumb = thumb.convert("RGB")
    thumb.info.clear()
    out = io.BytesIO()
    thumb.save(out, format="JPEG", quality=85)
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
