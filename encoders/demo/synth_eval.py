"""An independent world for evaluation only: the demo classes, drawn and synthesised by other code.

``encoders.demo.synth`` renders the training data; a model that scores well on held-out
samples of it may only have learned that renderer. This module draws the same
classes (8 colours x 8 shapes; 5 kinds x 3 pitch bands of sound) with different
primitives and is never imported by training:

- images: signed-distance and supersampled-polygon rasterisation (not PIL's
  drawing), shape variants (rounded squares, 5- and 6-point stars, isosceles
  triangles, ellipses, plus signs of any arm width), any canvas size,
  colour shades and lighting, drop shadows, occluding bars, textured and
  photo-like backgrounds (skies with a horizon, fractal clouds, wood grain,
  tiles, bokeh, paper), blur, sensor noise, JPEG or palette-PNG artefacts;
- audio: triangle/organ/FM timbres, ADSR, swell, tremolo and plucked
  envelopes, four-note chords with strummed onsets, linear sweeps, jittered
  beeps, IIR-filtered noise with gusts, reverb, background noise, levels from
  -30 to 0 dBFS, sample rates from 16 to 48 kHz, stereo, 16-bit and Ogg Vorbis
  round trips;
- text: held-out out-of-domain sentences (handwritten queries and sentences
  from templates and words the training generator does not use).

Sample objects and labels follow ``encoders.demo.synth`` so the same metrics apply.
"""

from __future__ import annotations

import colorsys
import io
import math
from collections.abc import Iterator

import numpy as np
import soundfile
from PIL import Image, ImageFilter
from scipy import signal

from encoders.demo.synth import AUDIO_KINDS, COLOURS, PITCH_BANDS, PITCHES, SHAPES, AudioSample, ImageSample

# --------------------------------------------------------------------------- images

CANVAS_SIZES = (96, 112, 128, 160, 192, 224, 256)
BACKGROUND_STYLES = ("sky", "clouds", "wood", "tiles", "bokeh", "paper")


def _luma(rgb) -> float:
    return float(np.dot(rgb, (0.299, 0.587, 0.114)))


def _value_noise(rng: np.random.Generator, size: int, octaves: int = 4) -> np.ndarray:
    """Fractal value noise in [0, 1]: bilinearly upsampled random grids, summed over octaves."""
    out = np.zeros((size, size))
    amplitude, total = 1.0, 0.0
    for octave in range(octaves):
        cells = 2 ** (octave + 2)
        grid = rng.random((cells + 1, cells + 1))
        coords = np.linspace(0, cells, size, endpoint=False)
        i = coords.astype(int)
        f = coords - i
        f = f * f * (3 - 2 * f)
        top = grid[i][:, i] * (1 - f)[None, :] + grid[i][:, i + 1] * f[None, :]
        bottom = grid[i + 1][:, i] * (1 - f)[None, :] + grid[i + 1][:, i + 1] * f[None, :]
        out += amplitude * (top * (1 - f)[:, None] + bottom * f[:, None])
        total += amplitude
        amplitude *= 0.5
    out /= total
    return (out - out.min()) / (np.ptp(out) + 1e-9)


def _muted_colour(rng: np.random.Generator, luma: float) -> np.ndarray:
    """A desaturated colour with roughly the given luminance."""
    hue = rng.random()
    r, g, b = colorsys.hsv_to_rgb(hue, rng.uniform(0.05, 0.35), 1.0)
    rgb = np.array([r, g, b]) * 255
    return np.clip(rgb * luma / max(_luma(rgb), 1.0), 0, 255)


def _backdrop(rng: np.random.Generator, style: str, size: int, object_luma: float) -> np.ndarray:
    # Backgrounds keep a luminance gap to the object so it stays visible, as a photographer would.
    if object_luma > 135:
        lo, hi = rng.uniform(15, 55), rng.uniform(60, 100)
    elif object_luma < 60:
        lo, hi = rng.uniform(150, 190), rng.uniform(195, 240)
    else:
        lo, hi = (rng.uniform(170, 200), rng.uniform(205, 245)) if rng.random() < 0.6 else (
            rng.uniform(5, 20), rng.uniform(20, 40))
    a, b = _muted_colour(rng, lo), _muted_colour(rng, hi)
    yy, xx = np.mgrid[0:size, 0:size] / size
    if style == "sky":
        horizon = rng.uniform(0.55, 0.8) + 0.05 * np.sin(xx * rng.uniform(3, 9) + rng.uniform(0, 6))
        sky = yy / horizon
        ground = _value_noise(rng, size, 5)
        t = np.where(yy < horizon, 0.3 + 0.7 * sky, 0.35 * ground)
    elif style == "clouds":
        t = _value_noise(rng, size, 5)
    elif style == "wood":
        warp = _value_noise(rng, size, 3)
        cx, cy = rng.uniform(-0.5, 1.5, 2)
        rings = np.hypot(xx - cx, (yy - cy) * rng.uniform(0.2, 0.5)) * rng.uniform(18, 40) + 4 * warp
        t = 0.5 + 0.5 * np.sin(rings)
    elif style == "tiles":
        cells = rng.integers(4, 9)
        u, v = (xx * cells) % 1, (yy * cells) % 1
        mortar = (np.minimum(u, 1 - u) < 0.05) | (np.minimum(v, 1 - v) < 0.05)
        checker = ((xx * cells).astype(int) + (yy * cells).astype(int)) % 2
        t = np.where(mortar, 1.0, 0.25 + 0.3 * checker + 0.2 * _value_noise(rng, size, 2))
    elif style == "bokeh":
        t = 0.4 * _value_noise(rng, size, 2)
        for _ in range(rng.integers(6, 14)):
            bx, by, br = rng.random(), rng.random(), rng.uniform(0.04, 0.12)
            t = t + rng.uniform(0.2, 0.5) / (1 + np.exp((np.hypot(xx - bx, yy - by) - br) * 60))
        t = np.clip(t, 0, 1)
    else:  # paper
        grain = rng.normal(0, 1, (size, size))
        t = 0.5 + 0.08 * grain - 0.6 * ((xx - 0.5) ** 2 + (yy - 0.5) ** 2)
        t = np.clip(t, 0, 1)
    return a * (1 - t[..., None]) + b * t[..., None]


def _polygon_coverage(points: np.ndarray, size: int, samples: int = 3) -> np.ndarray:
    """Share of each pixel inside a polygon (even-odd rule), from samples x samples sub-pixels."""
    offsets = (np.arange(samples) + 0.5) / samples
    ys = (np.arange(size)[:, None] + offsets[None, :]).ravel()
    py, px = np.meshgrid(ys, ys, indexing="ij")
    inside = np.zeros(py.shape, dtype=bool)
    x0, y0 = points[:, 0], points[:, 1]
    x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
    for ax, ay, bx, by in zip(x0, y0, x1, y1, strict=True):
        if ay == by:
            continue
        crosses = (ay > py) != (by > py)
        at = ax + (py - ay) * (bx - ax) / (by - ay)
        inside ^= crosses & (px < at)
    return inside.reshape(size, samples, size, samples).mean(axis=(1, 3))


def _sdf_coverage(distance: np.ndarray) -> np.ndarray:
    """Analytic anti-aliasing: a one-pixel linear ramp across the zero level set."""
    return np.clip(0.5 - distance, 0, 1)


def _shape_coverage(rng: np.random.Generator, shape: str, cx: float, cy: float, r: float, size: int) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    # Shapes whose class changes when turned 45 degrees (square <-> diamond, plus <-> x) only tilt.
    upright = shape in ("square", "cross", "diamond")
    tilt = math.radians(rng.uniform(-18, 18)) if upright else rng.uniform(0, 2 * math.pi)
    c, s = math.cos(tilt), math.sin(tilt)
    u, v = (xx - cx) * c + (yy - cy) * s, -(xx - cx) * s + (yy - cy) * c

    def poly(local: list[tuple[float, float]]) -> np.ndarray:
        pts = np.array([(cx + x * c - y * s, cy + x * s + y * c) for x, y in local])
        return _polygon_coverage(pts, size)

    if shape == "circle":
        ax, ay = r * rng.uniform(0.9, 1.1), r * rng.uniform(0.9, 1.1)
        return _sdf_coverage((np.hypot(u / ax, v / ay) - 1) * min(ax, ay))
    if shape == "square":
        half = r * rng.uniform(0.72, 0.9)
        corner = half * rng.uniform(0.0, 0.3)
        qx, qy = np.abs(u) - half + corner, np.abs(v) - half * rng.uniform(0.92, 1.08) + corner
        outside = np.hypot(np.maximum(qx, 0), np.maximum(qy, 0))
        return _sdf_coverage(outside + np.minimum(np.maximum(qx, qy), 0) - corner)
    if shape == "crescent":
        inner_r, shift = r * rng.uniform(0.78, 0.92), r * rng.uniform(0.35, 0.55)
        return _sdf_coverage(np.maximum(np.hypot(u, v) - r, inner_r - np.hypot(u - shift, v)))
    if shape == "triangle":
        apex = rng.uniform(1.0, 1.25)
        return poly([(0, -r * apex), (r * rng.uniform(0.9, 1.05), r * 0.65), (-r * rng.uniform(0.9, 1.05), r * 0.65)])
    if shape == "star":
        points, inner = (5, rng.uniform(0.38, 0.5)) if rng.random() < 0.75 else (6, rng.uniform(0.45, 0.55))
        return poly([
            ((r if k % 2 == 0 else r * inner) * math.cos(math.pi * k / points - math.pi / 2),
             (r if k % 2 == 0 else r * inner) * math.sin(math.pi * k / points - math.pi / 2))
            for k in range(2 * points)
        ])
    if shape == "hexagon":
        return poly([(r * math.cos(math.pi * k / 3), r * math.sin(math.pi * k / 3)) for k in range(6)])
    if shape == "cross":
        w = r * rng.uniform(0.24, 0.38)
        arm_u = np.abs(u) <= w
        arm_v = np.abs(v) <= w
        inside = (arm_u & (np.abs(v) <= r)) | (arm_v & (np.abs(u) <= r))
        distance = np.where(inside, -1.0, 1.0) * np.minimum(
            np.abs(np.minimum(np.maximum(np.abs(u) - w, np.abs(v) - r), 0) + np.maximum(np.abs(u) - w, np.abs(v) - r)),
            np.abs(np.minimum(np.maximum(np.abs(v) - w, np.abs(u) - r), 0) + np.maximum(np.abs(v) - w, np.abs(u) - r)),
        )
        return _sdf_coverage(distance)
    if shape == "diamond":
        width = r * rng.uniform(0.55, 0.8)
        return poly([(0, -r * 1.1), (width, 0), (0, r * 1.1), (-width, 0)])
    raise ValueError(f"unknown shape {shape!r}")


def _shade(rng: np.random.Generator, colour: str) -> np.ndarray:
    """The class colour at another shade: hue nudged, saturation and value scaled."""
    rgb = np.array(COLOURS[colour][0]) / 255
    h, s, v = colorsys.rgb_to_hsv(*rgb)
    if colour in ("white", "black"):
        v = rng.uniform(0.88, 1.0) if colour == "white" else rng.uniform(0.0, 0.12)
        s = rng.uniform(0, 0.06)
    else:
        h, s, v = (h + rng.uniform(-0.025, 0.025)) % 1, s * rng.uniform(0.75, 1.05), min(1, v * rng.uniform(0.8, 1.1))
    return np.array(colorsys.hsv_to_rgb(h, s, v)) * 255


def _encode(rng: np.random.Generator, image: Image.Image) -> Image.Image:
    buf = io.BytesIO()
    if rng.random() < 0.6:
        image.save(buf, format="JPEG", quality=int(rng.integers(25, 92)))
    else:
        if rng.random() < 0.5:
            image = image.quantize(colors=int(rng.integers(48, 160))).convert("RGB")
        image.save(buf, format="PNG")
    buf.seek(0)
    return Image.open(buf).convert("RGB")


def draw_image(rng: np.random.Generator, colour: str, shape: str) -> ImageSample:
    size = int(rng.choice(CANVAS_SIZES))
    style = str(rng.choice(BACKGROUND_STYLES))
    count = int(rng.choice([1, 1, 1, 1, 2, 3]))
    fill = _shade(rng, colour)
    pixels = _backdrop(rng, style, size, _luma(fill))
    r = size * (rng.uniform(0.14, 0.34) if count == 1 else rng.uniform(0.1, 0.16))
    centres: list[tuple[float, float]] = []
    for _ in range(count):
        for _attempt in range(40):
            cx, cy = rng.uniform(r * 1.15, size - r * 1.15, 2)
            if all(math.hypot(cx - x, cy - y) > 2.4 * r for x, y in centres):
                break
        centres.append((cx, cy))
    coverage = np.zeros((size, size))
    for cx, cy in centres:
        coverage = np.maximum(coverage, _shape_coverage(rng, shape, cx, cy, r, size))
    if rng.random() < 0.35:
        # Drop shadow: the coverage, blurred and offset, darkens the background.
        shadow = Image.fromarray((coverage * 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(r * 0.15))
        dx, dy = (int(v) for v in rng.integers(2, max(3, int(r * 0.25)), 2))
        shadow_a = np.roll(np.asarray(shadow, dtype=float) / 255, (dy, dx), axis=(0, 1))
        pixels = pixels * (1 - 0.45 * shadow_a[..., None])
    yy, xx = np.mgrid[0:size, 0:size] / size
    angle = rng.uniform(0, 2 * math.pi)
    lighting = 1 + rng.uniform(0, 0.18) * ((xx - 0.5) * math.cos(angle) + (yy - 0.5) * math.sin(angle))
    paint = np.clip(fill[None, None, :] * lighting[..., None], 0, 255)
    pixels = pixels * (1 - coverage[..., None]) + paint * coverage[..., None]
    occluded = bool(rng.random() < 0.3)
    if occluded:
        # A neutral bar over one edge of one object, hiding at most about a fifth of it.
        cx, cy = centres[0]
        theta = rng.uniform(0, math.pi)
        offset = r * rng.uniform(0.75, 0.95)
        dist = (xx * size - cx) * math.cos(theta) + (yy * size - cy) * math.sin(theta) - offset
        bar = np.clip(0.5 - (np.abs(dist) - r * rng.uniform(0.12, 0.22)), 0, 1)
        grey = rng.uniform(90, 170) * np.array([1.0, rng.uniform(0.9, 1.0), rng.uniform(0.8, 1.0)])
        pixels = pixels * (1 - bar[..., None]) + grey * bar[..., None]
    pixels = pixels + rng.normal(0, rng.uniform(0, 7), (size, size, 1 if rng.random() < 0.5 else 3))
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")
    if rng.random() < 0.5:
        image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.4) * size / 128))
    image = _encode(rng, image)
    labels = {"colour": colour, "shape": shape, "count": count, "background": style, "occluded": occluded,
              "size_px": size}
    return ImageSample(image, f"{colour} {shape}", labels)


def image_samples(per_class: int, seed: int) -> Iterator[ImageSample]:
    """``per_class`` images of every colour x shape class, classes interleaved."""
    rng = np.random.default_rng(seed)
    classes = [(c, s) for c in COLOURS for s in SHAPES]
    for _ in range(per_class):
        for i in rng.permutation(len(classes)):
            yield draw_image(rng, *classes[i])


# --------------------------------------------------------------------------- audio

SAMPLE_RATES = (16000, 22050, 24000, 32000, 44100, 48000)


def _wave(phase: np.ndarray, timbre: str, sr: int, f_max: float, rng: np.random.Generator) -> np.ndarray:
    nyquist = sr / 2 * 0.85
    if timbre == "triangle":
        out = np.zeros_like(phase)
        for k in range(1, int(nyquist // f_max) + 1, 2):
            out += (-1) ** ((k - 1) // 2) * np.sin(k * phase) / (k * k)
        return out
    if timbre == "organ":
        weights = (1.0, 0.5, 0.35, 0.2)
        return sum(w * np.sin((k + 1) * phase) for k, w in enumerate(weights) if (k + 1) * f_max < nyquist)
    # FM with a modulator at the carrier's frequency: harmonic, bright, bell-free.
    index = rng.uniform(0.4, 1.5)
    return np.sin(phase + index * np.sin(phase))


def _osc(freq, n: int, sr: int, timbre: str, rng: np.random.Generator) -> np.ndarray:
    freq = np.broadcast_to(np.asarray(freq, dtype=float), (n,))
    phase = 2 * np.pi * np.cumsum(freq) / sr + rng.uniform(0, 2 * np.pi)
    return _wave(phase, timbre, sr, float(freq.max()), rng)


def _envelope(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    t = np.arange(n) / sr
    kind = rng.choice(["adsr", "swell", "tremolo", "pluck"])
    if kind == "adsr":
        a, d = rng.uniform(0.01, 0.2), rng.uniform(0.05, 0.3)
        sustain, rel = rng.uniform(0.5, 0.9), rng.uniform(0.1, 0.5)
        dur = n / sr
        return np.interp(t, [0, a, a + d, max(a + d, dur - rel), dur], [0, 1, sustain, sustain, 0])
    if kind == "swell":
        return np.clip(np.sin(np.pi * t / t[-1]), 0, 1) ** rng.uniform(0.5, 1.5)
    if kind == "tremolo":
        return 1 - rng.uniform(0.2, 0.5) * (0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(3, 7) * t))
    return np.exp(-t / rng.uniform(1.2, 3.0)) * np.minimum(1, t / 0.005)


def _band_frequency(rng: np.random.Generator, pitch: str) -> float:
    lo, hi = PITCH_BANDS[pitch]
    return float(rng.uniform(lo + 0.05 * (hi - lo), hi - 0.05 * (hi - lo)))


def _filtered_noise(rng: np.random.Generator, n: int, pitch: str, sr: int) -> np.ndarray:
    white = rng.normal(size=n)
    nyquist = sr / 2
    if pitch == "low":
        b, a = signal.butter(4, rng.uniform(250, 450) / nyquist, "lowpass")
        out = signal.lfilter(b, a, white)
        out = signal.lfilter([1.0], [1, -0.97], out)  # an extra leaky integrator: deeper rumble
    elif pitch == "mid":
        b, a = signal.butter(2, [rng.uniform(180, 300) / nyquist, rng.uniform(2000, 3000) / nyquist], "bandpass")
        out = signal.lfilter(b, a, white)
    else:
        b, a = signal.butter(4, rng.uniform(2600, 3600) / nyquist, "highpass")
        out = signal.lfilter(b, a, white)
    gusts = 1 + rng.uniform(0, 0.4) * np.sin(2 * np.pi * rng.uniform(0.2, 1.0) * np.arange(n) / sr)
    return out * gusts


def _reverb(rng: np.random.Generator, wave: np.ndarray, sr: int) -> np.ndarray:
    rt60 = rng.uniform(0.15, 0.7)
    length = int(rt60 * sr)
    ir = rng.normal(size=length) * np.exp(-6.9 * np.arange(length) / length)
    ir[0] = 1.0
    wet = signal.fftconvolve(wave, ir)[: len(wave)]
    mix = rng.uniform(0.1, 0.35)
    return (1 - mix) * wave + mix * wet / (np.abs(wet).max() + 1e-9) * np.abs(wave).max()


def synthesise(rng: np.random.Generator, kind: str, pitch: str) -> AudioSample:
    sr = int(rng.choice(SAMPLE_RATES))
    seconds = float(rng.uniform(1.5, 5.0))
    n = int(seconds * sr)
    t = np.arange(n) / sr
    timbre = str(rng.choice(["triangle", "organ", "fm"]))
    f0 = _band_frequency(rng, pitch)
    if kind == "tone":
        wave = _osc(f0 * (1 + 0.004 * np.sin(2 * np.pi * 5 * t)), n, sr, timbre, rng) * _envelope(rng, n, sr)
    elif kind == "chord":
        ratios = [1.0, 5 / 4 if rng.random() < 0.5 else 6 / 5, 3 / 2] + ([15 / 8] if rng.random() < 0.4 else [])
        wave = np.zeros(n)
        for ratio in ratios:
            onset = int(rng.uniform(0, 0.08) * sr)
            voice = _osc(f0 * ratio * (1 + rng.uniform(-0.002, 0.002)), n, sr, timbre, rng)
            voice[:onset] = 0
            wave += voice
        wave *= _envelope(rng, n, sr)
    elif kind == "sweep":
        lo, hi = PITCH_BANDS[pitch]
        a, b = rng.uniform(lo, lo + 0.2 * (hi - lo)), rng.uniform(hi - 0.2 * (hi - lo), hi)
        if rng.random() < 0.5:
            a, b = b, a
        freq = a + (b - a) * np.clip(t / seconds * rng.uniform(1.0, 1.3), 0, 1)  # linear in Hz
        wave = _osc(freq, n, sr, timbre, rng) * np.minimum(1, np.minimum(t, t[-1] - t) / 0.05)
    elif kind == "beeps":
        period = 1 / rng.uniform(1.5, 9.0)
        duty = rng.uniform(0.25, 0.6)
        starts = np.arange(rng.uniform(0, period), seconds, period) + rng.normal(0, period * 0.05, 1)
        gate = np.zeros(n)
        beep = int(period * duty * sr)
        ramp = np.arange(beep)
        shape = np.exp(-ramp / (beep * rng.uniform(0.3, 2.0))) * np.minimum(1, ramp / (0.004 * sr))
        for start in starts:
            i = int(start * sr)
            if 0 <= i < n:
                gate[i : i + beep] = shape[: n - i]
        wave = _osc(f0, n, sr, timbre, rng) * gate
    elif kind == "noise":
        wave = _filtered_noise(rng, n, pitch, sr) * _envelope(rng, n, sr) ** 0.3
    else:
        raise ValueError(f"unknown audio kind {kind!r}")
    wave = wave / (np.abs(wave).max() + 1e-9)
    if rng.random() < 0.5:
        wave = _reverb(rng, wave, sr)
    snr_db = rng.uniform(18, 40)
    wave = wave + rng.normal(0, np.sqrt(np.mean(wave**2)) * 10 ** (-snr_db / 20), n)
    wave = wave / (np.abs(wave).max() + 1e-9) * 10 ** (rng.uniform(-30, -1) / 20)
    if rng.random() < 0.3:
        wave = np.stack([wave, wave * rng.uniform(0.6, 1.0)], axis=1)
    wave = wave.astype(np.float32)
    container = rng.choice(["raw", "PCM_16", "VORBIS"], p=[0.4, 0.4, 0.2])
    if container != "raw":
        buf = io.BytesIO()
        soundfile.write(buf, wave, sr, format="OGG" if container == "VORBIS" else "WAV", subtype=container)
        buf.seek(0)
        wave, sr = soundfile.read(buf, dtype="float32")
    labels = {"kind": kind, "pitch": pitch, "timbre": timbre, "samplerate": sr, "container": str(container)}
    return AudioSample(wave, sr, f"{pitch} {kind}", labels)


def audio_samples(per_class: int, seed: int) -> Iterator[AudioSample]:
    """``per_class`` clips of every kind x pitch class, classes interleaved."""
    rng = np.random.default_rng(seed)
    classes = [(k, p) for k in AUDIO_KINDS for p in PITCHES]
    for _ in range(per_class):
        for i in rng.permutation(len(classes)):
            yield synthesise(rng, *classes[i])


# --------------------------------------------------------------------------- out-of-domain text

# Queries a person might type into a search box that has nothing to do with the demo world.
HANDWRITTEN_OOD = [
    "a photo of a labrador puppy", "invoice from the plumber, march 2024", "how do I reset my password",
    "cheap flights to lisbon",
    "recipe for banana bread", "weather forecast for tomorrow", "my grandmother's birthday party",
    "quarterly sales report 2023", "a picture of the eiffel tower", "best pizza near me",
    "the history of the roman empire", "wedding photos from last summer", "tax return documents",
    "a cat sleeping on the sofa", "meeting minutes with the design team", "how to change a flat tyre",
    "a photo of my passport", "train timetable from berlin to munich", "vacation in the mountains",
    "a portrait of a young woman", "the minutes of the board meeting", "stock price of apple",
    "an image of a car parked outside", "children playing football in the park", "a screenshot of an error",
    "receipt for the new laptop", "lecture on quantum mechanics", "a bowl of fresh fruit salad",
    "pictures of the new apartment", "email from the landlord about rent", "a drawing of a pony",
    "how long to boil an egg", "the lord of the rings", "a recording of the team standup",
    "insurance claim for the broken window", "sunset over the ocean", "a plate of spaghetti",
    "my daughter's school report", "what time does the pharmacy close", "directions to the airport",
    "a crowded street market in marrakech", "holiday card for the neighbours", "grocery list for the week",
    "the annual budget spreadsheet", "a bicycle leaning against a wall", "a photo of a birthday cake",
    "summary of the doctor's appointment", "translate hello into japanese", "the opening hours of the museum",
    "a selfie at the beach", "employee handbook", "a mountain lake in autumn", "contract renewal terms",
    "the password is hunter2", "scan of the signed lease", "a newspaper article about elections",
    "funny videos of goats", "the wifi password for the office", "a letter to my future self",
    "slides for the marketing presentation", "a photograph of an old church", "list of books to read",
    "a photo of a sandwich", "the cat is hungry again", "invoice number 4471", "my flight was delayed",
    "a picture of a bridge at dusk", "where did I park the car", "a family dinner at christmas",
    "tickets for the concert on friday", "a kitten playing with yarn", "how to write a cover letter",
    "a photo of a mountain bike", "lecture slides on machine learning", "the river flooded the village",
    "a dog catching a frisbee", "project deadline next monday", "a scanned receipt from the pharmacy",
]

_OOD_SUBJECTS = ["my accountant", "the new intern", "our landlord", "the football coach", "a famous chef",
                 "the city council", "my uncle", "the delivery driver", "the museum curator", "a local farmer",
                 "the school principal", "our dentist", "the lawyer", "a travelling salesman", "the librarian"]
_OOD_VERBS = ["postponed", "approved", "forgot", "signed", "cancelled", "reviewed", "photographed", "printed",
              "booked", "rewrote", "delivered", "misplaced", "translated", "archived", "renewed"]
_OOD_OBJECTS = ["the mortgage paperwork", "the conference agenda", "a hotel reservation", "the quarterly budget",
                "the wedding invitations", "a parking permit", "the dinner menu", "a lease agreement",
                "the holiday itinerary", "a job application", "the patient records", "the vaccination card",
                "a library card", "the shipping manifest", "the pension statement"]
_OOD_WHEN = ["on tuesday morning", "before the holidays", "last autumn", "after lunch", "in february",
             "during the storm", "at the end of the fiscal year", "yesterday evening", "next weekend",
             "around midnight"]
_OOD_TOPICS = ["gardening tips", "the french revolution", "mortgage rates", "marathon training", "sourdough starters",
               "volcanoes in iceland", "the stock market", "wedding planning", "vintage furniture", "tax deductions",
               "chess openings", "beekeeping", "electric cars", "ancient egypt", "knitting patterns"]
_OOD_PLACES = ["in tokyo", "near the harbour", "in the suburbs", "at the train station", "in a mountain village",
               "by the river", "in the old town", "at the airport", "on the university campus", "in the desert"]
_OOD_TEMPLATES = [
    "{subject} {verb} {object} {when}",
    "{subject} {verb} {object}",
    "an article about {topic}",
    "everything you need to know about {topic}",
    "{topic} {place}",
    "a photo of {subject} {place}",
    "a picture of {object}",
    "did {subject} read {object}?",
    "where can I find {object}",
    "a blog post on {topic} written {when}",
    "{object} from {subject}",
    "a short documentary on {topic}",
]


def ood_sentences(n: int = 300, seed: int = 0) -> list[str]:
    """Held-out out-of-domain sentences: the handwritten queries, then ones from this module's templates.

    Neither the templates nor the word lists are those of ``encoders.demo.synth.ood_sentence``.
    """
    rng = np.random.default_rng(seed + 555)
    out = list(dict.fromkeys(HANDWRITTEN_OOD))
    seen = set(out)
    while len(out) < n:
        template = _OOD_TEMPLATES[rng.integers(len(_OOD_TEMPLATES))]
        sentence = template.format(
            subject=_OOD_SUBJECTS[rng.integers(len(_OOD_SUBJECTS))],
            verb=_OOD_VERBS[rng.integers(len(_OOD_VERBS))],
            object=_OOD_OBJECTS[rng.integers(len(_OOD_OBJECTS))],
            when=_OOD_WHEN[rng.integers(len(_OOD_WHEN))],
            topic=_OOD_TOPICS[rng.integers(len(_OOD_TOPICS))],
            place=_OOD_PLACES[rng.integers(len(_OOD_PLACES))],
        )
        if sentence not in seen:
            seen.add(sentence)
            out.append(sentence)
    return out[:n]
