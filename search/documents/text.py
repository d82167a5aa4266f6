"""Plain text, and the whitespace normalisation every kind of document ends with."""

import re
import unicodedata

from search.documents.encoding import decode
from search.documents.extracted import ExtractedDocument

# Line and page breaks of other systems and of Unicode become "\n"; other controls, NUL, a stray
# byte order mark and lone surrogates (from broken PDF font maps; not encodable) go.
_BREAKS = re.compile(r"\r\n?|[\x0b\x0c\x1c-\x1e\x85\u2028\u2029]")
_CONTROLS = re.compile("[\x00-\x08\x0e-\x1b\x1f\x7f-\x84\x86-\x9f\ufeff\ud800-\udfff]")


def normalise(text: str) -> str:
    """NFC; runs of spaces and tabs become one space; lines are stripped; paragraphs are separated
    by exactly one blank line; no controls; stripped."""
    text = _CONTROLS.sub("", _BREAKS.sub("\n", unicodedata.normalize("NFC", text)))
    lines: list[str] = []
    blank = False
    for raw in text.split("\n"):
        line = " ".join(raw.split())
        if not line:
            blank = True
            continue
        if blank and lines:
            lines.append("")
        lines.append(line)
        blank = False
    return "\n".join(lines)


def extract_plain(data: bytes) -> ExtractedDocument:
    return ExtractedDocument("text/plain", normalise(decode(data)))
