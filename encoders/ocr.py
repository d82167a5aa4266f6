"""Text in pictures and scanned pages: OCR with RapidOCR on ONNX Runtime.

The PP-OCR detection, orientation and recognition models ship inside the ``rapidocr`` wheel; they are
loaded from there by path, so a missing file is an error here rather than a download. Images are
handed over as arrays (never as paths or URLs, which RapidOCR would open or fetch itself).

Detection runs on the picture scaled so that its longer side is at most ``DETECTION_SIDE`` pixels
(RapidOCR's default scales the *shorter* side up to 736, which issue 27 measured as several times slower
for the same words read); boxes come back in the coordinates of the image as given. A picture smaller than that
is read at its own size, never scaled up.

The three ONNX Runtime sessions are ours, not RapidOCR's (`_session`): their worker threads sleep between calls
instead of spinning. ONNX Runtime's default spin-wait kept both cores of a 2-core machine busy after every call,
which cost a picture ~1.8x its CPU time (detection 0.30 s -> 0.17 s of CPU, recognition 0.12 -> 0.075 s for
an 800x520 sign, issue 27) and slowed whatever ran beside it (the text encoder, the database).
"""

from __future__ import annotations

import os

# ONNX Runtime's telemetry writes a device id under ~/.cache/Microsoft/ and looks up a Microsoft events
# host some seconds after a session starts; only this variable stops both, and only if it is set before
# onnxruntime is first imported in the process (every worker process that imports this module).
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

import threading  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from encoders.base import EncoderError, ImageDecodeError, WeightsNotFound  # noqa: E402

# Longer side of the picture the text detector sees: the recall of RapidOCR's larger default in a
# fraction of its time (issue 27).
DETECTION_SIDE = 960
# A page (an image-only PDF page rendered at ~150 dpi, a scan) is larger and its letters smaller: at 960
# its body text shrinks to ~12 px and a few words in a hundred are lost; at 1600 none were, for ~1.6x time.
PAGE_DETECTION_SIDE = 1600
# Recognition confidence below which a line is dropped: on textured pictures without text, the few
# "lines" found were single characters read at 0.27-0.41; rendered words on busy backgrounds read at 0.9+.
MIN_CONFIDENCE = 0.6
# Rows: two boxes whose vertical extents overlap by this fraction of the shorter one are one row.
_ROW_OVERLAP = 0.5


@dataclass(frozen=True)
class OcrLine:
    """One line of text found in an image.

    ``box`` is its four corners (top-left, top-right, bottom-right, bottom-left of the text as read)
    in pixels of the image as given; a rotated line has a rotated box.
    """

    text: str
    box: tuple[tuple[float, float], ...]
    confidence: float

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """The axis-aligned box around ``box``: left, top, right, bottom."""
        xs = [x for x, _ in self.box]
        ys = [y for _, y in self.box]
        return min(xs), min(ys), max(xs), max(ys)


class OcrError(EncoderError):
    """The OCR engine failed on an image."""


def ocr_image(image: Image.Image, *, min_confidence: float = MIN_CONFIDENCE) -> list[OcrLine]:
    """The lines of text in a picture (a photo, a screenshot, a sign), in reading order.

    Lines read with less than ``min_confidence`` are dropped; a picture without text gives ``[]``.
    The caller orients the image (EXIF) and bounds its size before calling.
    """
    return _read(image, min_confidence, DETECTION_SIDE)


def ocr_page(image: Image.Image, *, min_confidence: float = MIN_CONFIDENCE) -> list[OcrLine]:
    """The lines of a rendered document page (an image-only PDF page, a scan), in reading order.

    The caller rasterises the page (about 150 dpi reads body text well). Transparency is flattened onto
    white, as paper is; boxes are in pixels of the page image.
    """
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        paper = Image.new("RGB", image.size, "white")
        paper.paste(image.convert("RGBA"), mask=image.convert("RGBA").getchannel("A"))
        image = paper
    return _read(image, min_confidence, PAGE_DETECTION_SIDE)


def _read(image: Image.Image, min_confidence: float, detection_side: int) -> list[OcrLine]:
    pixels = _bgr(image)
    return _lines(_Engine.get().run(pixels, detection_side), min_confidence, image.size)


def lines_text(lines: Sequence[OcrLine]) -> str:
    """The text of ``lines``, one line of text per OCR line."""
    return "\n".join(line.text for line in lines)


def warmup() -> None:
    """Load the three models now (and check they are on disk), not inside the first request."""
    _Engine.get()


# ---------------------------------------------------------------------------------------------- engine


class _Engine:
    """One RapidOCR engine per process, loaded on first use.

    Calls are serialised: RapidOCR keeps per-call state on the engine, and ONNX Runtime already spreads
    one call over every core, so running two at once would not be faster.
    """

    _instance: _Engine | None = None
    _loading = threading.Lock()

    def __init__(self):
        from rapidocr import RapidOCR

        self._ocr = RapidOCR(
            params={
                "Global.log_level": "error",
                # Filtering is ours (min_confidence); RapidOCR's own cut would hide lines from every caller.
                "Global.text_score": 0.0,
                "Det.limit_type": "max",
                "Det.limit_side_len": DETECTION_SIDE,
            }
        )
        _pin_bundled_models(self._ocr.cfg)
        # RapidOCR takes a ready session per stage (its `session` key); its config holds only plain values.
        self._ocr.cfg._set_flag("allow_objects", True)
        for section in (self._ocr.cfg.Det, self._ocr.cfg.Cls, self._ocr.cfg.Rec):
            section.session = _session(section.model_path)
        self._lock = threading.Lock()
        # Detection finds nothing on a blank image, so the orientation and recognition models would
        # load lazily inside a real request; a short rendered word loads all three now.
        self.run(_bgr(_warmup_image()))

    @classmethod
    def get(cls) -> _Engine:
        if cls._instance is None:
            with cls._loading:
                if cls._instance is None:
                    cls._instance = cls()
        return cls._instance

    def run(self, pixels: np.ndarray, detection_side: int = DETECTION_SIDE):
        with self._lock:
            # The detector reads its size limit on every call (RapidOCR 3.x: TextDetector.limit_side_len);
            # it exists once the first call (the warm-up, at DETECTION_SIDE from the config) has loaded it.
            if self._ocr.text_det is not None:
                self._ocr.text_det.limit_side_len = detection_side
            try:
                return self._ocr(pixels)
            except Exception as exc:  # RapidOCR raises bare Exceptions of many kinds
                raise OcrError(f"OCR failed ({type(exc).__name__}: {exc})") from exc


def _pin_bundled_models(cfg) -> None:
    """Point each stage at its model file inside the rapidocr package.

    With no ``model_path`` RapidOCR resolves a download URL and fetches the file when it is missing or
    its checksum differs; a path makes a missing file an error instead.
    """
    from rapidocr.inference_engine.base import FileInfo, InferSession

    root = Path(cfg.Global.model_root_dir)
    for section in (cfg.Det, cfg.Cls, cfg.Rec):
        info = InferSession.get_model_url(
            FileInfo(
                engine_type=section.engine_type,
                ocr_version=section.ocr_version,
                task_type=section.task_type,
                lang_type=section.lang_type,
                model_type=section.model_type,
            )
        )
        path = root / Path(info["model_dir"]).name
        if not path.is_file():
            raise WeightsNotFound(
                f"OCR model {path.name} is not in {root}; reinstall the pinned rapidocr wheel, which ships it"
            )
        section.model_path = str(path)


def _session(path: str):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 4
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    options.inter_op_num_threads = 1
    # Threads wait on a condition between operators and calls instead of spinning (see the module's docstring).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def _warmup_image() -> Image.Image:
    from PIL import ImageDraw

    image = Image.new("RGB", (160, 48), "white")
    ImageDraw.Draw(image).text((10, 12), "warm up", fill="black", font_size=24)
    return image


# ------------------------------------------------------------------------------------------- results


def _bgr(image: Image.Image) -> np.ndarray:
    """Contiguous uint8 BGR pixels, the layout RapidOCR's models were trained on."""
    if not isinstance(image, Image.Image):
        raise TypeError(f"expected a PIL image, got {type(image).__name__}")
    if image.width < 1 or image.height < 1:
        raise ImageDecodeError(f"image has no pixels ({image.width}x{image.height})")
    if image.mode != "RGB":
        image = image.convert("RGB")
    return np.ascontiguousarray(np.asarray(image)[:, :, ::-1])


def _lines(result, min_confidence: float, size: tuple[int, int]) -> list[OcrLine]:
    if result.boxes is None or result.txts is None:
        return []
    width, height = size
    lines = []
    for box, text, score in zip(result.boxes, result.txts, result.scores, strict=True):
        text = " ".join(str(text).split())
        # Punctuation alone ("|", "-", "..") is what edges and stripes read as.
        if float(score) < min_confidence or not any(c.isalnum() for c in text):
            continue
        corners = tuple(
            (float(np.clip(x, 0, width)), float(np.clip(y, 0, height))) for x, y in np.asarray(box, dtype=float)
        )
        lines.append(OcrLine(text=text, box=corners, confidence=round(float(score), 4)))
    return reading_order(lines)


def reading_order(lines: Sequence[OcrLine]) -> list[OcrLine]:
    """Top to bottom, and left to right within a row.

    A row is lines whose vertical extents overlap by at least half the shorter one, so a slightly
    tilted photo still reads row by row (a fixed pixel tolerance breaks with the text's size).
    """
    rows: list[list[OcrLine]] = []
    for line in sorted(lines, key=lambda line: (line.bounds[1] + line.bounds[3]) / 2):
        _, top, _, bottom = line.bounds
        if rows:
            _, row_top, _, row_bottom = _row_bounds(rows[-1])
            overlap = min(bottom, row_bottom) - max(top, row_top)
            if overlap >= _ROW_OVERLAP * min(bottom - top, row_bottom - row_top):
                rows[-1].append(line)
                continue
        rows.append([line])
    return [line for row in rows for line in sorted(row, key=lambda line: line.bounds[0])]


def _row_bounds(row: list[OcrLine]) -> tuple[float, float, float, float]:
    tops = [line.bounds[1] for line in row]
    bottoms = [line.bounds[3] for line in row]
    return 0.0, float(np.median(tops)), 0.0, float(np.median(bottoms))
