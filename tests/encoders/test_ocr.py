"""OCR through the real RapidOCR models (they ship in the wheel): words rendered in real fonts on photo-like
pictures are read back, with boxes where the words are; blank pictures read nothing; nothing goes online."""

import os
import shutil
import socket
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter, ImageFont

pytest.importorskip("rapidocr")
pytest.importorskip("onnxruntime")

from encoders import ocr  # noqa: E402
from encoders.ocr import OcrLine, lines_text, ocr_image, ocr_page, reading_order  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
FONT_DIRS = [Path("/usr/share/fonts/truetype/dejavu"), Path("/usr/share/fonts/truetype/liberation")]
FONTS = {
    "dejavu-sans-bold": "DejaVuSans-Bold.ttf",
    "liberation-serif": "LiberationSerif-Regular.ttf",
    "liberation-sans-bold": "LiberationSans-Bold.ttf",
}


def font_path(name: str) -> Path:
    for folder in FONT_DIRS:
        if (folder / FONTS[name]).is_file():
            return folder / FONTS[name]
    pytest.skip(f"font {FONTS[name]} is not installed (apt-get install fonts-dejavu-core fonts-liberation)")


@pytest.fixture(scope="module", autouse=True)
def engine():
    """Load the three models once for the module."""
    ocr.warmup()


def photo_background(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    """Smooth colour blobs, a blurred edge or two and sensor noise: a busy photo, not a flat page."""
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


def render_sign(phrases: list[str], font: str, *, size=(800, 520), angle=5.0, seed=0) -> tuple[Image.Image, list]:
    """Phrases painted on plates over a photo-like picture, then the whole picture turned by ``angle`` degrees.

    Returns the picture and each phrase's plate (before rotation, so only roughly where it ends up).
    """
    rng = np.random.default_rng(seed)
    image = photo_background(rng, *size)
    draw = ImageDraw.Draw(image)
    plates = []
    y = size[1] // 5
    for phrase in phrases:
        face = ImageFont.truetype(str(font_path(font)), 44)
        left, top, right, bottom = draw.textbbox((70, y), phrase, font=face)
        plate = (left - 12, top - 12, right + 12, bottom + 12)
        draw.rectangle(plate, fill=(238, 232, 210))
        draw.text((70, y), phrase, font=face, fill=(25, 25, 70))
        plates.append(plate)
        y += size[1] // 3
    image = image.rotate(angle, resample=Image.BICUBIC, fillcolor=(96, 96, 96))
    return image, plates


def words(text: str) -> list[str]:
    return "".join(c if c.isalnum() else " " for c in text.lower()).split()


@pytest.mark.parametrize("font", ["dejavu-sans-bold", "liberation-serif"])
def test_words_on_a_tilted_photo_are_read_in_order(font):
    phrases = ["Spare key under mat", "Harbour Street 42"]
    image, _ = render_sign(phrases, font, angle=5.0, seed=len(font))
    lines = ocr_image(image)
    read = words(lines_text(lines))
    for phrase in phrases:
        for word in words(phrase):
            assert word in read, f"{word!r} not read from {lines_text(lines)!r}"
    # Reading order: the upper phrase comes first.
    assert read.index("spare") < read.index("harbour")
    for line in lines:
        assert isinstance(line, OcrLine) and len(line.box) == 4
        assert ocr.MIN_CONFIDENCE <= line.confidence <= 1.0
        left, top, right, bottom = line.bounds
        assert 0 <= left < right <= image.width and 0 <= top < bottom <= image.height


def test_boxes_are_in_pixels_of_the_image_as_given():
    # Unrotated, so the plate's rectangle is exactly where the words are; a large picture, which the
    # detector sees scaled down to DETECTION_SIDE, must still give boxes in its own pixels.
    image, plates = render_sign(["Platform Four"], "liberation-sans-bold", size=(1800, 1200), angle=0.0, seed=3)
    [line] = [line for line in ocr_image(image) if "platform" in words(line.text)]
    left, top, right, bottom = line.bounds
    p_left, p_top, p_right, p_bottom = plates[0]
    # The detector pads its boxes a little (unclip), so compare centres and sizes, not edges.
    assert p_left < (left + right) / 2 < p_right and p_top < (top + bottom) / 2 < p_bottom
    assert 0.8 < (right - left) / (p_right - p_left) < 1.25
    assert 0.5 < (bottom - top) / (p_bottom - p_top) < 1.5


@pytest.mark.parametrize("kind", ["white", "grey", "photo"])
def test_pictures_without_text_have_no_lines(kind):
    if kind == "photo":
        image = photo_background(np.random.default_rng(7), 640, 480).filter(ImageFilter.GaussianBlur(3))
    else:
        image = Image.new("RGB", (640, 480), "white" if kind == "white" else (128, 128, 128))
    assert ocr_image(image) == []


def test_confidence_threshold_drops_lines():
    image, _ = render_sign(["Exit only"], "dejavu-sans-bold", angle=0.0, seed=5)
    assert words(lines_text(ocr_image(image))) == ["exit", "only"]
    assert ocr_image(image, min_confidence=1.01) == []


def test_a_rendered_page_is_read_with_transparency_flattened():
    text = ("The quarterly report is due on Friday. Please send the signed invoice to the accounts office "
            "before noon, and keep a copy of the receipt for your records.")
    page = Image.new("RGBA", (1240, 700), (0, 0, 0, 0))  # a transparent page: black on black if not flattened
    draw = ImageDraw.Draw(page)
    face = ImageFont.truetype(str(font_path("liberation-serif")), 26)
    for row, part in enumerate(textwrap.wrap(text, 70)):
        draw.text((120, 120 + 40 * row), part, font=face, fill=(0, 0, 0, 255))
    lines = ocr_page(page)
    read = words(lines_text(lines))
    expected = words(text)
    assert sum(word in read for word in expected) >= 0.9 * len(expected), lines_text(lines)
    assert [line.bounds[1] for line in lines] == sorted(line.bounds[1] for line in lines)


def test_reading_order_groups_rows_by_overlap_not_by_pixels():
    def line(text, left, top, height=20, width=100):
        corners = ((left, top), (left + width, top), (left + width, top + height), (left, top + height))
        return OcrLine(text=text, box=corners, confidence=0.9)

    # Row one is tilted (the right word sits 8 px lower); row two is below both.
    shuffled = [line("c", 10, 60), line("b", 200, 18), line("a", 10, 10), line("d", 200, 61)]
    assert [x.text for x in reading_order(shuffled)] == ["a", "b", "c", "d"]


def test_the_engine_is_loaded_once_when_threads_race_for_it(monkeypatch):
    monkeypatch.setattr(ocr._Engine, "_instance", None)
    with ThreadPoolExecutor(4) as pool:
        engines = list(pool.map(lambda _: ocr._Engine.get(), range(4)))
    assert all(engine is engines[0] for engine in engines)


def test_refuses_what_is_not_an_image():
    with pytest.raises(TypeError):
        ocr_image(np.zeros((10, 10, 3), dtype=np.uint8))


# ------------------------------------------------------------------------------------------- privacy


def test_loading_and_reading_open_no_connection_and_telemetry_is_off(monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError(f"OCR tried to reach the network: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", forbidden)
    monkeypatch.setattr(socket.socket, "connect_ex", forbidden)
    monkeypatch.setattr(socket, "create_connection", forbidden)
    monkeypatch.setattr(socket, "getaddrinfo", forbidden)
    monkeypatch.setattr(ocr._Engine, "_instance", None)  # load again, inside the guard
    image, _ = render_sign(["No parking"], "dejavu-sans-bold", seed=11)
    assert "parking" in words(lines_text(ocr_image(image)))
    assert "onnxruntime" in sys.modules
    assert os.environ.get("ORT_DISABLE_TELEMETRY") == "1"


CHILD = """
import sys
from PIL import Image, ImageDraw
from encoders import ocr
image = Image.new("RGB", (320, 90), "white")
ImageDraw.Draw(image).text((10, 20), "Fresh bread", fill="black", font_size=40)
print(ocr.lines_text(ocr.ocr_image(image)))
import os
assert "onnxruntime" in sys.modules and os.environ["ORT_DISABLE_TELEMETRY"] == "1"
"""


def child_env(home: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "ORT_DISABLE_TELEMETRY"}  # the module must set it
    env.update(HOME=str(home), XDG_CACHE_HOME=str(home / ".cache"), PYTHONPATH=str(REPO))
    return env


def test_a_fresh_process_writes_no_telemetry_id(tmp_path):
    """onnxruntime with telemetry on writes ~/.cache/Microsoft/DeveloperTools/.onnxruntime/deviceid as its
    first session starts; importing encoders.ocr must have turned it off before that."""
    done = subprocess.run([sys.executable, "-c", CHILD], env=child_env(tmp_path), cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "bread" in done.stdout.lower()
    assert not (tmp_path / ".cache" / "Microsoft").exists()


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed (apt-get install strace)")
def test_no_socket_is_opened_by_any_thread_for_a_while(tmp_path):
    """Native code too: with telemetry on, onnxruntime looks up its events host about ten seconds after
    the first session starts, from a thread of its own. Trace every thread of a child for 20 s."""
    code = CHILD + "\nimport time\ntime.sleep(15)\n"
    trace = tmp_path / "trace.txt"
    done = subprocess.run(["strace", "-f", "-qq", "-e", "trace=connect,sendto,sendmsg", "-o", str(trace),
                           sys.executable, "-c", code], env=child_env(tmp_path), cwd=REPO,
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    outbound = [row for row in trace.read_text().splitlines() if "AF_INET" in row]
    assert outbound == []
