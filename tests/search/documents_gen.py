"""Test documents, made in code (no binary fixtures): PDFs with a real text layer by fpdf2,
odd PDFs (bombs, broken, encrypted, image-only, many pages) by hand or through pypdf."""

import io
import zlib

from fpdf import FPDF
from PIL import Image
from pypdf import PdfReader, PdfWriter


def text_pdf(pages: list[str], *, title: str = "", author: str = "") -> bytes:
    """A PDF whose pages carry `pages` as a text layer (Helvetica: Latin-1 text only)."""
    pdf = FPDF()
    pdf.set_font("helvetica", size=12)
    if title:
        pdf.set_title(title)
    if author:
        pdf.set_author(author)
    for text in pages:
        pdf.add_page()
        pdf.multi_cell(0, 8, text)
    return bytes(pdf.output())


def image_pdf(pages: int = 1) -> bytes:
    """A "scan": each page is one picture and no text."""
    pdf = FPDF()
    picture = Image.new("RGB", (64, 32), (200, 30, 30))
    for _ in range(pages):
        pdf.add_page()
        pdf.image(picture, x=10, y=10, w=100)
    return bytes(pdf.output())


def encrypted(data: bytes, user_password: str, owner_password: str = "owner-secret", *,
              algorithm: str | None = None) -> bytes:
    """`data` re-saved encrypted; an empty `user_password` opens without asking (permissions only)."""
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(data)))
    writer.encrypt(user_password, owner_password, algorithm=algorithm)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def build_pdf(objects: list[bytes], *, header: bytes = b"%PDF-1.7\n", info: bytes = b"") -> bytes:
    """A PDF of numbered objects (object 1 is the catalog) with a correct cross-reference table."""
    out = bytearray(header + b"%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R %s>>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, info, xref)
    return bytes(out)


def stream(data: bytes, *, flate: bool = False, length: int | None = None) -> bytes:
    filters = b" /Filter /FlateDecode" if flate else b""
    return b"<< /Length %d%s >>\nstream\n%s\nendstream" % (len(data) if length is None else length, filters, data)


FONT = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"


def pages_pdf(contents: list[bytes], *, flate: bool = False) -> bytes:
    """One page per content stream, all in Helvetica: objects 1 catalog, 2 pages, 3 font, then
    (page, content) pairs."""
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"", FONT]
    kids = []
    for content in contents:
        page = len(objects) + 1
        kids.append(b"%d 0 R" % page)
        objects += [
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> "
            b"/Contents %d 0 R >>" % (page + 1),
            stream(content, flate=flate),
        ]
    objects[1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (b" ".join(kids), len(kids))
    return build_pdf(objects)


def shared_content_pdf(count: int, text: bytes = b"page") -> bytes:
    """`count` pages that share one content stream: a big page tree in a small file."""
    content = stream(b"BT /F1 12 Tf 72 720 Td (%s) Tj ET" % text)
    kids = b" ".join(b"5 0 R" for _ in range(count))
    return build_pdf([
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, count),
        FONT,
        content,
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> "
        b"/Contents 4 0 R >>",
    ])


def deflate_bomb(size: int, fill: bytes = b" ") -> bytes:
    """A zlib stream of `size` bytes of `fill` (a multiple of 1 MiB, at least 3 MiB) in about size/1000
    bytes, made in a fraction of a second: after a full flush deflate blocks are independent, so
    one compressed MiB is repeated, and the Adler-32 check is computed for the whole."""
    chunk = fill * (1 << 20)
    count = size >> 20
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = compressor.compress(chunk) + compressor.flush(zlib.Z_FULL_FLUSH)
    middle = compressor.compress(chunk) + compressor.flush(zlib.Z_FULL_FLUSH)
    last = compressor.compress(chunk) + compressor.flush()
    check = 1
    for _ in range(count):
        check = zlib.adler32(chunk, check)
    return b"\x78\xda" + first + middle * (count - 2) + last + check.to_bytes(4, "big")


def flate_bomb_pdf(size: int = 1 << 30) -> bytes:
    """One page whose content stream inflates to `size` bytes of spaces (1 GiB from ~1 MB)."""
    return build_pdf([
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 5 0 R >> >> "
        b"/Contents 4 0 R >>",
        stream(deflate_bomb(size), flate=True),
        FONT,
    ])


def split_bomb_pdf(parts: int, part_size: int) -> bytes:
    """One page whose content is an array of `parts` streams, each under pypdf's per-stream limit,
    that together inflate to parts * part_size bytes: only the memory limit stops it."""
    body = stream(deflate_bomb(part_size), flate=True)
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 4 0 R >> >> "
        b"/Contents [%s] >>" % b" ".join(b"5 0 R" for _ in range(parts)),
        FONT,
        body,
    ]
    return build_pdf(objects)


def show_text(*lines: str) -> bytes:
    """A content stream that writes `lines` (ASCII) one under the other."""
    ops = [b"BT /F1 12 Tf 14 TL 72 720 Td"]
    for line in lines:
        escaped = line.encode("latin-1").replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")
        ops.append(b"(%s) Tj T*" % escaped)
    ops.append(b"ET")
    return b"\n".join(ops)
