"""PDF: the text layer, read by pypdf in a child process under a time and memory limit.

Why a child: pypdf is pure Python reading untrusted structure. A FlateDecode stream of 1 MB can
inflate to 1 GB, and malformed files can make a parser loop; in the web process that is an OOM
kill or a hung worker. The child (`pdfworker.py`, stdlib + pypdf, no Django or torch) runs under
an address-space limit, a CPU limit and a wall-clock timeout, with pypdf's own decompression
limits set to `STREAM_LIMIT`; whatever it does, the caller gets text or a `MediaRejected`.
Starting it costs about 0.2 s per PDF (interpreter + pypdf import).

A PDF whose pages carry no text (a scan) is accepted with no text and `metadata["scanned"]`; its words are
read later, in the background, from the pictures of its pages (`page_images`, the same child and limits) by
text recognition (search.ingest.extraction). Where that is turned off, the ingester refuses it (`NoTextLayer`).
"""

import json
import logging
import math
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from search.documents.document_errors import EncryptedDocument
from search.documents.extracted import ExtractedDocument, clean_title
from search.documents.text import normalise
from search.media.rejections import CorruptMedia, MediaRejected, MediaTooLarge

logger = logging.getLogger(__name__)

WORKER = Path(__file__).with_name("pdfworker.py")
STREAM_LIMIT = 64 * 1024 * 1024  # the most one stream may decompress to (pypdf's default: 75 MB)


@dataclass(frozen=True)
class PdfLimits:
    max_pages: int
    max_chars: int
    timeout: float  # seconds, wall clock, start of the child included
    max_memory: int  # bytes of address space for the child


def extract_pdf(data: bytes, limits: PdfLimits) -> ExtractedDocument:
    result = run_worker(data, limits)
    if "error" in result:
        raise rejection(result, limits)
    pages = [normalise(page) for page in result["pages"]]
    text, offsets = join_pages(pages)
    metadata = {"pages": len(pages), **result.get("metadata", {})}
    if not any(pages):
        metadata["scanned"] = True  # no text layer: its words are read from its pages' pictures, later
    return ExtractedDocument("application/pdf", text, clean_title(result.get("title", "")), offsets, metadata)


def page_images(data: bytes, limits: PdfLimits, max_side: int) -> list[bytes | None]:
    """The picture of each page of a scan as PNG bytes (None for a page without one), at most `max_side`
    pixels a side, read in the child process under `limits`."""
    import base64

    result = run_worker(data, limits, page_images=max_side)
    if "error" in result:
        raise rejection(result, limits)
    return [base64.b64decode(page) if page else None for page in result.get("images", [])]


def join_pages(pages: list[str]) -> tuple[str, list[int]]:
    """The pages' text joined by blank lines, and where each page starts in it. A page without
    text starts where the next page's text does (or at the end)."""
    parts: list[str] = []
    offsets: list[int | None] = []
    length = 0
    for page in pages:
        if not page:
            offsets.append(None)
            continue
        if parts:
            parts.append("\n\n")
            length += 2
        offsets.append(length)
        parts.append(page)
        length += len(page)
    following = length
    for i in range(len(offsets) - 1, -1, -1):
        if offsets[i] is None:
            offsets[i] = following
        following = offsets[i]
    return "".join(parts), offsets


def run_worker(data: bytes, limits: PdfLimits, *, page_images: int = 0) -> dict:
    """The child's JSON answer; raises MediaTooLarge when it ran out of time or memory."""
    args = {
        "page_images": page_images,
        "max_pages": limits.max_pages,
        "max_chars": limits.max_chars,
        "max_memory": limits.max_memory,
        "cpu_seconds": max(1, math.ceil(limits.timeout)) + 1,  # ends the child if this process dies first
        "stream_limit": STREAM_LIMIT,
    }
    command = [sys.executable, "-I", str(WORKER), json.dumps(args)]
    out_of_time = MediaTooLarge(
        f"the PDF could not be read within {limits.timeout:g} s; it is too large or too complex"
    )
    started = time.monotonic()
    try:
        done = subprocess.run(command, input=data, capture_output=True, timeout=limits.timeout, check=False)
    except subprocess.TimeoutExpired:  # run() has killed and reaped the child
        raise out_of_time from None
    try:
        result = json.loads(done.stdout)
    except ValueError:
        result = None
    if isinstance(result, dict) and ("error" in result or isinstance(result.get("pages" if not page_images
                                                                                   else "images"), list)):
        return result
    stderr = done.stderr[-2000:].decode("utf-8", "replace")
    if done.returncode == -signal.SIGXCPU or (done.returncode == -signal.SIGKILL
                                               and time.monotonic() - started >= limits.timeout):
        raise out_of_time
    if done.returncode == -signal.SIGKILL or "MemoryError" in stderr:  # killed early: the system ran out of memory
        return {"error": "memory"}
    logger.warning("PDF reader exited with %s: %s", done.returncode, stderr)
    raise CorruptMedia("the PDF cannot be read (the reader stopped unexpectedly)")


def rejection(result: dict, limits: PdfLimits) -> MediaRejected:
    kind = result["error"]
    if kind == "encrypted":
        if result.get("detail"):
            return EncryptedDocument(f"the PDF is encrypted in a way we cannot read ({result['detail']})")
        return EncryptedDocument(
            "the PDF is protected by a password; remove the protection (or print it to a new PDF) and upload it again"
        )
    if kind == "pages":
        return MediaTooLarge(f"the PDF has {result['pages']:,} pages; the limit is {limits.max_pages:,}")
    if kind == "chars":
        return MediaTooLarge(
            f"the PDF has more than {limits.max_chars:,} characters of text (reached by page {result['page']:,} "
            f"of {result['pages']:,}); the limit is {limits.max_chars:,}"
        )
    if kind == "limit":
        return MediaTooLarge(f"a part of the PDF expands beyond what we accept ({result.get('detail', '')})")
    if kind == "memory":
        return MediaTooLarge(
            f"the PDF needs more memory than allowed ({limits.max_memory // 2**20:,} MB) to be read; "
            "it is too large or too complex"
        )
    if kind == "no_pages":
        return CorruptMedia("the PDF has no pages")
    return CorruptMedia(f"the PDF cannot be read ({result.get('detail') or 'it is damaged'})")
