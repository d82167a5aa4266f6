"""Generated media with words inside (issue 27), for bench_extraction.py and the product's tests.

Signs painted on photo-like pictures (smooth colour blobs, strokes, sensor noise, a slight turn), a scanned page
(an image-only PDF: one picture per page, no text layer), spoken memos made now by espeak-ng (its "f2" US voice,
which PocketSphinx reads well), and sounds without speech (a tone, a chord). Deterministic for a seed.
"""

import io
import shutil
import subprocess
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

FONT_DIRS = [Path("/usr/share/fonts/truetype/dejavu"), Path("/usr/share/fonts/truetype/liberation")]
FONTS = ["DejaVuSans-Bold.ttf", "LiberationSans-Bold.ttf", "LiberationSerif-Regular.ttf", "DejaVuSans.ttf"]
VOICE = "en-us+f2"

# (what is painted on the sign, a word of it someone would search for)
SIGNS = [
    (["PLATFORM FOUR", "TRAINS TO BOSTON"], "boston"),
    (["FRESH BREAD", "OPEN DAILY"], "bread"),
    (["TOTAL DUE", "THANK YOU"], "total due"),
    (["NO PARKING", "TOW AWAY ZONE"], "parking"),
    (["HARBOUR MUSEUM", "ENTRANCE"], "museum"),
    (["GARDEN CAFE", "COFFEE AND CAKE"], "coffee"),
    (["EMERGENCY EXIT", "KEEP CLEAR"], "emergency"),
    (["MOUNTAIN TRAIL", "SUMMIT 3 KM"], "mountain trail"),
]
# (what is said, a word of it someone would search for)
MEMOS = [
    ("Remember that the spare key is under the blue flower pot.", "key"),
    ("The train to Boston leaves from platform four at nine.", "boston"),
    ("Please call the dentist tomorrow morning about the appointment.", "dentist"),
    ("Buy milk, bread and coffee on the way home.", "coffee"),
    ("The meeting with the lawyer moved to Thursday afternoon.", "lawyer"),
    ("Water the garden before the weekend.", "garden"),
]
# The lines of a scanned letter, and a word of it.
LETTER = (["Dear Margaret,", "Thank you for the invoice of March.", "The payment was sent to your bank",
           "on the fourteenth. With kind regards,", "Thomas Whitfield"], "invoice")


def font(size: int, index: int = 0) -> ImageFont.FreeTypeFont:
    for name in FONTS[index:] + FONTS[:index]:
        for folder in FONT_DIRS:
            if (folder / name).is_file():
                return ImageFont.truetype(str(folder / name), size)
    return ImageFont.load_default(size)


def photo_background(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    blobs = rng.normal(128, 55, (height // 24 + 2, width // 24 + 2, 3)).clip(0, 255).astype(np.uint8)
    image = Image.fromarray(blobs).resize((width, height), Image.BICUBIC)
    draw = ImageDraw.Draw(image)
    for _ in range(6):
        x, y = rng.integers(0, width), rng.integers(0, height)
        draw.line((x, y, x + rng.integers(-200, 200), y + rng.integers(-200, 200)),
                  fill=tuple(int(v) for v in rng.integers(0, 255, 3)), width=int(rng.integers(2, 9)))
    image = image.filter(ImageFilter.GaussianBlur(1.5))
    noisy = np.asarray(image, dtype=np.float32) + rng.normal(0, 10, (height, width, 3))
    return Image.fromarray(noisy.clip(0, 255).astype(np.uint8))


def sign_picture(phrases: list[str], *, seed: int = 0, size=(800, 520), angle: float = 4.0) -> bytes:
    """A JPEG: the phrases painted on plates over a photo-like picture, turned by `angle` degrees."""
    rng = np.random.default_rng(seed)
    image = photo_background(rng, *size)
    draw = ImageDraw.Draw(image)
    face = font(44, seed % 3)
    y = size[1] // 5
    for phrase in phrases:
        left, top, right, bottom = draw.textbbox((70, y), phrase, font=face)
        draw.rectangle((left - 12, top - 12, right + 12, bottom + 12), fill=(238, 232, 210))
        draw.text((70, y), phrase, font=face, fill=(25, 25, 70))
        y += size[1] // 3
    image = image.rotate(angle, resample=Image.BICUBIC, fillcolor=(96, 96, 96))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90)
    return out.getvalue()


def page_picture(lines: list[str], *, seed: int = 0) -> Image.Image:
    """A page of typed lines as a scanner sees it (~150 dpi A4, a little grey and noise)."""
    rng = np.random.default_rng(seed)
    page = Image.new("L", (1240, 1754), 250)
    draw = ImageDraw.Draw(page)
    face = font(34, 3)
    for row, line in enumerate(lines):
        draw.text((140, 200 + row * 70), line, font=face, fill=30)
    noisy = np.asarray(page, dtype=np.float32) + rng.normal(0, 6, (page.height, page.width))
    return Image.fromarray(noisy.clip(0, 255).astype(np.uint8)).convert("RGB")


def scanned_pdf(pages: list[list[str]], *, seed: int = 0) -> bytes:
    """An image-only PDF: each page one picture of typed lines, and no text layer."""
    from fpdf import FPDF

    pdf = FPDF(format="A4")
    for number, lines in enumerate(pages):
        pdf.add_page()
        pdf.image(page_picture(lines, seed=seed + number), x=0, y=0, w=210, h=297)
    return bytes(pdf.output())


def espeak_available() -> bool:
    return shutil.which("espeak-ng") is not None


def spoken_wav(text: str, *, voice: str = VOICE, speed: int = 140, lead_seconds: float = 0.0) -> bytes:
    """A WAV of `text` said by espeak-ng now (22050 Hz), after `lead_seconds` of room noise."""
    wav = subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "--stdout", text],
                         capture_output=True, check=True, timeout=60).stdout
    if not lead_seconds:
        return wav
    import soundfile

    waveform, rate = soundfile.read(io.BytesIO(wav), dtype="float32")
    lead = np.random.default_rng(0).normal(0, 0.003, int(lead_seconds * rate)).astype(np.float32)
    return wav_bytes(np.concatenate([lead, waveform]), rate)


def tone_wav(seconds: float = 4.0, *, rate: int = 16000, chord: bool = False) -> bytes:
    """A steady tone (or a three-note chord): a sound with no speech in it."""
    t = np.arange(int(seconds * rate)) / rate
    notes = (440.0, 554.37, 659.25) if chord else (440.0,)
    waveform = sum(np.sin(2 * np.pi * f * t) for f in notes) * (0.3 / len(notes))
    return wav_bytes(waveform.astype(np.float32), rate)


def wav_bytes(waveform: np.ndarray, rate: int) -> bytes:
    import soundfile

    out = io.BytesIO()
    soundfile.write(out, waveform, rate, format="WAV", subtype="PCM_16")
    return out.getvalue()
