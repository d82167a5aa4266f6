"""Bytes to text: the character encoding of a document, decided by its bytes.

In order: a byte order mark (UTF-8, UTF-16, UTF-32); the encoding the document declares
(HTML's <meta charset>); UTF-8; then charset_normalizer's guess among legacy encodings
(Windows-1252, Latin-1, Shift JIS, ...). What decodes but still is not text (control or
replacement characters beyond a small share) is refused with `InvalidEncoding`.
"""

import codecs
import re

from search.documents.document_errors import InvalidEncoding

try:  # comes with requests; without it only UTF-8/16/32 and Windows-1252 are recognised
    from charset_normalizer import from_bytes as _guess
except ImportError:  # pragma: no cover
    _guess = None

# UTF-32 LE before UTF-16 LE: its mark starts with UTF-16 LE's.
BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le", "UTF-32"),
    (codecs.BOM_UTF32_BE, "utf-32-be", "UTF-32"),
    (codecs.BOM_UTF8, "utf-8", "UTF-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le", "UTF-16"),
    (codecs.BOM_UTF16_BE, "utf-16-be", "UTF-16"),
)
# Characters that do not occur in text: C0/C1 controls other than tab and line/page breaks, DEL,
# and U+FFFD (what a wrong guess turns bytes into). NUL is not counted: text files padded with
# NULs are common, and the NULs are simply removed (sniffing refuses a NUL, see decode_head).
_NOT_TEXT = re.compile(r"[\x01-\x08\x0e-\x1f\x7f-\x9f\ufffd]")
NOT_TEXT_RATIO = 0.02  # a few stray control characters are tolerated (and removed); random bytes have ~10%
# Labels browsers read as Windows-1252 (WHATWG Encoding): it is a superset of Latin-1 and ASCII.
_WINDOWS_1252_LABELS = {"iso-8859-1", "iso8859-1", "latin1", "latin-1", "l1", "us-ascii", "ascii", "cp819"}
NEAR = 0.05  # chaos and coherence (0..1) this close count as a tie between legacy guesses
ACCEPTED = "UTF-8, UTF-16, UTF-32 or a legacy encoding such as Windows-1252"


def looks_like_text(text: str) -> bool:
    """At most 2% (or 2) characters that text does not contain."""
    allowed = max(2, int(len(text) * NOT_TEXT_RATIO))
    for count, _ in enumerate(_NOT_TEXT.finditer(text), start=1):
        if count > allowed:
            return False
    return True


def bom(data: bytes) -> tuple[str, int, str] | None:
    """(codec, length of the mark, label) when `data` starts with a byte order mark."""
    for mark, codec, label in BOMS:
        if data.startswith(mark):
            return codec, len(mark), label
    return None


def codec_for_label(label: str) -> str | None:
    """A Python codec for a declared charset, or None when it is unknown or cannot be meant
    (UTF-16/32 declared inside an ASCII-compatible document are read as UTF-8, as browsers do)."""
    label = label.strip().strip("\"'").lower()
    if label in _WINDOWS_1252_LABELS:
        return "cp1252"
    try:
        name = codecs.lookup(label).name
    except (LookupError, ValueError):
        return None
    return "utf-8" if name.startswith(("utf-16", "utf-32")) else name


def decode(data: bytes, *, declared: str | None = None, what: str = "file") -> str:
    """The text of a whole document; raises InvalidEncoding when it is not text we can read."""
    marked = bom(data)
    if marked:
        codec, size, label = marked
        try:
            text = data[size:].decode(codec)
        except UnicodeDecodeError:
            raise InvalidEncoding(f"the {what} starts with a {label} byte order mark but is not {label}") from None
        if looks_like_text(text):
            return text
        raise InvalidEncoding(f"the {what} is not readable text (it has many control characters)")
    for codec in dict.fromkeys(filter(None, [declared and codec_for_label(declared), "utf-8"])):
        try:
            text = data.decode(codec)
        except UnicodeDecodeError:
            continue
        if looks_like_text(text):
            return text
    text = _legacy(data)
    if text is not None and looks_like_text(text):
        return text
    raise InvalidEncoding(f"the {what} is not text in an encoding we can read ({ACCEPTED})")


def decode_head(head: bytes) -> str | None:
    """The first bytes of a file as text, or None when they are not text (for sniffing: any NUL
    outside UTF-16/32 means binary; a multi-byte character cut at the end is fine)."""
    marked = bom(head)
    if marked:
        codec, size, _ = marked
        try:
            text = codecs.getincrementaldecoder(codec)().decode(head[size:], final=False)
        except UnicodeDecodeError:
            return None
        return text if "\x00" not in text and looks_like_text(text) else None
    if b"\x00" in head:
        return None
    try:
        text = codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        # A legacy guess on a cut sample: drop a possibly cut last character first.
        text = _legacy(head[:-1] if len(head) > 1 else head)
    return text if text is not None and looks_like_text(text) else None


def _legacy(data: bytes) -> str | None:
    if _guess is None:  # pragma: no cover
        try:
            return data.decode("cp1252")
        except UnicodeDecodeError:
            return None
    matches = _guess(data)
    best = matches.best()
    if best is None:
        return None
    # On short Western text the guess wavers between Windows-125x code pages that all decode it
    # (French came out as Baltic cp1257: "à" as "ą"). Among near-equal guesses take Windows-1252,
    # the legacy default browsers use for unlabeled Western text.
    for match in matches:
        if match.encoding == "cp1252" and match.chaos <= best.chaos + NEAR and match.coherence >= best.coherence - NEAR:
            return str(match)
    return str(best)
