"""Collections and queries for the relevance cutoff's tests (issue 26), made when the tests run.

Nothing here is a fixture file: pictures and sounds come from `encoders.demo.synth_eval` (the evaluation-only
generator, other drawing and synthesis code than the one the model was trained on) at seeds of these tests' own,
the unrelated ones from files this machine has (Debian's documentation images, its fonts, espeak-ng's speech),
and the queries from the demo world's vocabulary (`encoders.demo.synth`) and `synth_eval.ood_sentences`.
"""

from __future__ import annotations

import glob
import io
import shutil
import subprocess

import numpy as np
import pytest
import soundfile
from PIL import Image, ImageDraw, ImageFont

from encoders.demo import synth, synth_eval


def png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.convert("RGB").save(out, format="PNG")
    return out.getvalue()


def wav(waveform: np.ndarray, samplerate: int) -> bytes:
    out = io.BytesIO()
    soundfile.write(out, waveform, samplerate, format="WAV", subtype="PCM_16")
    return out.getvalue()


def image_kinds(n: int, seed: int) -> list[tuple[str, str]]:
    classes = [(colour, shape) for colour in synth.COLOURS for shape in synth.SHAPES]
    return [classes[i] for i in np.random.default_rng(seed).choice(len(classes), n, replace=False)]


def sound_kinds(n: int, seed: int) -> list[tuple[str, str]]:
    classes = [(kind, pitch) for kind in synth.AUDIO_KINDS for pitch in synth.PITCHES]
    return [classes[i] for i in np.random.default_rng(seed).choice(len(classes), n, replace=False)]


def pictures(kinds, per_kind: int, seed: int) -> list[tuple[str, bytes]]:
    """(key "colour shape", PNG bytes) drawn by the independent generator."""
    rng = np.random.default_rng(seed)
    return [(f"{c} {s}", png(synth_eval.draw_image(rng, c, s).image)) for c, s in kinds for _ in range(per_kind)]


def sounds(kinds, per_kind: int, seed: int) -> list[tuple[str, bytes]]:
    """(key "pitch kind", WAV bytes) synthesised by the independent generator."""
    rng = np.random.default_rng(seed)
    out = []
    for kind, pitch in kinds:
        for _ in range(per_kind):
            sample = synth_eval.synthesise(rng, kind, pitch)
            out.append((f"{pitch} {kind}", wav(sample.waveform, sample.samplerate)))
    return out


def describe_picture(rng, colour: str, shape: str) -> str:
    return synth.image_query(rng, colour, shape)


def describe_sound(rng, kind: str, pitch: str) -> str:
    return synth.audio_query(rng, kind, pitch)


def unrelated_pictures(n: int) -> list[tuple[str, bytes]]:
    """Pictures of things the demo model never saw: the diagrams, screenshots and photos in /usr/share/doc (of at
    least 64 px a side: smaller ones there are arrow and plus-sign icons, which are coloured shapes), each
    content once."""
    out, seen = [], set()
    for path in sorted(glob.glob("/usr/share/doc/**/*.png", recursive=True)
                       + glob.glob("/usr/share/doc/**/*.jpg", recursive=True)):
        try:
            with Image.open(path) as image:
                if min(image.size) >= 64:
                    data = png(image)
                    if data not in seen:
                        seen.add(data)
                        out.append((path, data))
        except OSError:
            continue
    if len(out) < n:
        pytest.skip(f"this machine has {len(out)} pictures of 64 px or more in /usr/share/doc; {n} wanted")
    step = max(1, len(out) // n)
    return out[::step][:n]


def text_pages(n: int) -> list[tuple[str, bytes]]:
    """Pages of text drawn with this machine's fonts."""
    out = []
    fonts = sorted(glob.glob("/usr/share/fonts/truetype/**/*.ttf", recursive=True))
    lines = ["Quarterly report", "Meeting notes, Tuesday", "def main(argv):", "Invoice no. 4471",
             "Chapter 3: The river", "Shopping list", "Error 404: not found", "Dear Sir or Madam,"]
    for number, line in enumerate(lines):
        if not fonts:
            break
        page = Image.new("RGB", (320, 200), "white")
        draw = ImageDraw.Draw(page)
        font = ImageFont.truetype(fonts[number % len(fonts)], 22)
        for row in range(5):
            draw.text((12, 12 + 36 * row), line if row == 0 else f"{line} ({row})", fill="black", font=font)
        out.append((f"text page {number}", png(page)))
    if len(out) < n:
        pytest.skip("this machine has no TrueType fonts to draw pages of text with")
    return out[:n]


SENTENCES = ["The train to Boston leaves at nine", "Please call me back tomorrow morning", "One two three four five",
             "The weather is nice today", "I would like a cup of coffee", "Where is the nearest station",
             "Good morning everyone", "This is a recording of my voice", "The meeting starts at ten",
             "Thank you very much for coming"]


def speech(n: int) -> list[tuple[str, bytes]]:
    """Sentences spoken now by espeak-ng, in several voices."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng); it speaks the unrelated sounds")
    voices = ["en", "en-us", "en+f2", "de", "fr"]
    out = []
    for i, sentence in enumerate(SENTENCES[:n]):
        data = subprocess.run(["espeak-ng", "-v", voices[i % len(voices)], "--stdout", sentence],
                              capture_output=True, check=True, timeout=60).stdout
        out.append((sentence, data))
    return out


def out_of_domain(n: int, seed: int) -> list[str]:
    return synth_eval.ood_sentences(300, seed=seed)[-n:]
