"""Small builders shared by the search tests: media bytes in every shape users send."""

import io
import wave

import numpy as np
from PIL import Image


def png_bytes(colour=(200, 30, 30), size=(48, 32), seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    pixels = np.full((size[1], size[0], 3), colour, dtype=np.uint8)
    pixels[rng.integers(0, size[1]), :, :] = rng.integers(0, 255, 3)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


def jpeg_with_gps() -> bytes:
    image = Image.new("RGB", (40, 40), (10, 120, 200))
    exif = Image.Exif()
    exif[0x010F] = "SpyCam"  # Make
    exif[0x8825] = {1: "N", 2: (51.0, 30.0, 0.0)}  # GPS IFD: latitude
    out = io.BytesIO()
    image.save(out, format="JPEG", exif=exif)
    return out.getvalue()


def wav_bytes(seconds=1.0, freq=440.0, sr=16000, channels=1) -> bytes:
    t = np.arange(int(seconds * sr)) / sr
    signal = (0.4 * np.sin(2 * np.pi * freq * t) * 32767).astype(np.int16)
    frames = np.repeat(signal[:, None], channels, axis=1)
    out = io.BytesIO()
    with wave.open(out, "wb") as handle:
        handle.setnchannels(channels)
        handle.setsampwidth(2)
        handle.setframerate(sr)
        handle.writeframes(frames.tobytes())
    return out.getvalue()


def truncated(data: bytes, keep: float = 0.5) -> bytes:
    return data[: max(12, int(len(data) * keep))]
