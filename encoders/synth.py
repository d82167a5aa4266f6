"""Seeded synthetic captioned data: coloured shapes, synthesised sounds, texts.

It trains the demo model, feeds the demo site (``write_dataset``) and gives the
tests labelled data to measure retrieval on. Every sample carries structured
labels next to its free-text caption; ``key`` is the class the quality tests
score against (colour+shape for images, kind+pitch for audio).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile
from PIL import Image, ImageDraw

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


def _shape_mask(mask: ImageDraw.ImageDraw, shape: str, cx: float, cy: float, r: float, angle: float) -> None:
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
        polygon(regular(3, r * 1.1, -math.pi / 2))
    elif shape == "star":
        outer, inner = regular(5, r * 1.1, -math.pi / 2), regular(5, r * 0.45, -math.pi / 2 + math.pi / 5)
        polygon([p for pair in zip(outer, inner, strict=True) for p in pair])
    elif shape == "hexagon":
        polygon(regular(6, r))
    elif shape == "cross":
        w = r * 0.33
        polygon(
            [(-w, -r), (w, -r), (w, -w), (r, -w), (r, w), (w, w), (w, r), (-w, r), (-w, w), (-r, w), (-r, -w), (-w, -w)]
        )
    elif shape == "diamond":
        polygon([(0, -r * 1.1), (r * 0.7, 0), (0, r * 1.1), (-r * 0.7, 0)])
    elif shape == "crescent":
        mask.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
        ox, oy = r * 0.5 * math.cos(angle), r * 0.5 * math.sin(angle)
        mask.ellipse([cx - r * 0.85 + ox, cy - r * 0.85 + oy, cx + r * 0.85 + ox, cy + r * 0.85 + oy], fill=0)
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
) -> ImageSample:
    labels = image_labels(rng, colour, shape)
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
) -> AudioSample:
    labels = audio_labels(rng, kind, pitch)
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


# --------------------------------------------------------------------------- sets


def image_samples(n: int, seed: int, size: int = IMAGE_SIZE) -> Iterator[ImageSample]:
    """``n`` images cycling through every colour×shape class in shuffled order."""
    rng = np.random.default_rng(seed)
    classes = [(c, s) for c in COLOURS for s in SHAPES]
    order = rng.permutation(len(classes))
    for i in range(n):
        colour, shape = classes[order[i % len(classes)]]
        yield render_image(rng, colour, shape, size)


def audio_samples(n: int, seed: int, sr: int = SAMPLE_RATE) -> Iterator[AudioSample]:
    """``n`` clips cycling through every kind×pitch class in shuffled order."""
    rng = np.random.default_rng(seed)
    classes = [(k, p) for k in AUDIO_KINDS for p in PITCHES]
    order = rng.permutation(len(classes))
    for i in range(n):
        kind, pitch = classes[order[i % len(classes)]]
        yield synth_audio(rng, kind, pitch, sr=sr)


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
