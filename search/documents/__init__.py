"""Documents as text items: plain text, Markdown, HTML and PDF, reduced to the text a reader sees.

`sniff_document` decides the kind from the first bytes (`search.documents.document_formats`);
`extract_document` returns an `ExtractedDocument` or raises a `MediaRejected` subclass whose
`code` is stable and whose message a user can act on: EmptyContent, MediaTooLarge (413),
CorruptMedia, UnsupportedMediaType, and EncryptedDocument, NoTextLayer, InvalidEncoding
(`search.documents.document_errors`). Text and Markdown: `text`, `markdown`; HTML: `html`; PDF: `pdf`
(pypdf in a child process, under time and memory limits).

Limits are Django settings read at each call: SEARCH_MAX_TEXT_CHARS (characters of extracted
text), SEARCH_MAX_DOCUMENT_PAGES, SEARCH_DOCUMENT_TIMEOUT (seconds for one document: the PDF
reader's wall clock, HTML's and Markdown's parse) and SEARCH_DOCUMENT_MAX_MEMORY (bytes of
address space for the PDF reader).
"""

from django.conf import settings

from search.documents.document_errors import EncryptedDocument, InvalidEncoding, NoTextLayer
from search.documents.document_formats import DOCUMENT_TYPES, LABELS, SNIFF_BYTES, describe, sniff_document
from search.documents.extracted import ExtractedDocument
from search.documents.html import extract_html
from search.documents.markdown import extract_markdown
from search.documents.pdf import PdfLimits, extract_pdf, join_pages, page_images
from search.documents.text import extract_plain
from search.media.rejections import EmptyContent, MediaTooLarge, UnsupportedMediaType

__all__ = [
    "DOCUMENT_TYPES", "LABELS", "SNIFF_BYTES", "EncryptedDocument", "ExtractedDocument", "InvalidEncoding",
    "NoTextLayer", "describe", "extract_document", "join_pages", "scanned_pages", "sniff_document",
]

DEFAULT_MAX_TEXT_CHARS = 1_000_000
DEFAULT_MAX_PAGES = 2000
DEFAULT_TIMEOUT = 30.0  # seconds
DEFAULT_MAX_MEMORY = 1536 * 1024 * 1024  # bytes of address space for the PDF reader


def _pdf_limits(max_chars: int, timeout: float) -> PdfLimits:
    return PdfLimits(
        max_pages=getattr(settings, "SEARCH_MAX_DOCUMENT_PAGES", DEFAULT_MAX_PAGES),
        max_chars=max_chars,
        timeout=timeout,
        max_memory=getattr(settings, "SEARCH_DOCUMENT_MAX_MEMORY", DEFAULT_MAX_MEMORY),
    )


def scanned_pages(data: bytes, *, max_pages: int, max_side: int) -> list[bytes | None]:
    """The pictures of a scanned PDF's pages (PNG bytes, None for a page without one), at most `max_pages`
    pages (more is refused with MediaTooLarge) and `max_side` pixels a side, read under the PDF limits."""
    limits = _pdf_limits(getattr(settings, "SEARCH_MAX_TEXT_CHARS", DEFAULT_MAX_TEXT_CHARS),
                         float(getattr(settings, "SEARCH_DOCUMENT_TIMEOUT", DEFAULT_TIMEOUT)))
    limits = PdfLimits(max_pages=min(max_pages, limits.max_pages), max_chars=limits.max_chars,
                       timeout=limits.timeout, max_memory=limits.max_memory)
    return page_images(data, limits, max_side)


def extract_document(data: bytes, mime: str, *, filename: str = "") -> ExtractedDocument:
    """The visible text of a document whose type `sniff_document` gave; raises MediaRejected.
    `filename` is for messages only: the type is `mime`."""
    if mime not in DOCUMENT_TYPES:
        raise UnsupportedMediaType(f"unsupported document type {mime!r}: expected {describe()}")
    if not data:
        raise EmptyContent("the file is empty (0 bytes)")
    max_chars = getattr(settings, "SEARCH_MAX_TEXT_CHARS", DEFAULT_MAX_TEXT_CHARS)
    timeout = float(getattr(settings, "SEARCH_DOCUMENT_TIMEOUT", DEFAULT_TIMEOUT))
    if mime == "application/pdf":
        document = extract_pdf(data, _pdf_limits(max_chars, timeout))
        if document.metadata.get("scanned"):
            if getattr(settings, "SEARCH_EXTRACT_OCR", False):
                return document  # stored without text; its pages are read in the background
            raise NoTextLayer("this PDF has no text layer (a scan?) and text recognition (OCR) is turned off")
    elif mime == "text/html":
        document = extract_html(data, timeout=timeout)
    elif mime == "text/markdown":
        document = extract_markdown(data, timeout=timeout)
    else:
        document = extract_plain(data)
    what = f"{filename} " if filename else ""
    if not document.text:
        raise EmptyContent(f"the {LABELS[mime]} document {what}has no text")
    if len(document.text) > max_chars:
        raise MediaTooLarge(f"the {LABELS[mime]} document {what}has {len(document.text):,} characters of text; "
                            f"the limit is {max_chars:,}")
    return document

