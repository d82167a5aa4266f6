"""Words inside media (issue 27) read in a child process under memory and CPU limits, as PDFs are read.

The parent (`search.ingest.extraction`) holds one `Reader`: a child started as

    python -m search.ingest.extraction_worker '{"max_memory": ..., "idle_seconds": ...}'

that decodes each picture, page or recording it is sent and reads its words (encoders.ocr, encoders.speech). The
child imports no Django settings, no torch and no database driver; it caps its own address space, core dumps and
file writes before it loads a model, and each item's CPU time (`RLIMIT_CPU`, raised before each item to what it
has used plus the item's allowance: the kernel ends it at the limit). The parent adds a wall-clock limit. So a
decompression bomb, a picture that needs more memory than allowed or a reading that runs away ends the child, not
the job: that item fails with the reason, the next one gets a new child. The models load once per child, which
reads every item of a job (and those of the next job, until it has waited `idle_seconds` for work).

Each message is a 4-byte length and a JSON header; a request's header says how many bytes of files follow it. The
child reads requests on a thread of its own, so the parent can send the next item while this one is read (the
reading of one item overlaps the storing of the one before).
"""

from __future__ import annotations

import json
import os
import resource
import select
import signal
import struct
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

# Set before anything imports onnxruntime, here and in every child (see encoders/ocr.py).
os.environ["ORT_DISABLE_TELEMETRY"] = "1"

ROOT = Path(__file__).resolve().parents[2]
PICTURE, PAGES, SPEECH = "picture", "pages", "speech"  # request kinds
# A picture is decoded for reading at least this large on its shorter side (then reduced to its `max_side` on its
# longer one): the detector sees up to 960 px, small print needs the pixels. A smaller picture is read as it is.
READ_SIDE = 1000
_LENGTH = struct.Struct(">I")


class ExtractionFailed(Exception):
    """The item's content could not be read (the reason is stored on the item)."""


class WorkerBroken(RuntimeError):
    """The child failed in a way that is not the item's fault (a bug, a missing model); the job retries."""


@dataclass(frozen=True)
class Limits:
    max_memory: int  # bytes of address space for the child, models included
    cpu_seconds: float  # CPU time one picture or one page may take (a recording: plus its header's per second)
    idle_seconds: float  # the child exits after waiting this long for work
    load_seconds: float = 120.0  # wall-clock allowance for loading the models, on top of an item's

    def config(self) -> dict:
        return {"max_memory": self.max_memory, "idle_seconds": self.idle_seconds}


# ------------------------------------------------------------------------------------------------ parent side


class Reader:
    """One child process reading items in the order they are sent; `send` may run ahead of `receive`.

    `receive` gives the next item's result (a dict) or raises ExtractionFailed with the reason when the item broke a
    limit or could not be read; the child is then replaced and the items sent after it are sent again.
    """

    def __init__(self, limits: Limits):
        self.limits = limits
        self._process: subprocess.Popen | None = None
        self._pending: deque[tuple[dict, list[bytes], float]] = deque()  # sent, not yet answered
        self._started = 0.0  # when the child began the first pending item

    # -- requests

    def read(self, header: dict, blobs: list[bytes], *, wall_seconds: float) -> dict:
        self.send(header, blobs, wall_seconds=wall_seconds)
        return self.receive()

    def send(self, header: dict, blobs: list[bytes], *, wall_seconds: float) -> None:
        header = {**header, "sizes": [len(blob) for blob in blobs]}
        if not self._pending:
            self._started = time.monotonic()
        self._pending.append((header, blobs, wall_seconds))
        try:
            self._write(header, blobs)
        except (BrokenPipeError, OSError):
            # The child had left (idle, or ended by the item before): a new one gets every pending item.
            self._restart()

    def receive(self) -> dict:
        header, _, wall_seconds = self._pending[0]
        deadline = self._started + wall_seconds + (self.limits.load_seconds if not self._warm(header) else 0)
        try:
            raw = self._read_message(deadline)
        except _Timeout:
            self._pending.popleft()
            self._kill()
            self._restart()
            raise ExtractionFailed(f"reading it took longer than {wall_seconds:g} s") from None
        except _Ended as ended:
            self._pending.popleft()
            reason = self._ended_reason(ended.returncode, header)
            self._process = None
            self._restart()
            raise ExtractionFailed(reason) from None
        self._pending.popleft()
        self._started = time.monotonic()
        self._loaded.add(header["kind"])
        result = json.loads(raw)
        error = result.get("error")
        if error == "memory":
            self._kill()  # what it could not free would fail the next items too: a new child reads them
            self._restart()
            raise ExtractionFailed(self._memory_reason())
        if error == "rejected":
            raise ExtractionFailed(result["detail"])
        if error in ("weights", "broken"):
            raise WorkerBroken(result["detail"])
        return result

    def close(self) -> None:
        process, self._process = self._process, None
        self._pending.clear()
        if process is None:
            return
        try:
            process.stdin.close()
            process.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            process.kill()
            process.wait()
        finally:
            process.stdout.close()

    # -- the child

    def _ensure(self) -> subprocess.Popen:
        if self._process is None or self._process.poll() is not None:
            if self._process is not None:
                self._process.stdout.close()
            env = {**os.environ, "ORT_DISABLE_TELEMETRY": "1", "PYTHONPATH": str(ROOT)}
            self._process = subprocess.Popen(
                [sys.executable, "-s", "-m", "search.ingest.extraction_worker", json.dumps(self.limits.config())],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=ROOT, env=env, close_fds=True,
            )
            self._loaded: set[str] = set()
        return self._process

    def _warm(self, header: dict) -> bool:
        return self._process is not None and header["kind"] in getattr(self, "_loaded", set())

    def _restart(self) -> None:
        if self._process is not None:
            self._kill()
        self._process = None
        self._started = time.monotonic()
        for header, blobs, _ in list(self._pending):
            try:
                self._write(header, blobs)
            except (BrokenPipeError, OSError):
                break  # it ended at once: receive() tells why

    def _kill(self) -> None:
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            process.kill()
        process.wait()
        process.stdout.close()
        try:
            process.stdin.close()
        except OSError:
            pass
        self._process = None

    def _write(self, header: dict, blobs: list[bytes]) -> None:
        stream = self._ensure().stdin
        encoded = json.dumps(header).encode()
        stream.write(_LENGTH.pack(len(encoded)) + encoded)
        for blob in blobs:
            stream.write(blob)
        stream.flush()

    def _read_message(self, deadline: float) -> bytes:
        if self._process is None:
            raise _Ended(None)
        (length,) = _LENGTH.unpack(self._read_exactly(_LENGTH.size, deadline))
        return self._read_exactly(length, deadline)

    def _read_exactly(self, count: int, deadline: float) -> bytes:
        process = self._process
        fd = process.stdout.fileno()
        chunks, left = [], count
        while left:
            wait = deadline - time.monotonic()
            if wait <= 0 or not select.select([fd], [], [], wait)[0]:
                raise _Timeout
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                raise _Ended(process.wait())
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)

    def _ended_reason(self, returncode: int | None, header: dict) -> str:
        if returncode == -signal.SIGXCPU:  # the kernel, at the item's CPU limit
            return f"reading it took more than {header['cpu_seconds']:g} s of CPU time"
        if returncode in (-signal.SIGKILL, -signal.SIGSEGV, -signal.SIGABRT, -signal.SIGBUS):
            # Killed by the kernel's out-of-memory killer, or a native library that could not allocate.
            return self._memory_reason()
        return f"the reading process ended unexpectedly (exit status {returncode})"

    def _memory_reason(self) -> str:
        return f"reading it needed more than the {self.limits.max_memory / 2**20:.0f} MiB of memory allowed"


class _Timeout(Exception):
    pass


class _Ended(Exception):
    def __init__(self, returncode):
        super().__init__(returncode)
        self.returncode = returncode


# ------------------------------------------------------------------------------------------------- child side


def limit_resources(max_memory: int) -> None:
    for kind, value in ((resource.RLIMIT_AS, max_memory), (resource.RLIMIT_FSIZE, 0), (resource.RLIMIT_CORE, 0)):
        _, current = resource.getrlimit(kind)
        if current != resource.RLIM_INFINITY:
            value = min(value, current)
        resource.setrlimit(kind, (value, value))


def allow_cpu(seconds: float) -> None:
    """End this process (SIGXCPU, then SIGKILL a second later) once it has used `seconds` more of CPU time."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    used = usage.ru_utime + usage.ru_stime
    soft = int(used + seconds) + 1
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    if hard != resource.RLIM_INFINITY and soft + 1 > hard:
        soft = hard - 1
    resource.setrlimit(resource.RLIMIT_CPU, (soft, soft + 1 if hard == resource.RLIM_INFINITY else hard))


def read_picture(header: dict, data: bytes) -> dict:
    from encoders.ocr import lines_text, ocr_image
    from search.media.image_decoding import decode_image

    decoded = decode_image(data, header["mime"], max_pixels=header["max_pixels"], min_side=READ_SIDE)
    image = decoded.image
    image.thumbnail((header["max_side"], header["max_side"]))
    lines = ocr_image(image)
    return {"text": lines_text(lines),
            "detail": {"source": PICTURE, "size": list(image.size), "lines": [line_detail(line) for line in lines]}}


def read_pages(header: dict, pages: list[bytes]) -> dict:
    """The lines of each page picture (PNG, as the PDF reader's child sent them); an empty file is a page without
    a picture."""
    import io

    from PIL import Image

    from encoders.ocr import lines_text, ocr_page

    texts, lines, sizes = [], [], []
    for number, png in enumerate(pages, start=1):
        if not png:
            texts.append("")
            sizes.append(None)
            continue
        with Image.open(io.BytesIO(png)) as page:
            page.load()
            found = ocr_page(page)
            sizes.append(list(page.size))
        texts.append(lines_text(found))
        lines.extend({**line_detail(line), "page": number} for line in found)
    return {"texts": texts, "sizes": sizes, "lines": lines}


def read_speech(header: dict, data: bytes) -> dict:
    from encoders.speech import transcribe
    from search.media import audio as media_audio

    sound = media_audio.decode(data, header["mime"], media_audio.AudioLimits(**header["audio"]))
    allow_cpu(header["cpu_seconds"] + header["cpu_per_second"] * sound.duration)
    transcript = transcribe(sound.waveform, sound.rate, language=header["language"],
                            alternatives=header.get("alternatives", True))
    words = [{"text": w.text, "start": w.start, "end": w.end, "confidence": w.confidence} for w in transcript.words]
    return {"text": " ".join(w["text"] for w in words), "detail": {
        "source": SPEECH, "words": words, "speech_seconds": transcript.speech_seconds,
        "utterances": [[u.start, u.end] for u in transcript.utterances if u.words],
        # What else the recogniser may have heard in each utterance (encoders.speech): searched, never shown as said.
        "alternatives": [{"start": u.start, "end": u.end, "words": list(u.alternatives), "readings": list(u.readings)}
                         for u in transcript.utterances if u.alternatives],
    }}


def line_detail(line) -> dict:
    return {"text": line.text, "box": [[round(x, 1), round(y, 1)] for x, y in line.box],
            "confidence": line.confidence}


READERS = {PICTURE: lambda header, blobs: read_picture(header, blobs[0]), PAGES: read_pages,
           SPEECH: lambda header, blobs: read_speech(header, blobs[0])}


def _load(kind: str) -> None:
    if kind == SPEECH:
        from encoders import speech

        speech.warmup()
    else:
        from encoders import ocr

        ocr.warmup()


def handle(header: dict, blobs: list[bytes]) -> dict:
    from encoders.base import EncoderError, WeightsNotFound
    from search.media.rejections import MediaRejected

    try:
        _load(header["kind"])  # before the item's CPU allowance starts
        allow_cpu(header["cpu_seconds"])
        return READERS[header["kind"]](header, blobs)
    except MemoryError:
        return {"error": "memory"}
    except WeightsNotFound as exc:
        return {"error": "weights", "detail": str(exc)}
    except (MediaRejected, EncoderError) as exc:
        detail = str(exc) or type(exc).__name__
        # The engines wrap a refused allocation in errors of their own (ONNX Runtime's is not even a MemoryError).
        if isinstance(exc.__cause__, MemoryError) or "bad_alloc" in detail or "Failed to allocate" in detail:
            return {"error": "memory"}
        return {"error": "rejected", "detail": detail}
    except Exception as exc:  # a bug here, not the item: the parent's job retries
        return {"error": "broken", "detail": f"{type(exc).__name__}: {exc}"}


def _requests(stream, queue) -> None:
    """Read requests as they come (the parent may send the next while one is read); None at the end."""
    def exactly(count: int) -> bytes | None:
        data = stream.read(count)
        return data if len(data) == count else None

    try:
        while (raw := exactly(_LENGTH.size)) is not None:
            header = json.loads(exactly(_LENGTH.unpack(raw)[0]) or b"null")
            if header is None:
                break
            blobs = [exactly(size) if size else b"" for size in header["sizes"]]
            if any(blob is None for blob in blobs):
                break
            queue.put((header, blobs))
    except MemoryError:
        pass
    queue.put(None)


def main() -> None:
    import queue as queues
    import tempfile

    config = json.loads(sys.argv[1])
    # The child writes no file; libraries that ask for the temporary folder at import (the audio front end
    # does) get its name without the write that would test it.
    tempfile.tempdir = tempfile.gettempdir()
    limit_resources(config["max_memory"])
    out = sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing a library prints can corrupt the answers
    waiting: queues.Queue = queues.Queue()
    threading.Thread(target=_requests, args=(sys.stdin.buffer, waiting), daemon=True).start()
    while True:
        try:
            request = waiting.get(timeout=config["idle_seconds"])
        except queues.Empty:
            break
        if request is None:
            break
        result = handle(*request)
        del request
        try:
            encoded = json.dumps(result, ensure_ascii=False).encode()
        except MemoryError:
            encoded = b'{"error": "memory"}'
        out.write(_LENGTH.pack(len(encoded)) + encoded)
        out.flush()


if __name__ == "__main__":
    main()
