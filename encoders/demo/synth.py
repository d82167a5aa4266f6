"""Seeded synthetic captioned data: coloured shapes, synthesised sounds, texts.

It trains the demo model, feeds the demo site (``write_dataset``) and gives the
tests labelled data to measure retrieval on. Every sample carries structured
labels next to its free-text caption; ``key`` is the class the quality tests
score against (colour+shape for images, kind+pitch for audio).
"""

from __future__ import annotations

import colorsys
import io
import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile
from PIL import Image, ImageDraw, ImageFilter

SAMPLE_RATE = 16000
IMAGE_SIZE = 128

# name -> (RGB, words used in captions)
COLOURS: dict[str, tuple[tuple[int, int, int], list[str]]] = {
    "red": ((215, 35, 35), ["red", "crimson", "scarlet"]),
    "green": ((40, 170, 60), ["green", "emerald"]),
    "blue": ((35, 75, 215), ["blue", "azure", "cobalt"]),
    "yellow": ((240, 215, 40), ["yellow", "golden"]),
    "purple": ((135, 45, 180), ["purple", "violet"]),
    "orange": ((245, 135, 25), ["orange", "tangerine"]),
    "white": ((245, 245, 245), ["white", "ivory", "snow-white"]),
    "black": ((15, 15, 15), ["black", "jet-black", "ebony"]),
}

SHAPES: dict[str, list[str]] = {
    "circle": ["circle", "disc", "round dot"],
    "square": ["square", "box"],
    "triangle": ["triangle"],
    "star": ["star"],
    "hexagon": ["hexagon"],
    "cross": ["cross", "plus sign"],
    "diamond": ["diamond", "rhombus"],
    "crescent": ["crescent", "crescent moon"],
}

BACKGROUNDS = ["dark", "light", "grey", "gradient", "noisy", "striped"]
BACKGROUND_WORDS = {
    "dark": ["dark", "black", "night"],
    "light": ["light", "pale", "bright"],
    "grey": ["grey", "gray", "neutral"],
    "gradient": ["gradient", "fading"],
    "noisy": ["grainy", "noisy", "speckled"],
    "striped": ["striped", "lined"],
}
SIZES = {"small": 0.16, "medium": 0.24, "large": 0.34}
SIZE_WORDS = {
    "small": ["small", "tiny", "little"],
    "medium": ["medium-sized", "mid-sized"],
    "large": ["large", "big", "huge"],
}
POSITIONS = {
    "top left": (0.28, 0.28),
    "top": (0.5, 0.28),
    "top right": (0.72, 0.28),
    "left": (0.28, 0.5),
    "center": (0.5, 0.5),
    "right": (0.72, 0.5),
    "bottom left": (0.28, 0.72),
    "bottom": (0.5, 0.72),
    "bottom right": (0.72, 0.72),
}
COUNT_WORDS = {2: ["two", "a pair of"], 3: ["three", "a trio of"]}

AUDIO_KINDS = ["tone", "chord", "sweep", "beeps", "noise"]
PITCHES = ["low", "mid", "high"]
TIMBRES = ["sine", "square", "sawtooth"]
# Fundamental ranges in Hz; far enough apart that "high" vs "mid" is unambiguous.
PITCH_BANDS = {"low": (70.0, 180.0), "mid": (280.0, 650.0), "high": (1200.0, 2600.0)}
PITCH_WORDS = {
    "low": ["low", "deep", "low-pitched", "bass"],
    "mid": ["mid-range", "medium-pitched", "middle"],
    "high": ["high", "high-pitched", "shrill", "piercing"],
}
PITCH_LEVELS = {"low": "low", "mid": "medium", "high": "high"}
TIMBRE_WORDS = {
    "sine": ["pure", "smooth", "sine"],
    "square": ["square-wave", "hollow", "buzzy"],
    "sawtooth": ["sawtooth", "harsh", "bright"],
}
KIND_NOUNS = {
    "tone": ["tone", "drone", "steady note", "hum"],
    "chord": ["chord", "harmony", "cluster of notes"],
    "sweep": ["sweep", "glide", "siren"],
    "beeps": ["beeping", "beeps", "series of beeps", "pulses"],
}
NOISE_PHRASES = {
    "low": ["low rumbling noise", "deep rumble", "brown noise", "rumbling static"],
    "mid": ["pink noise", "soft whooshing noise", "rushing noise", "steady whoosh"],
    "high": ["hissing white noise", "bright hiss", "high-pitched hiss", "white noise"],
}


def _a(phrase: str) -> str:
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def _pick(rng: np.random.Generator, options: list[str]) -> str:
    return options[rng.integers(len(options))]


def _plural(noun: str) -> str:
    head, _, last = noun.rpartition(" ")
    last = last + "es" if last.endswith(("s", "x", "sh")) else last + "s"
    return f"{head} {last}".strip()


@dataclass
class ImageSample:
    image: Image.Image
    caption: str
    labels: dict = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.labels['colour']} {self.labels['shape']}"


@dataclass
class AudioSample:
    waveform: np.ndarray
    samplerate: int
    caption: str
    labels: dict = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.labels['pitch']} {self.labels['kind']}"


# --------------------------------------------------------------------------- images


def _shape_mask(
    mask: ImageDraw.ImageDraw, shape: str, cx: float, cy: float, r: float, angle: float, form: tuple = (0.5, 0.5, 0.5)
) -> None:
    """Draw ``shape`` into ``mask``; ``form`` (three numbers in [0, 1]) picks its variant.

    The plain renderer uses the middle of every range, which is the canonical
    shape; the varied renderer spreads over the forms people still call by the
    shape's name (stars of 5 to 7 points, isosceles triangles, thin and thick
    crosses, narrow diamonds, thin and fat crescents).
    """
    a, b, c = form
    def polygon(points: list[tuple[float, float]]) -> None:
        c, s = math.cos(angle), math.sin(angle)
        mask.polygon([(cx + x * c - y * s, cy + x * s + y * c) for x, y in points], fill=255)

    def regular(n: int, radius: float, offset: float = 0.0) -> list[tuple[float, float]]:
        return [
            (radius * math.cos(offset + 2 * math.pi * k / n), radius * math.sin(offset + 2 * math.pi * k / n))
            for k in range(n)
        ]

    if shape == "circle":
        mask.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
    elif shape == "square":
        polygon([(-r * 0.85, -r * 0.85), (r * 0.85, -r * 0.85), (r * 0.85, r * 0.85), (-r * 0.85, r * 0.85)])
    elif shape == "triangle":
        if form == (0.5, 0.5, 0.5):
            polygon(regular(3, r * 1.1, -math.pi / 2))
        else:  # isosceles: apex height and base width vary
            apex, base = r * (0.95 + 0.35 * a), r * (0.8 + 0.35 * b)
            polygon([(0, -apex), (base, r * 0.62), (-base, r * 0.62)])
    elif shape == "star":
        points = 5 if form == (0.5, 0.5, 0.5) else (5, 5, 6, 7)[min(3, int(a * 4))]
        depth = 0.45 if form == (0.5, 0.5, 0.5) else 0.34 + 0.24 * b
        outer = regular(points, r * 1.1, -math.pi / 2)
        inner = regular(points, r * depth, -math.pi / 2 + math.pi / points)
        polygon([p for pair in zip(outer, inner, strict=True) for p in pair])
    elif shape == "hexagon":
        polygon(regular(6, r))
    elif shape == "cross":
        w = r * (0.2 + 0.26 * a)
        polygon(
            [(-w, -r), (w, -r), (w, -w), (r, -w), (r, w), (w, w), (w, r), (-w, r), (-w, w), (-r, w), (-r, -w), (-w, -w)]
        )
    elif shape == "diamond":
        width = r * (0.5 + 0.4 * a)
        polygon([(0, -r * 1.1), (width, 0), (0, r * 1.1), (-width, 0)])
    elif shape == "crescent":
        mask.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
        shift, bite = r * (0.3 + 0.4 * a), r * (0.75 + 0.2 * b)
        ox, oy = shift * math.cos(angle), shift * math.sin(angle)
        mask.ellipse([cx - bite + ox, cy - bite + oy, cx + bite + ox, cy + bite + oy], fill=0)
    else:
        raise ValueError(f"unknown shape {shape!r}")


def _background(rng: np.random.Generator, kind: str, colour: str, size: int) -> np.ndarray:
    # Keep the object visible: light objects go on darker backgrounds and dark
    # objects on lighter ones ("dark"/"light" labels are swapped beforehand).
    light_object = float(np.dot(COLOURS[colour][0], (0.299, 0.587, 0.114))) > 128
    if kind == "grey":
        base = np.full(3, rng.uniform(60, 90) if light_object else rng.uniform(160, 190))
    elif kind == "dark" or (kind != "light" and light_object):
        base = rng.uniform(15, 55, 3)
    else:
        base = rng.uniform(190, 235, 3)
    canvas = np.broadcast_to(base, (size, size, 3)).astype(np.float32)
    if kind == "gradient":
        other = base + rng.uniform(-50, 50, 3)
        t = np.linspace(0, 1, size, dtype=np.float32)[:, None, None]
        canvas = canvas * (1 - t) + other * t
    elif kind == "noisy":
        canvas = canvas + rng.normal(0, 14, (size, size, 1))
    elif kind == "striped":
        period = rng.integers(6, 14)
        yy, xx = np.mgrid[0:size, 0:size]
        stripes = ((xx + yy * rng.choice([-1, 0, 1])) // period) % 2
        canvas = canvas + stripes[..., None] * rng.uniform(12, 25) * (-1 if light_object else 1)
    return canvas


def image_labels(rng: np.random.Generator, colour: str | None = None, shape: str | None = None) -> dict:
    colour = colour or _pick(rng, list(COLOURS))
    background = _pick(rng, BACKGROUNDS)
    luminance = float(np.dot(COLOURS[colour][0], (0.299, 0.587, 0.114)))
    if background == "dark" and luminance < 60:
        background = "light"
    elif background == "light" and luminance > 200:
        background = "dark"
    count = int(rng.choice([1, 1, 1, 2, 3]))
    return {
        "colour": colour,
        "shape": shape or _pick(rng, list(SHAPES)),
        "count": count,
        "size": _pick(rng, list(SIZES)) if count == 1 else "small",
        "position": _pick(rng, list(POSITIONS)) if count == 1 else "scattered",
        "background": background,
    }


def render_image(
    rng: np.random.Generator,
    colour: str | None = None,
    shape: str | None = None,
    size: int = IMAGE_SIZE,
    varied: bool = False,
) -> ImageSample:
    """One image and its caption; ``varied`` adds training's rendering variety (see ``_render_varied``).

    The plain rendering (the default) is what the demo site and the fixtures show.
    """
    labels = image_labels(rng, colour, shape)
    if varied:
        return ImageSample(_render_varied(rng, labels), image_caption(rng, labels), labels)
    colour, shape, count = labels["colour"], labels["shape"], labels["count"]
    size_name, position = labels["size"], labels["position"]

    canvas = _background(rng, labels["background"], colour, size)
    mask_img = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(mask_img)
    radius = SIZES[size_name] * size * rng.uniform(0.9, 1.1)
    centres: list[tuple[float, float]] = []
    for _ in range(count):
        for _attempt in range(50):
            if count == 1:
                px, py = POSITIONS[position]
                span = max(0.0, 0.5 - SIZES[size_name] * 1.1 - abs(px - 0.5))
                cx = size * np.clip(px + rng.uniform(-0.06, 0.06), 0.5 - span - 0.22, 0.5 + span + 0.22)
                cy = size * np.clip(py + rng.uniform(-0.06, 0.06), 0.5 - span - 0.22, 0.5 + span + 0.22)
            else:
                cx, cy = rng.uniform(radius * 1.2, size - radius * 1.2, 2)
            if all(math.hypot(cx - x, cy - y) > 2.3 * radius for x, y in centres):
                break
        centres.append((cx, cy))
        # Squares and crosses stay near upright: rotated 45° they read as
        # diamonds and x's, which would make their captions wrong.
        spin = (
            math.radians(rng.uniform(-15, 15))
            if shape in ("square", "cross", "diamond")
            else rng.uniform(0, 2 * math.pi)
        )
        _shape_mask(draw, shape, cx, cy, radius, spin)

    rgb = np.array(COLOURS[colour][0], dtype=np.float32) + rng.normal(0, 12, 3)
    alpha = np.asarray(mask_img, dtype=np.float32)[..., None] / 255.0
    pixels = canvas * (1 - alpha) + rgb * alpha
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")
    return ImageSample(image, image_caption(rng, labels), labels)


def image_caption(rng: np.random.Generator, labels: dict) -> str:
    colour = _pick(rng, COLOURS[labels["colour"]][1])
    shape = _pick(rng, SHAPES[labels["shape"]])
    bg = _pick(rng, BACKGROUND_WORDS[labels["background"]])
    if labels["count"] > 1:
        many = f"{_pick(rng, COUNT_WORDS[labels['count']])} {colour} {_plural(shape)}"
        return _pick(rng, [many, f"{many} on a {bg} background", f"a picture of {many}", f"{many} scattered around"])
    size = _pick(rng, SIZE_WORDS[labels["size"]])
    where = "in the center" if labels["position"] == "center" else f"on the {labels['position']}"
    templates = [
        f"{_a(colour)} {shape}",
        f"{colour} {shape}",
        f"{_a(size)} {colour} {shape}",
        f"{_a(colour)} {shape} on {_a(bg)} background",
        f"a photo of {_a(colour)} {shape}",
        f"an image showing {_a(colour)} {shape} {where}",
        f"{_a(size)} {colour} {shape} {where} on {_a(bg)} background",
        f"the {shape} is {colour}",
        f"a drawing of a {shape} coloured {colour}",
        f"{colour} {shape}, {size}, {where}",
    ]
    return _pick(rng, templates)


def image_query(rng: np.random.Generator, colour: str, shape: str) -> str:
    """A short search-box query naming only colour and shape."""
    c, s = _pick(rng, COLOURS[colour][1]), _pick(rng, SHAPES[shape])
    return _pick(rng, [f"{_a(c)} {s}", f"{c} {s}", f"{c} {_plural(s)}", f"a picture of {_a(c)} {s}"])


# --------------------------------------------------------------------------- audio


def _harmonic_wave(phase: np.ndarray, f_max: float, timbre: str, sr: int) -> np.ndarray:
    """Band-limited sine/square/sawtooth by additive synthesis (no aliasing)."""
    if timbre == "sine":
        return np.sin(phase)
    n_harmonics = max(1, int((sr / 2 * 0.9) // max(f_max, 1.0)))
    ks = range(1, n_harmonics + 1, 2) if timbre == "square" else range(1, n_harmonics + 1)
    out = np.zeros_like(phase)
    for k in ks:
        out += np.sin(k * phase) / k
    return out / np.abs(out).max()


def _tone(freq: np.ndarray | float, n: int, timbre: str, sr: int) -> np.ndarray:
    freq = np.broadcast_to(np.asarray(freq, dtype=np.float64), (n,))
    phase = 2 * np.pi * np.cumsum(freq) / sr
    return _harmonic_wave(phase, float(freq.max()), timbre, sr)


def _noise(rng: np.random.Generator, n: int, pitch: str, sr: int) -> np.ndarray:
    spectrum = np.fft.rfft(rng.normal(size=n))
    f = np.fft.rfftfreq(n, 1 / sr)
    f[0] = f[1]
    # Brown (1/f^2 power) rumbles, pink (1/f) whooshes, high-passed white hisses.
    if pitch == "low":
        spectrum /= f
        spectrum[f > 600] *= 0.05
    elif pitch == "mid":
        spectrum /= np.sqrt(f)
        spectrum[(f < 150) | (f > 3000)] *= 0.2
    else:
        spectrum[f < 2000] *= 0.05
    return np.fft.irfft(spectrum, n)


def audio_labels(rng: np.random.Generator, kind: str | None = None, pitch: str | None = None) -> dict:
    kind = kind or _pick(rng, AUDIO_KINDS)
    labels = {
        "kind": kind,
        "pitch": pitch or _pick(rng, PITCHES),
        "timbre": "noise" if kind == "noise" else _pick(rng, TIMBRES),
    }
    if kind == "chord":
        labels["quality"] = _pick(rng, ["major", "minor"])
    elif kind == "sweep":
        labels["direction"] = _pick(rng, ["rising", "falling"])
    elif kind == "beeps":
        labels["tempo"] = _pick(rng, ["slow", "fast"])
    return labels


def synth_audio(
    rng: np.random.Generator,
    kind: str | None = None,
    pitch: str | None = None,
    seconds: float | None = None,
    sr: int = SAMPLE_RATE,
    varied: bool = False,
) -> AudioSample:
    """One clip and its caption; ``varied`` adds training's synthesis variety (see ``_synth_varied``)."""
    labels = audio_labels(rng, kind, pitch)
    if varied:
        wave, sr = _synth_varied(rng, labels, seconds)
        return AudioSample(wave, sr, audio_caption(rng, labels), labels)
    kind, timbre = labels["kind"], labels["timbre"]
    seconds = seconds or float(rng.uniform(2.0, 4.0))
    n = int(seconds * sr)
    lo, hi = PITCH_BANDS[labels["pitch"]]
    f0 = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
    t = np.arange(n) / sr

    if kind == "tone":
        vibrato = 1 + rng.uniform(0, 0.006) * np.sin(2 * np.pi * rng.uniform(3, 6) * t)
        wave = _tone(f0 * vibrato, n, timbre, sr)
    elif kind == "chord":
        third = 5 / 4 if labels["quality"] == "major" else 6 / 5
        wave = sum(_tone(f0 * ratio, n, timbre, sr) for ratio in (1.0, third, 1.5)) / 3
    elif kind == "sweep":
        a, b = (lo, hi) if labels["direction"] == "rising" else (hi, lo)
        start = rng.uniform(0, 0.2)
        progress = np.clip((t / seconds - start) / (1 - start), 0, 1)
        wave = _tone(a * (b / a) ** progress, n, timbre, sr)
    elif kind == "beeps":
        rate = rng.uniform(1.5, 3.0) if labels["tempo"] == "slow" else rng.uniform(5.0, 8.0)
        length = rng.uniform(0.06, 0.4 / rate + 0.03)
        gate = ((t * rate + rng.uniform()) % 1.0) < length * rate
        wave = _tone(f0, n, timbre, sr) * np.convolve(gate, np.hanning(65) / 32.5, mode="same")
    elif kind == "noise":
        wave = _noise(rng, n, labels["pitch"], sr)
    else:
        raise ValueError(f"unknown audio kind {kind!r}")

    wave = wave / (np.abs(wave).max() + 1e-9)
    fade = min(n // 4, int(0.02 * sr))
    envelope = np.ones(n)
    envelope[:fade] = np.linspace(0, 1, fade)
    envelope[n - fade :] = np.linspace(1, 0, fade)
    wave = wave * envelope * rng.uniform(0.3, 0.9)
    if rng.uniform() < 0.5:
        wave = wave + rng.normal(0, rng.uniform(0.002, 0.02), n)
    wave = np.clip(wave, -1, 1).astype(np.float32)
    return AudioSample(wave, sr, audio_caption(rng, labels), labels)


def audio_caption(rng: np.random.Generator, labels: dict) -> str:
    pitch = _pick(rng, PITCH_WORDS[labels["pitch"]])
    if labels["kind"] == "noise":
        phrase = _pick(rng, NOISE_PHRASES[labels["pitch"]])
        return _pick(
            rng, [_a(phrase), phrase, f"the sound of {phrase}", f"a recording of {phrase}", f"{phrase}, like static"]
        )
    noun = _pick(rng, KIND_NOUNS[labels["kind"]])
    timbre = _pick(rng, TIMBRE_WORDS[labels["timbre"]])
    extra = {
        "chord": lambda: f"{labels['quality']} ",
        "sweep": lambda: f"{labels['direction']} ",
        "beeps": lambda: f"{labels['tempo']} ",
        "tone": lambda: "steady ",
    }[labels["kind"]]()
    templates = [
        f"{_a(pitch)} {noun}",
        f"{pitch} pitched {noun}",
        f"{_a(extra + pitch)} {noun}",
        f"{_a(pitch)} {timbre} {noun}",
        f"the sound of {_a(extra + pitch)} {timbre} {noun}",
        f"{noun}, {pitch}",
        f"{_a(timbre)} {noun} at a {PITCH_LEVELS[labels['pitch']]} pitch",
    ]
    return _pick(rng, templates)


def audio_query(rng: np.random.Generator, kind: str, pitch: str) -> str:
    """A short search-box query naming only the kind of sound and its pitch."""
    p = _pick(rng, PITCH_WORDS[pitch])
    if kind == "noise":
        return _pick(rng, NOISE_PHRASES[pitch])
    noun = _pick(rng, KIND_NOUNS[kind])
    return _pick(rng, [f"{p} pitched {noun}", f"{_a(p)} {noun}", f"{p} {noun}"])


# --------------------------------------------------------------------------- training variety
#
# Training renders most of its data with more variety than the demo look, so the
# model learns the object rather than one renderer: shape variants, shades, soft
# and hard edges, textured backgrounds, occluders, blur, noise and compression;
# sounds with other envelopes, timbres, room echo, noise and sample rates.
# ``encoders.demo.synth_eval`` is an independent world for measuring this; nothing
# here is shared with it.


def _hsv_jitter(rgb: tuple[int, int, int], rng: np.random.Generator, colour: str) -> np.ndarray:
    r, g, b = (v / 255 for v in rgb)
    hue, sat, val = colorsys.rgb_to_hsv(r, g, b)
    # Three draws for every colour, so a seed replays the same scene in any colour.
    a, b, c = rng.random(3)
    if colour == "white":
        sat, val = 0.08 * a, 0.85 + 0.15 * b
    elif colour == "black":
        sat, val = 0.3 * a, 0.16 * b
    else:
        hue = (hue + 0.06 * (c - 0.5)) % 1
        sat = float(np.clip(sat * (0.7 + 0.4 * a), 0, 1))
        val = float(np.clip(val * (0.75 + 0.37 * b), 0, 1))
    return np.array(colorsys.hsv_to_rgb(hue, sat, val)) * 255


def _tint(rng: np.random.Generator, level: float) -> np.ndarray:
    """A greyish colour of about the given brightness."""
    return np.clip(level + rng.normal(0, 18, 3), 0, 255)


def _varied_background(rng: np.random.Generator, size: int, object_luma: float) -> np.ndarray:
    dark_bg = object_luma > 140 or (object_luma > 70 and rng.random() < 0.35)
    level = rng.uniform(10, 85) if dark_bg else rng.uniform(165, 240)
    spread = rng.uniform(10, 45)
    a, b = _tint(rng, level - spread / 2), _tint(rng, level + spread / 2)
    style = rng.integers(8)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    if style == 0:  # a smooth random field: a tiny random picture scaled up
        cells = int(rng.integers(2, 7))
        small = Image.fromarray((rng.random((cells, cells)) * 255).astype(np.uint8))
        t = np.asarray(small.resize((size, size), Image.BICUBIC), dtype=np.float32) / 255
    elif style == 1:  # two-axis gradient
        gx, gy = rng.uniform(-1, 1, 2)
        t = (xx * gx + yy * gy - min(0, gx) - min(0, gy)) / (abs(gx) + abs(gy) + 1e-6)
    elif style == 2:  # checkerboard or grid
        cell = rng.uniform(0.08, 0.3)
        t = (((xx // cell) + (yy // cell)) % 2).astype(np.float32) * rng.uniform(0.3, 1)
    elif style == 3:  # soft blobs (out-of-focus lights, foliage)
        layer = Image.new("L", (size, size), 0)
        pen = ImageDraw.Draw(layer)
        for _ in range(rng.integers(4, 12)):
            x, y = rng.uniform(0, size, 2)
            w, h = rng.uniform(0.05, 0.25, 2) * size
            pen.ellipse([x - w, y - h, x + w, y + h], fill=int(rng.integers(60, 255)))
        t = np.asarray(layer.filter(ImageFilter.GaussianBlur(size * rng.uniform(0.02, 0.06))), np.float32) / 255
    elif style == 4:  # scribbled lines
        layer = Image.new("L", (size, size), 0)
        pen = ImageDraw.Draw(layer)
        for _ in range(rng.integers(5, 20)):
            pen.line([tuple(rng.uniform(0, size, 2)), tuple(rng.uniform(0, size, 2))], fill=255,
                     width=int(rng.integers(1, 4)))
        t = np.asarray(layer, np.float32) / 255 * rng.uniform(0.3, 0.8)
    elif style == 5:  # waves / rings
        freq = rng.uniform(4, 30)
        cx, cy = rng.uniform(-0.5, 1.5, 2)
        t = 0.5 + 0.5 * np.sin(freq * np.hypot(xx - cx, yy - cy) * (rng.uniform(0.5, 1.5)))
    elif style == 6:  # horizon: two bands with a soft edge
        edge = rng.uniform(0.4, 0.85)
        t = 1 / (1 + np.exp(-(yy - edge) * rng.uniform(10, 80)))
    else:  # grain
        t = rng.random((size, size)).astype(np.float32)
    t = t.astype(np.float32)[..., None]
    canvas = a * (1 - t) + b * t
    canvas += rng.normal(0, rng.uniform(0, 10), (size, size, 1))
    return canvas


def _variant_mask(rng: np.random.Generator, shape: str, size: int, centres: list, radius: float) -> np.ndarray:
    """The object's mask with its per-image variant: stretch, rounding, soft or hard edges."""
    scale = 4 if rng.random() < 0.6 else 1  # supersampled (anti-aliased) or aliased edges
    mask = Image.new("L", (size * scale, size * scale), 0)
    pen = ImageDraw.Draw(mask)
    stretch = rng.uniform(0.85, 1.15)
    spins = rng.uniform(0, 2 * math.pi, len(centres))
    tilts = np.radians(rng.uniform(-20, 20, len(centres)))
    form = tuple(float(v) for v in rng.random(3))  # drawn for every shape: scene families replay one stream
    for (cx, cy), spin, tilt in zip(centres, spins, tilts, strict=True):
        angle = tilt if shape in ("square", "cross", "diamond") else spin
        _shape_mask(pen, shape, cx * scale, cy * scale, radius * scale, angle, form)
    if scale > 1:
        mask = mask.resize((size, size), Image.BOX)
    if abs(stretch - 1) > 0.02:
        w = max(1, int(size * stretch)) if rng.random() < 0.5 else size
        h = size if w != size else max(1, int(size / stretch))
        stretched = mask.resize((w, h), Image.BILINEAR)
        mask = Image.new("L", (size, size), 0)
        mask.paste(stretched, ((size - w) // 2, (size - h) // 2))
    if rng.random() < 0.3:  # slightly rounded corners: blur, then re-threshold
        soft = np.asarray(mask.filter(ImageFilter.GaussianBlur(radius * rng.uniform(0.03, 0.08))), np.float32)
        return np.clip((soft - 128) / 40 + 0.5, 0, 1)
    return np.asarray(mask, np.float32) / 255


def _render_varied(rng: np.random.Generator, labels: dict) -> Image.Image:
    """Training's rendering of ``labels``: the same classes as the plain renderer with more variety.

    The number of random draws does not depend on colour or shape, so a seed
    replays one scene for any of them (``scene_family``).
    """
    colour, shape, count = labels["colour"], labels["shape"], labels["count"]
    size = int(rng.choice([72, 96, 128, 128, 160, 192]))
    fill = _hsv_jitter(COLOURS[colour][0], rng, colour)
    canvas = _varied_background(rng, size, float(np.dot(fill, (0.299, 0.587, 0.114))))
    # Never so small that the shape cannot be told at the model's 64 px.
    radius = size * (rng.uniform(0.14, 0.36) if count == 1 else rng.uniform(0.11, 0.17))
    centres: list[tuple[float, float]] = []
    for _ in range(count):
        for _attempt in range(30):
            cx, cy = rng.uniform(radius * 1.2, size - radius * 1.2, 2)
            if all(math.hypot(cx - x, cy - y) > 2.3 * radius for x, y in centres):
                break
        centres.append((cx, cy))
    alpha = _variant_mask(rng, shape, size, centres, radius)[..., None]
    if rng.random() < 0.3:  # shadow under the object
        dx, dy = (int(v) for v in rng.integers(1, max(2, int(radius * 0.3)), 2))
        shadow = np.roll(alpha, (dy, dx), axis=(0, 1))
        canvas = canvas * (1 - 0.5 * shadow)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    light = 1 + rng.uniform(-0.2, 0.2) * (xx - 0.5) + rng.uniform(-0.2, 0.2) * (yy - 0.5)
    paint = fill * light[..., None]
    if rng.random() < 0.25:  # a darker outline
        edge = np.asarray(
            Image.fromarray((alpha[..., 0] * 255).astype(np.uint8)).filter(ImageFilter.MinFilter(3)), np.float32
        )[..., None] / 255
        paint = paint * (1 - 0.35 * (alpha - edge).clip(0, 1))
    pixels = canvas * (1 - alpha) + paint * alpha
    if rng.random() < 0.2:  # an occluder over a small part of one object
        cx, cy = centres[0]
        side = rng.uniform(0, 2 * math.pi)
        ox, oy = cx + math.cos(side) * radius * 1.1, cy + math.sin(side) * radius * 1.1
        reach = radius * rng.uniform(0.25, 0.4)
        layer = Image.new("L", (size, size), 0)
        box = [ox - reach, oy - reach, ox + reach, oy + reach]
        pen = ImageDraw.Draw(layer)
        if rng.random() < 0.5:
            pen.rectangle(box, fill=255)
        else:
            pen.ellipse(box, fill=255)
        cover = np.asarray(layer, np.float32)[..., None] / 255
        pixels = pixels * (1 - cover) + _tint(rng, rng.uniform(70, 180)) * cover
    pixels += rng.normal(0, rng.uniform(0, 9), (size, size, 3)) * (rng.random() < 0.5)
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")
    blur = rng.random()
    if blur < 0.25:
        image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.4, 1.2) * size / 128))
    elif blur < 0.35:
        image = image.filter(ImageFilter.BoxBlur(1))
    elif blur < 0.5:  # lost resolution
        low = max(48, int(size * rng.uniform(0.5, 0.8)))
        image = image.resize((low, low), Image.BILINEAR).resize((size, size), Image.NEAREST)
    codec = rng.random()
    quality = int(rng.integers(30, 95))
    colours = int(rng.integers(24, 128))
    if codec < 0.55:
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=quality)
        image = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
    elif codec < 0.7:
        image = image.quantize(colours).convert("RGB")
    return image


def _harmonic_series(rng: np.random.Generator, phase: np.ndarray, f_max: float, sr: int) -> np.ndarray:
    """A random harmonic spectrum below 7.5 kHz: covers organ-, reed-, triangle- and FM-like timbres."""
    top = max(1, int(min(sr / 2 * 0.9, 7500) // max(f_max, 1.0)))
    n = min(top, int(rng.integers(1, 12)))
    tilt = rng.uniform(0.5, 2.5)
    out = np.zeros_like(phase)
    for k in range(1, n + 1):
        if k > 1 and rng.random() < 0.3:
            continue
        out += np.sin(k * phase + rng.uniform(0, 2 * np.pi)) / k**tilt
    return out


def _varied_tone(rng: np.random.Generator, freq, n: int, timbre: str, sr: int) -> np.ndarray:
    freq = np.broadcast_to(np.asarray(freq, dtype=np.float64), (n,))
    phase = 2 * np.pi * np.cumsum(freq) / sr + rng.uniform(0, 2 * np.pi)
    f_max = float(freq.max())
    if rng.random() < 0.4:
        return _harmonic_series(rng, phase, f_max, sr)
    if timbre == "sine":
        return np.sin(phase)
    limit = max(1, int(min(sr / 2 * 0.9, 7500) // max(f_max, 1.0)))
    ks = range(1, limit + 1, 2) if timbre == "square" else range(1, limit + 1)
    out = np.zeros_like(phase)
    for k in ks:
        out += np.sin(k * phase) / k
    return out


def _random_envelope(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """Random control points, optional decay and amplitude wobble; always starts and ends softly."""
    t = np.linspace(0, 1, n)
    points = rng.uniform(0.4, 1.0, int(rng.integers(2, 6)))
    env = np.interp(t, np.linspace(0, 1, len(points)), points)
    if rng.random() < 0.3:
        env = env * np.exp(-t * n / sr / rng.uniform(0.8, 4.0))
    if rng.random() < 0.3:
        env = env * (1 - rng.uniform(0.1, 0.5) * (0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(2, 8) * t * n / sr)))
    attack, release = int(rng.uniform(0.003, 0.25) * sr), int(rng.uniform(0.01, 0.4) * sr)
    env[: min(attack, n)] *= np.linspace(0, 1, min(attack, n))
    env[n - min(release, n) :] *= np.linspace(1, 0, min(release, n))
    return env


def _echo(rng: np.random.Generator, wave: np.ndarray, sr: int) -> np.ndarray:
    """Room echo from a few feedback comb filters (Schroeder-style)."""
    out = np.zeros_like(wave)
    for delay_ms in rng.uniform(20, 60, 3):
        delay, gain = int(delay_ms * sr / 1000), rng.uniform(0.5, 0.85)
        # y[n] = x[n] + gain * y[n - delay], one delay-long block at a time.
        comb = wave.copy()
        for start in range(delay, len(comb), delay):
            block = comb[start : start + delay]
            block += gain * comb[start - delay : start - delay + len(block)]
        out += comb
    mix = rng.uniform(0.1, 0.45)
    return (1 - mix) * wave + mix * out / (np.abs(out).max() + 1e-9) * np.abs(wave).max()


def _synth_varied(rng: np.random.Generator, labels: dict, seconds: float | None) -> tuple[np.ndarray, int]:
    kind, timbre, pitch = labels["kind"], labels["timbre"], labels["pitch"]
    sr = int(rng.choice([16000, 16000, 22050, 24000, 32000, 44100]))
    seconds = seconds or float(rng.uniform(1.5, 4.5))
    n = int(seconds * sr)
    lo, hi = PITCH_BANDS[pitch]
    f0 = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
    t = np.arange(n) / sr
    if kind == "tone":
        wobble = 1 + rng.uniform(0, 0.01) * np.sin(2 * np.pi * rng.uniform(2, 7) * t)
        wave = _varied_tone(rng, f0 * wobble, n, timbre, sr)
    elif kind == "chord":
        third = 5 / 4 if labels["quality"] == "major" else 6 / 5
        ratios = [1.0, third, 1.5] + ([2.0] if rng.random() < 0.3 else []) + ([15 / 8] if rng.random() < 0.2 else [])
        wave = np.zeros(n)
        for ratio in ratios:
            voice = _varied_tone(rng, f0 * ratio * rng.uniform(0.998, 1.002), n, timbre, sr)
            voice[: int(rng.uniform(0, 0.1) * sr)] = 0
            wave += voice
    elif kind == "sweep":
        span = rng.uniform(0.6, 1.0)
        a, b = lo * (hi / lo) ** (rng.uniform(0, 1 - span)), 0.0
        b = a * (hi / lo) ** span
        if labels["direction"] == "falling":
            a, b = b, a
        progress = np.clip(t / seconds * rng.uniform(1.0, 1.25) - rng.uniform(0, 0.1), 0, 1)
        freq = a * (b / a) ** progress if rng.random() < 0.5 else a + (b - a) * progress
        wave = _varied_tone(rng, freq, n, timbre, sr)
    elif kind == "beeps":
        rate = rng.uniform(1.2, 3.2) if labels["tempo"] == "slow" else rng.uniform(4.5, 9.0)
        duty = rng.uniform(0.2, 0.65)
        phase = (t * rate + rng.uniform()) % 1.0
        gate = (phase < duty).astype(float)
        if rng.random() < 0.5:
            gate *= np.exp(-phase / rate / rng.uniform(0.03, 0.2))
        gate = np.convolve(gate, np.hanning(int(sr * 0.004) + 1), mode="same")
        wave = _varied_tone(rng, f0, n, timbre, sr) * gate
    elif kind == "noise":
        spectrum = np.fft.rfft(rng.normal(size=n))
        f = np.fft.rfftfreq(n, 1 / sr)
        f[0] = f[1]
        if pitch == "low":
            spectrum /= f ** rng.uniform(0.8, 1.3)
            spectrum[f > rng.uniform(300, 800)] *= 0.03
        elif pitch == "mid":
            spectrum /= f ** rng.uniform(0.3, 0.7)
            spectrum[(f < rng.uniform(100, 300)) | (f > rng.uniform(2200, 3500))] *= 0.15
        else:
            spectrum[f < rng.uniform(1800, 3500)] *= 0.03
        wave = np.fft.irfft(spectrum, n)
    else:
        raise ValueError(f"unknown audio kind {kind!r}")
    wave = wave / (np.abs(wave).max() + 1e-9) * _random_envelope(rng, n, sr)
    if rng.random() < 0.4:
        wave = _echo(rng, wave, sr)
    if rng.random() < 0.6:
        power = np.sqrt(np.mean(wave**2)) + 1e-9
        wave = wave + rng.normal(0, power * 10 ** (-rng.uniform(12, 40) / 20), n)
    wave = wave / (np.abs(wave).max() + 1e-9) * rng.uniform(0.03, 0.95)
    if rng.random() < 0.3:
        wave = np.round(wave * 32767) / 32767
    return np.clip(wave, -1, 1).astype(np.float32), sr


# --------------------------------------------------------------------------- out-of-domain text
#
# Ordinary sentences with no shape, colour or sound meaning. Training pulls them
# away from every item, so a relevance cutoff can answer "no close match". The
# held-out sentences that measure this live in ``encoders.demo.synth_eval``.

_PEOPLE = ["my sister", "the manager", "a neighbour", "our teacher", "the plumber", "my boss", "a tourist",
           "the nurse", "his father", "the students", "a journalist", "the mayor", "my friend", "the baker",
           "the pilot", "a stranger", "the kids", "her cousin", "the engineer", "a customer", "the waiter",
           "our team", "the doctor", "a farmer", "the police", "my parents", "the lawyer", "the author"]
_ANIMALS = ["dog", "cat", "horse", "rabbit", "parrot", "goldfish", "cow", "sheep", "lion", "elephant",
            "giraffe", "penguin", "dolphin", "hamster", "tiger", "monkey", "owl", "turtle", "puppy", "kitten",
            "fox", "bear", "duck", "chicken", "squirrel", "deer", "wolf", "zebra"]
_THINGS = ["car", "bicycle", "laptop", "phone", "sofa", "kitchen", "garden", "bridge", "building", "tree",
           "mountain", "beach", "city", "train", "airport", "house", "chair", "table", "window", "book",
           "computer", "boat", "river", "forest", "street", "restaurant", "church", "castle", "sandwich",
           "pizza", "cake", "coffee", "salad", "burger", "wedding", "birthday", "passport", "umbrella",
           "keyboard", "bottle", "guitar", "camera", "television", "lamp", "backpack", "truck", "office"]
_DOCUMENTS = ["invoice", "receipt", "contract", "report", "email", "letter", "spreadsheet", "presentation",
              "tax form", "bank statement", "resume", "meeting notes", "agenda", "newsletter", "memo",
              "itinerary", "recipe", "manual", "certificate", "ticket", "prescription", "essay", "proposal"]
_MONTHS = ["january", "february", "march", "april", "may", "june", "july", "august", "september",
           "october", "november", "december"]
_DAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday", "today", "yesterday",
         "tomorrow", "last week", "next month", "this morning", "tonight"]
_CITIES = ["paris", "london", "new york", "rome", "madrid", "sydney", "cairo", "toronto", "mumbai", "oslo",
           "vienna", "prague", "dublin", "seoul", "lima", "nairobi", "athens", "boston", "chicago", "bangkok"]
_VERBS = ["bought", "sold", "visited", "cooked", "painted", "repaired", "cleaned", "found", "lost", "borrowed",
          "watched", "read", "wrote", "sent", "ordered", "shared", "opened", "closed", "carried", "fixed"]
_ACTIVITIES = ["running", "swimming", "cooking dinner", "reading", "studying", "shopping", "dancing", "hiking",
               "gardening", "sleeping", "working", "driving", "travelling", "eating lunch", "writing code",
               "playing chess", "walking the dog", "doing homework", "waiting for the bus", "fishing"]
_ADJECTIVES = ["old", "new", "beautiful", "broken", "expensive", "cheap", "famous", "empty", "busy", "quiet",
               "modern", "ancient", "funny", "strange", "happy", "sad", "wet", "dirty", "clean", "delicious",
               "rusty", "wooden", "favourite", "crowded", "lonely", "friendly", "angry", "tired", "lovely"]
_SUBJECTS = ["history", "politics", "economics", "biology", "football", "cooking", "finance", "philosophy",
             "chemistry", "medicine", "law", "travel", "fashion", "religion", "literature", "insurance",
             "real estate", "climate change", "programming", "astronomy", "marketing", "nutrition"]
_QUESTION_HEADS = ["how do I", "where can I", "why does", "when should I", "what is the best way to", "can you",
                   "who will", "is it possible to"]
_ACTIONS = ["cancel my subscription", "book a table", "renew a passport", "learn spanish", "fix a leaking tap",
            "file my taxes", "apply for a loan", "train a puppy", "bake bread", "install the printer",
            "find a dentist", "sell my car", "update the software", "lose weight", "plant tomatoes",
            "write a novel", "open a bank account", "get to the station", "save money", "change the password"]
_SYLLABLES = ["ka", "lo", "mi", "tren", "vos", "pul", "za", "dri", "fen", "gor", "bi", "nak", "sul", "wem",
              "tho", "rix", "quo", "jan", "pel", "urb"]

_OOD_TEMPLATES = [
    "a photo of a {animal}", "a picture of my {thing}", "an image showing a {adjective} {thing}",
    "a drawing of a {animal}", "the {animal} is {adjective}", "{person} {verb} the {thing} {day}",
    "{document} from {month}", "{document} for the {thing}", "{adjective} {thing} in {city}",
    "{person} is {activity}", "a {animal} {activity}", "{question} {action}?", "{question} {action}",
    "notes about {subject}", "an introduction to {subject}", "{subject} news from {city}",
    "{person} {verb} a {adjective} {thing} in {city}", "the {document} was due on {day}",
    "a {adjective} {animal} near the {thing}", "photos from {city} in {month}", "{activity} with {person}",
    "my {document}", "{thing}", "{animal}", "{city}", "{subject}", "{adjective} {animal}",
    "a recording of the {document} review", "the {thing} of {person}", "{month} {document} for {person}",
    "a video of {person} {activity}", "{person} and the {animal}", "top ten {subject} books",
    "{word} {word}", "a {word} of {word}", "the {word} {thing}",
]


def _pseudo_word(rng: np.random.Generator) -> str:
    return "".join(_pick(rng, _SYLLABLES) for _ in range(int(rng.integers(2, 4))))


def domain_words() -> set[str]:
    """Every word the demo world's captions and queries use to mean something."""
    phrases = [w for _, words in COLOURS.values() for w in words]
    phrases += [w for words in SHAPES.values() for w in words]
    phrases += [w for words in (*BACKGROUND_WORDS.values(), *SIZE_WORDS.values(), *PITCH_WORDS.values(),
                                *TIMBRE_WORDS.values(), *KIND_NOUNS.values(), *NOISE_PHRASES.values(),
                                *COUNT_WORDS.values()) for w in words]
    phrases += [*POSITIONS, *PITCH_LEVELS.values(), "steady", "major", "minor", "rising", "falling", "slow",
                "fast", "pitch", "pitched", "noise", "sound", "static", "coloured", "scattered", "background"]
    words = {w for phrase in phrases for w in re.split(r"[^a-z]+", phrase.lower()) if len(w) > 2}
    return words - {"the", "and", "pair", "trio", "two", "three", "like"}


def _has_domain_word(sentence: str, vocabulary: set[str]) -> bool:
    for word in re.split(r"[^a-z]+", sentence.lower()):
        if word in vocabulary or word.rstrip("s") in vocabulary or word.removesuffix("es") in vocabulary:
            return True
    return False


def ood_sentence(rng: np.random.Generator) -> str:
    """One ordinary English sentence (or search query) that means nothing in the demo world."""
    vocabulary = _DOMAIN_WORDS
    while True:
        template = _pick(rng, _OOD_TEMPLATES)
        sentence = template.format(
            animal=_pick(rng, _ANIMALS), thing=_pick(rng, _THINGS), adjective=_pick(rng, _ADJECTIVES),
            person=_pick(rng, _PEOPLE), verb=_pick(rng, _VERBS), day=_pick(rng, _DAYS),
            document=_pick(rng, _DOCUMENTS), month=_pick(rng, _MONTHS), city=_pick(rng, _CITIES),
            activity=_pick(rng, _ACTIVITIES), question=_pick(rng, _QUESTION_HEADS), action=_pick(rng, _ACTIONS),
            subject=_pick(rng, _SUBJECTS), word=_pseudo_word(rng),
        )
        if not _has_domain_word(sentence, vocabulary):
            return sentence


# --------------------------------------------------------------------------- sets


def image_samples(n: int, seed: int, size: int = IMAGE_SIZE, varied: float = 0.0) -> Iterator[ImageSample]:
    """``n`` images cycling through every colour×shape class in shuffled order.

    ``varied`` is the share rendered with training's variety (0: the plain demo look).
    """
    rng = np.random.default_rng(seed)
    classes = [(c, s) for c in COLOURS for s in SHAPES]
    order = rng.permutation(len(classes))
    for i in range(n):
        colour, shape = classes[order[i % len(classes)]]
        yield render_image(rng, colour, shape, size, varied=bool(varied and rng.random() < varied))


def audio_samples(n: int, seed: int, sr: int = SAMPLE_RATE, varied: float = 0.0) -> Iterator[AudioSample]:
    """``n`` clips cycling through every kind×pitch class in shuffled order (``varied`` as for images)."""
    rng = np.random.default_rng(seed)
    classes = [(k, p) for k in AUDIO_KINDS for p in PITCHES]
    order = rng.permutation(len(classes))
    for i in range(n):
        kind, pitch = classes[order[i % len(classes)]]
        yield synth_audio(rng, kind, pitch, sr=sr, varied=bool(varied and rng.random() < varied))


def scene_family(seed: int, colour: str | None = None, shape: str | None = None) -> list[ImageSample]:
    """One varied scene drawn once per shape (``colour`` given) or once per colour (``shape`` given).

    Every member replays the same random stream, so background, layout, size and
    effects match and only the named attribute changes: hard negatives that can be
    told apart by the object alone.
    """
    if (colour is None) == (shape is None):
        raise ValueError("give exactly one of colour or shape")
    if colour is not None:
        return [render_image(np.random.default_rng(seed), colour, s, varied=True) for s in SHAPES]
    return [render_image(np.random.default_rng(seed), c, shape, varied=True) for c in COLOURS]


def write_dataset(out_dir: str | Path, n_images: int, n_audio: int, n_texts: int, seed: int = 0) -> Path:
    """Write PNG/WAV/FLAC files and a ``manifest.jsonl``; returns the manifest path.

    Manifest rows: ``{"id", "modality", "path" (relative to out_dir; absent for
    text), "text" (text items only), "title", "tags", "labels"}``.
    """
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "audio").mkdir(parents=True, exist_ok=True)
    rows = []
    for i, sample in enumerate(image_samples(n_images, seed)):
        path = Path("images") / f"image_{i:04d}.png"
        sample.image.save(out / path)
        tags = [sample.labels["colour"], sample.labels["shape"], sample.labels["background"]]
        rows.append(
            {
                "id": f"image-{i:04d}",
                "modality": "image",
                "path": str(path),
                "title": sample.caption,
                "tags": tags,
                "labels": sample.labels,
            }
        )
    for i, sample in enumerate(audio_samples(n_audio, seed + 1)):
        # Alternate containers so the demo exercises both decoders.
        path = Path("audio") / f"audio_{i:04d}.{'flac' if i % 2 else 'wav'}"
        soundfile.write(out / path, sample.waveform, sample.samplerate)
        tags = [sample.labels["kind"], sample.labels["pitch"], sample.labels["timbre"]]
        rows.append(
            {
                "id": f"audio-{i:04d}",
                "modality": "audio",
                "path": str(path),
                "title": sample.caption,
                "tags": tags,
                "labels": sample.labels,
            }
        )
    rng = np.random.default_rng(seed + 2)
    for i in range(n_texts):
        if i % 2:
            labels = audio_labels(rng)
            text, tags = audio_caption(rng, labels), [labels["kind"], labels["pitch"]]
        else:
            labels = image_labels(rng)
            text, tags = image_caption(rng, labels), [labels["colour"], labels["shape"]]
        rows.append(
            {"id": f"text-{i:04d}", "modality": "text", "text": text, "title": text, "tags": tags, "labels": labels}
        )
    manifest = out / "manifest.jsonl"
    with open(manifest, "w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    return manifest


_DOMAIN_WORDS = domain_words()
