"""The text layer of one PDF, read in a child process started by `search.documents.pdf`:

    python -I .../pdfworker.py '{"max_pages": 2000, ...}' < file.pdf > result.json

Started by path in isolated mode (no script folder or PYTHON* variables on the path), it imports
the standard library and pypdf only: no Django, no torch, nothing of the project. Before it reads
the PDF it caps its own address space, CPU time, file writes and core dumps, so a decompression
bomb or a parser loop ends this process, never the web worker. It writes one JSON object:
{"pages": [raw text of each page], "title": ..., "metadata": {...}}, or {"error": kind, ...figures}
which the parent turns into a rejection a user can act on. With "page_images" (a side in pixels) it sends the
picture of each page of a scan instead, for text recognition: {"images": [base64 PNG or null per page]}.
"""

import io
import json
import re
import resource
import sys

# Every pypdf output/size limit (bytes) that bounds what a stream may expand to (its default is 75 MB).
STREAM_LIMIT_FIELDS = (
    "maximum_declared_stream_length", "array_based_stream_maximum_output_length", "jbig2_maximum_output_length",
    "lzw_maximum_output_length", "run_length_maximum_output_length", "zlib_maximum_output_length",
    "brotli_maximum_output_length", "image_maximum_buffer_size",
)
METADATA_FIELDS = ("author", "subject", "keywords", "creator", "producer")
MAX_FIELD_CHARS = 300
_SURROGATES = re.compile("[\ud800-\udfff]")  # from broken font maps; not encodable as UTF-8


def limit_resources(max_memory: int, cpu_seconds: int) -> None:
    # CPU: SIGXCPU at the soft limit, SIGKILL a second later (ends an orphaned child too).
    for kind, soft, hard in ((resource.RLIMIT_AS, max_memory, max_memory),
                             (resource.RLIMIT_CPU, cpu_seconds, cpu_seconds + 1),
                             (resource.RLIMIT_FSIZE, 0, 0), (resource.RLIMIT_CORE, 0, 0)):
        _, current = resource.getrlimit(kind)
        if current != resource.RLIM_INFINITY:
            soft, hard = min(soft, current), min(hard, current)
        resource.setrlimit(kind, (soft, hard))


def configure_pypdf(stream_limit: int) -> None:
    import dataclasses
    import logging
    import warnings

    logging.disable(logging.CRITICAL)  # a broken file can log a warning per object; nobody reads them here
    warnings.simplefilter("ignore")
    import pypdf

    known = {f.name for f in dataclasses.fields(pypdf.Configuration)}
    wanted = dict.fromkeys(STREAM_LIMIT_FIELDS, stream_limit) | {
        "jbig2dec_binary": None,  # never start an external decoder (text extraction needs no images)
        "disable_legacy_handling": True,
    }
    pypdf.overwrite_configuration(**{name: value for name, value in wanted.items() if name in known})


def extract(data: bytes, max_pages: int, max_chars: int) -> dict:
    from pypdf import PdfReader
    from pypdf.errors import DependencyError, FileNotDecryptedError, LimitReachedError

    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            try:
                if not reader.decrypt(""):  # many PDFs are encrypted only to set permissions
                    return {"error": "encrypted"}
            except (DependencyError, NotImplementedError) as exc:
                return {"error": "encrypted", "detail": _detail(exc)}
        count = len(reader.pages)
        if not count:
            return {"error": "no_pages"}
        if count > max_pages:
            return {"error": "pages", "pages": count}
        pages: list[str] = []
        unreadable = 0
        total = 0
        for number, page in enumerate(reader.pages, start=1):
            try:
                text = _SURROGATES.sub("", page.extract_text() or "")
            except (LimitReachedError, FileNotDecryptedError, MemoryError, RecursionError):
                raise
            except Exception:  # one broken page does not lose the others
                text, unreadable = "", unreadable + 1
            total += len(" ".join(text.split()))
            # Roughly what the parent will count; twice the cap, so only a PDF surely over it stops here.
            if total > 2 * max_chars:
                return {"error": "chars", "page": number, "pages": count}
            pages.append(text)
        if unreadable == count:
            return {"error": "corrupt", "detail": "no page could be read"}
        title, metadata = _metadata(reader)
        if unreadable:
            metadata["unreadable_pages"] = unreadable
        return {"pages": pages, "title": title, "metadata": metadata}
    except FileNotDecryptedError:
        return {"error": "encrypted"}
    except LimitReachedError as exc:
        return {"error": "limit", "detail": _detail(exc)}
    except RecursionError:
        return {"error": "corrupt", "detail": "its structure nests too deeply"}
    except MemoryError:
        raise
    except Exception as exc:
        return {"error": "corrupt", "detail": _detail(exc)}


def page_images(data: bytes, max_pages: int, max_side: int) -> dict:
    """The picture of each page of a scan (its largest embedded image, reduced to `max_side`, in grey, and sent as
    PNG in base64), for text recognition; a page without one gives null. Images are decoded by pypdf and Pillow
    only (no external decoder), under the same limits as the text."""
    import base64

    from PIL import Image
    from pypdf import PdfReader
    from pypdf.errors import LimitReachedError

    Image.MAX_IMAGE_PIXELS = 60_000_000  # a page's picture larger than this is refused as a decompression bomb
    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted and not reader.decrypt(""):
            return {"error": "encrypted"}
        count = len(reader.pages)
        if not count:
            return {"error": "no_pages"}
        if count > max_pages:
            return {"error": "pages", "pages": count}
        pages: list[str | None] = []
        for page in reader.pages:
            best = None
            try:
                for embedded in page.images:
                    picture = embedded.image
                    if best is None or picture.width * picture.height > best.width * best.height:
                        best = picture
            except (LimitReachedError, MemoryError, RecursionError):
                raise
            except Exception:  # one unreadable picture does not lose the other pages
                best = None
            if best is None:
                pages.append(None)
                continue
            best.thumbnail((max_side, max_side))
            # Text is read from brightness alone: grey is a third of the bytes to encode and send.
            best = best.convert("L")
            out = io.BytesIO()
            best.save(out, "PNG", compress_level=1)  # sent once through a pipe: speed over size
            pages.append(base64.b64encode(out.getvalue()).decode("ascii"))
        return {"images": pages}
    except LimitReachedError as exc:
        return {"error": "limit", "detail": _detail(exc)}
    except RecursionError:
        return {"error": "corrupt", "detail": "its structure nests too deeply"}
    except MemoryError:
        raise
    except Exception as exc:
        return {"error": "corrupt", "detail": _detail(exc)}


def _metadata(reader) -> tuple[str, dict]:
    try:
        info = reader.metadata
    except Exception:
        return "", {}
    if info is None:
        return "", {}
    fields = {}
    for name in ("title", *METADATA_FIELDS):
        try:
            value = getattr(info, name)
        except Exception:
            continue
        if value:
            fields[name] = _SURROGATES.sub("", " ".join(str(value).replace("\x00", "").split()))[:MAX_FIELD_CHARS]
    for name, attribute in (("created", "creation_date"), ("modified", "modification_date")):
        try:
            value = getattr(info, attribute)
        except Exception:  # an unparseable date string
            continue
        if value is not None:
            fields[name] = value.isoformat()
    title = fields.pop("title", "")
    return title, {name: value for name, value in fields.items() if value}


def _detail(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc)[:200]}"


def main() -> None:
    limits = json.loads(sys.argv[1])
    limit_resources(limits["max_memory"], limits["cpu_seconds"])
    data = sys.stdin.buffer.read()
    try:
        configure_pypdf(limits["stream_limit"])
        if limits.get("page_images"):
            result = page_images(data, limits["max_pages"], limits["page_images"])
        else:
            result = extract(data, limits["max_pages"], limits["max_chars"])
    except MemoryError:
        result = {"error": "memory"}
    del data
    try:
        out = json.dumps(result, ensure_ascii=False).encode("utf-8")
    except MemoryError:
        out = b'{"error": "memory"}'
    sys.stdout.buffer.write(out)
    sys.stdout.buffer.flush()


if __name__ == "__main__":
    main()
