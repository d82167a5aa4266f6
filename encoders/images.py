"""Image decoding with the failure modes of untrusted uploads turned into errors."""

from __future__ import annotations

import io
import os
from typing import BinaryIO

from PIL import Image, UnidentifiedImageError

from encoders.base import ImageDecodeError

ImageSource = str | os.PathLike | bytes | BinaryIO

# 64 megapixels: far above any photo we index, far below what exhausts memory.
DEFAULT_MAX_PIXELS = 64_000_000


def load_image(src: ImageSource, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Fully decode an image to RGB, raising ``ImageDecodeError`` on any problem.

    Decoding happens here rather than lazily inside an encoder, so a truncated
    upload fails at ingest with a clear message instead of mid-batch.
    """
    if isinstance(src, bytes):
        if not src:
            raise ImageDecodeError("image is empty (zero bytes)")
        src = io.BytesIO(src)
    try:
        with Image.open(src) as img:
            width, height = img.size
            # Checked before decoding: the header is all we have read so far.
            if width * height > max_pixels:
                raise ImageDecodeError(f"image is {width}x{height}, above the {max_pixels} pixel limit")
            img.load()
            return img.convert("RGB")
    except FileNotFoundError as exc:
        raise ImageDecodeError(f"image file not found: {src}") from exc
    except UnidentifiedImageError as exc:
        raise ImageDecodeError("not an image, or an unsupported image format") from exc
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise ImageDecodeError(f"image is corrupt or truncated ({exc})") from exc
