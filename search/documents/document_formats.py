"""Every document kind we accept, in one table, and the one function that recognises them.

As for media (`search.media.media_formats`), the type is decided by the first bytes: a PDF by its
`%PDF-` header, HTML by the markup it starts with, text by decoding as text. The file name only
tells Markdown from plain text (both are just text), and keeps a `.md` README that opens with
`<p align="center">` Markdown.
"""

import re

from search.documents.encoding import decode_head
from search.media.media_formats import sniff as sniff_media

DOCUMENT_TYPES: dict[str, str] = {  # MIME type -> extension of the stored file
    "text/plain": "txt",
    "text/markdown": "md",
    "text/html": "html",
    "application/pdf": "pdf",
}
LABELS = {"text/plain": "plain text", "text/markdown": "Markdown", "text/html": "HTML", "application/pdf": "PDF"}
MARKDOWN_SUFFIXES = (".md", ".markdown")
SNIFF_BYTES = 4096  # what sniff_document needs to see
PDF_HEADER_WITHIN = 1024  # readers accept junk before %PDF- (Acrobat: 1024 bytes)
_PDF_HEADER = re.compile(rb"%PDF-\d\.\d")
# Archives, executables and containers, refused by name before the text test (which refuses any
# other binary: a NUL, or control characters beyond a small share); images and audio by the media table.
BINARY_MAGIC = (
    b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08",  # zip (docx, xlsx, epub, jar, ...)
    b"\x1f\x8b",  # gzip
    b"\xfd7zXZ\x00", b"7z\xbc\xaf\x27\x1c", b"Rar!\x1a\x07", b"\x28\xb5\x2f\xfd",  # xz, 7z, rar, zstd
    b"\x7fELF", b"\xcf\xfa\xed\xfe", b"\xce\xfa\xed\xfe", b"\xca\xfe\xba\xbe", b"\x00asm",  # executables, wasm
    b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", b"SQLite format 3\x00",  # old Office, SQLite
)
# Text formats whose markup would be indexed as if it were prose.
UNREAD_TEXT = (b"{\\rtf", b"%!PS")
_LEADING = re.compile(r"(?:\s+|<!--.*?-->|<\?xml[^>]{0,200}>)*", re.S)  # whitespace, comments, an XML prolog
_HTML_DOCUMENT = re.compile(r"<(?:!doctype\s+html|html|head|body)[\s>/]", re.I)
_HTML_FRAGMENT = re.compile(
    r"<(?:div|p|h[1-6]|table|ul|ol|dl|section|article|main|header|footer|nav|aside|form|pre|blockquote|center|"
    r"meta|title|link|style|script|base|br|hr|span|a|img|b|i|em|strong|font|iframe|noscript)[\s>/]",
    re.I,
)
_SVG = re.compile(r"<(?:svg|!doctype\s+svg)[\s>/]", re.I)


def describe() -> str:
    return "a document (plain text, Markdown, HTML or PDF)"


def sniff_document(head: bytes, filename: str = "") -> str | None:
    """The MIME type of a document from its first bytes (pass at least SNIFF_BYTES), else None.
    Never raises."""
    try:
        return _sniff(bytes(head[: SNIFF_BYTES * 2]), filename or "")
    except Exception:  # a sniffer must never be the thing that fails
        return None


def _sniff(head: bytes, filename: str) -> str | None:
    if _PDF_HEADER.search(head, 0, PDF_HEADER_WITHIN + 8):
        return "application/pdf"
    if head.startswith(BINARY_MAGIC + UNREAD_TEXT) or sniff_media(head[:64]):
        return None
    text = decode_head(head)
    if text is None:
        return None
    start = text.lstrip("\ufeff")
    start = start[_LEADING.match(start).end():][:64]
    markdown = filename.lower().endswith(MARKDOWN_SUFFIXES)
    if _SVG.match(start):
        return None
    if _HTML_DOCUMENT.match(start) or (not markdown and _HTML_FRAGMENT.match(start)):
        return "text/html"
    return "text/markdown" if markdown else "text/plain"
