"""A generated corpus of every accepted format and Pillow mode, with the outcome each must have.

Images share one picture, 60 x 40 px upright: red on the left half, blue on the right, so a test can
tell upright from rotated or mirrored, and a transparent region where the format has alpha (which
must come out white). Audio is a 440 Hz tone.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from functools import cache

import av
import numpy as np
import pillow_heif
import pillow_jxl  # noqa: F401  (JPEG XL save)
import soundfile
from PIL import Image

pillow_heif.register_heif_opener()

RED, BLUE, WHITE = (220, 20, 20), (20, 20, 220), (255, 255, 255)
SIZE = (60, 40)


@dataclass
class Case:
    name: str
    data: bytes
    mime: str | None = None  # None: refused
    code: str = ""  # the MediaRejected code when refused
    size: tuple[int, int] | None = None  # upright width, height
    left: tuple[int, int, int] | None = None  # colour expected in the left half (images)
    right: tuple[int, int, int] | None = None
    transparent_white: bool = False  # the top-left 8x8 corner was transparent: must be white
    metadata: dict = field(default_factory=dict)  # must be contained in the prepared metadata
    tolerance: int = 40  # per channel, for lossy formats


def upright(mode: str = "RGB", transparent: bool = False) -> Image.Image:
    pixels = np.zeros((SIZE[1], SIZE[0], 4), dtype=np.uint8)
    pixels[:, : SIZE[0] // 2, :3] = RED
    pixels[:, SIZE[0] // 2 :, :3] = BLUE
    pixels[..., 3] = 255
    if transparent:
        pixels[:8, :8, 3] = 0
    image = Image.fromarray(pixels, "RGBA")
    return image if mode == "RGBA" else image.convert(mode)


def encoded(image: Image.Image, fmt: str, **options) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **options)
    return out.getvalue()


# How to store a picture so that applying EXIF orientation N shows it upright (the inverse of N).
STORED_FOR_ORIENTATION = {
    1: None,
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


def jpeg_with_orientation(orientation: int) -> bytes:
    image = upright()
    method = STORED_FOR_ORIENTATION[orientation]
    stored = image.transpose(method) if method is not None else image
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encoded(stored, "JPEG", quality=95, exif=exif)


def camera_jpeg(gps: bool = True) -> bytes:
    exif = Image.Exif()
    exif[0x010F] = "Canon"
    exif[0x0110] = "Canon EOS R6"
    exif[0x0132] = "2024:01:01 00:00:00"  # DateTime (last edit): not the capture time
    details = exif.get_ifd(0x8769)
    details[0x9003] = "2023:07:14 18:30:05"
    details[0x9011] = "+02:00"
    details[0xA434] = "RF24-105mm F4 L IS USM"
    if gps:
        exif.get_ifd(0x8825).update({1: "N", 2: (48.0, 51.0, 29.0), 3: "W", 4: (2.0, 17.0, 40.0)})
    return encoded(upright(), "JPEG", quality=90, exif=exif)


def png_with_transparency(mode: str) -> bytes:
    """Modes 1, L, I, I;16 and RGB with a PNG tRNS chunk: the 8x8 corner has the transparent value."""
    if mode == "RGB":
        image = upright()
        image.paste((1, 2, 3), (0, 0, 8, 8))
        return encoded(image, "PNG", transparency=(1, 2, 3))
    if mode == "1":
        values = np.ones((SIZE[1], SIZE[0]), dtype=bool)
        values[:8, :8] = False
        return encoded(Image.fromarray(values), "PNG", transparency=0)
    # "I": a 16-bit grey PNG, which Pillow before 10 opened as mode I (and 13 as I;16).
    dtype, high = {"L": (np.uint8, 200), "I": (np.uint16, 40_000), "I;16": (np.uint16, 900)}[mode]
    values = np.full((SIZE[1], SIZE[0]), high, dtype=dtype)
    values[:8, :8] = 7
    return encoded(Image.fromarray(values), "PNG", transparency=7)


def palette_with_trns() -> bytes:
    image = upright("RGBA", transparent=True).convert("P", palette=Image.Palette.ADAPTIVE, colors=4)
    # Make the corner's palette index the transparent one.
    index = image.getpixel((0, 0))
    return encoded(image, "PNG", transparency=index)


def animated(fmt: str) -> bytes:
    frames = [upright(), Image.new("RGB", SIZE, (0, 200, 0)), Image.new("RGB", SIZE, (200, 200, 0))]
    options = {"lossless": True} if fmt == "WEBP" else {}
    return encoded(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100, loop=0, **options)


def multipage_tiff() -> bytes:
    pages = [upright(), Image.new("RGB", SIZE, (0, 200, 0)), Image.new("L", SIZE, 90)]
    return encoded(pages[0], "TIFF", save_all=True, append_images=pages[1:])


def tone(seconds: float = 1.0, sr: int = 48_000, channels: int = 2) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    mono = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    return np.repeat(mono[:, None], channels, axis=1)


def sndfile_bytes(fmt: str, subtype: str | None = None, sr: int = 48_000) -> bytes:
    out = io.BytesIO()
    soundfile.write(out, tone(sr=sr), sr, format=fmt, subtype=subtype)
    return out.getvalue()


def pyav_bytes(container: str, codec: str, sr: int = 48_000, video: bool = False) -> bytes:
    out = io.BytesIO()
    with av.open(out, "w", format=container) as muxer:
        stream = muxer.add_stream(codec, rate=sr)
        stream.layout = "stereo"
        if video:
            picture = muxer.add_stream("mpeg4", rate=10)
            picture.width, picture.height = 32, 32
        samples = tone(sr=sr).T.copy()
        planar = stream.codec_context.format.is_planar
        frame = av.AudioFrame.from_ndarray(samples if planar else samples.T.reshape(1, -1).copy(),
                                           format="fltp" if planar else "flt", layout="stereo")
        frame.sample_rate = sr
        for packet in stream.encode(frame):
            muxer.mux(packet)
        for packet in stream.encode(None):
            muxer.mux(packet)
        if video:
            for i in range(3):
                video_frame = av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24")
                video_frame.pts = i
                for packet in picture.encode(video_frame):
                    muxer.mux(packet)
            for packet in picture.encode(None):
                muxer.mux(packet)
    return out.getvalue()


@cache
def corpus() -> tuple[Case, ...]:
    image = dict(size=SIZE, left=RED, right=BLUE)
    cases = [Case(f"jpeg-orientation-{n}", jpeg_with_orientation(n), "image/jpeg", **image) for n in range(1, 9)]
    cases += [
        Case("jpeg-camera-exif", camera_jpeg(), "image/jpeg",
             metadata={"camera_make": "Canon", "camera_model": "Canon EOS R6", "lens_model": "RF24-105mm F4 L IS USM"},
             **image),
        Case("jpeg-cmyk", encoded(upright("CMYK"), "JPEG", quality=95), "image/jpeg", **image),
        Case("jpeg-greyscale", encoded(upright("L"), "JPEG"), "image/jpeg", size=SIZE),
        Case("png-rgb", encoded(upright(), "PNG"), "image/png", tolerance=0, **image),
        Case("png-rgba", encoded(upright("RGBA", True), "PNG"), "image/png", transparent_white=True, **image),
        Case("png-la", encoded(upright("RGBA", True).convert("LA"), "PNG"), "image/png", size=SIZE,
             transparent_white=True),
        Case("png-p-trns", palette_with_trns(), "image/png", transparent_white=True, **image),
        Case("png-1-trns", png_with_transparency("1"), "image/png", size=SIZE, transparent_white=True),
        Case("png-l-trns", png_with_transparency("L"), "image/png", size=SIZE, transparent_white=True),
        Case("png-i-trns", png_with_transparency("I"), "image/png", size=SIZE, transparent_white=True),
        Case("png-i16-trns", png_with_transparency("I;16"), "image/png", size=SIZE, transparent_white=True),
        Case("png-rgb-trns", png_with_transparency("RGB"), "image/png", transparent_white=True, **image),
        Case("png-16bit", encoded(Image.fromarray(np.full((40, 60), 50_000, np.uint16)), "PNG"), "image/png",
             size=SIZE),
        Case("gif-animated", animated("GIF"), "image/gif", metadata={"frames": 3}, **image),
        Case("webp-animated", animated("WEBP"), "image/webp", metadata={"frames": 3}, **image),
        Case("webp-rgba", encoded(upright("RGBA", True), "WEBP", lossless=True), "image/webp",
             transparent_white=True, **image),
        Case("heic", encoded(upright(), "HEIF", quality=90), "image/heic", **image),
        Case("heic-rgba", encoded(upright("RGBA", True), "HEIF", quality=90), "image/heic", transparent_white=True,
             **image),
        Case("avif", encoded(upright(), "AVIF", quality=90), "image/avif", **image),
        Case("tiff-multipage", multipage_tiff(), "image/tiff", metadata={"pages": 3}, tolerance=0, **image),
        Case("tiff-cmyk", encoded(upright("CMYK"), "TIFF"), "image/tiff", **image),
        Case("tiff-float", encoded(Image.fromarray(np.linspace(0, 1, 2400, dtype=np.float32).reshape(40, 60)),
                                   "TIFF"), "image/tiff", size=SIZE),
        Case("tiff-i16", encoded(Image.fromarray(np.full((40, 60), 30_000, np.uint16)), "TIFF"), "image/tiff",
             size=SIZE),
        Case("tiff-ycbcr", encoded(upright("YCbCr"), "TIFF"), "image/tiff", **image),
        Case("bmp", encoded(upright(), "BMP"), "image/bmp", tolerance=0, **image),
        Case("bmp-32bit", encoded(upright("RGBA", True), "BMP"), "image/bmp", **image),
        Case("jpeg2000", encoded(upright(), "JPEG2000"), "image/jp2", **image),
        Case("jpeg-xl", encoded(upright(), "JXL", lossless=True), "image/jxl", **image),
        # Refused: formats that run programs or are not photos.
        Case("eps", b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n", code="unsupported_type"),
        # A PDF is a document now (search.documents); this one has no pages to read.
        Case("pdf", b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF", code="corrupt"),
        Case("svg", b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>', code="unsupported_type"),
        Case("ico", encoded(upright(), "ICO"), code="unsupported_type"),
        Case("psd-like", b"8BPS\x00\x01" + b"\x00" * 40, code="unsupported_type"),
        Case("truncated-heic", encoded(upright(), "HEIF")[:200], code="corrupt"),
        Case("truncated-tiff", multipage_tiff()[:300], code="corrupt"),
        # Audio.
        Case("wav", sndfile_bytes("WAV", "PCM_16"), "audio/wav"),
        Case("flac", sndfile_bytes("FLAC"), "audio/flac"),
        Case("ogg-vorbis", sndfile_bytes("OGG", "VORBIS"), "audio/ogg"),
        Case("ogg-opus", sndfile_bytes("OGG", "OPUS"), "audio/ogg"),
        Case("mp3", sndfile_bytes("MP3", "MPEG_LAYER_III"), "audio/mpeg"),
        Case("m4a-aac", pyav_bytes("ipod", "aac"), "audio/mp4"),
        Case("m4a-alac", pyav_bytes("ipod", "alac"), "audio/mp4"),
        Case("mp4-aac", pyav_bytes("mp4", "aac"), "audio/mp4"),
        Case("webm-opus", pyav_bytes("webm", "libopus"), "audio/webm"),
        Case("mp4-with-video", pyav_bytes("mp4", "aac", video=True), code="unsupported_type"),
        Case("truncated-m4a", pyav_bytes("ipod", "aac")[:100], code="corrupt"),
    ]
    return tuple(cases)
