"""Words inside media (issue 27), read in the background after an item is stored.

An item is searchable by its picture or sound from the moment it is stored; this stage reads the words in it
and makes it findable by them too:

* a picture: the lines of text in it (OCR, encoders.ocr), each with its box and confidence;
* a scanned PDF (no text layer): the pictures of its pages, taken out by pypdf in the PDF reader's child
  process under its time and memory limits (search.documents.scanned_pages), then OCR page by page;
* a recording: its transcript with word times (encoders.speech); music, tones and noise give none. What else the
  recogniser may have heard in each utterance (its n-best list) is kept beside it, never shown as said: the
  alternative words in `Item.extracted_alternatives` (full text, weight D) and a few alternative readings of the
  utterance embedded as extra passages that point at the utterance's words in the transcript, so a key word it
  misheard still finds the recording, by words and by meaning.

The words go into `Item.extracted_text` (in the full-text document, migration 0008) with where each was in
`Item.extraction`, and are embedded as passages in every space that reads text but cannot see or hear the
item itself (the real-language `text` space beside the demo model): a photo's text-space vectors are its
words'. A scan is a text item with no text of its own: its words are embedded in every space that reads text.

Reading happens outside any transaction, in a child process under memory and CPU limits
(search.ingest.extraction_worker; the caps on pixels, pages and seconds of sound are checked there before any
decoding): a picture that breaks a limit fails alone, with the reason, and the job goes on. One child reads every
item of a batch (its models load once); `extract_items` sends it the next item while it stores the one before,
and embeds the words of up to `CHUNK` items in one call per space. Storing (the words, the status, the vectors) is
one transaction per item, so a failure leaves the item as it was, never half-written. A failure of the content
(an unreadable file, a limit, a model that refuses it) marks the item `failed` with the reason; anything else is
raised for the job to retry.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from dataclasses import asdict, dataclass

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from encoders.base import EncoderError, Segment, WeightsNotFound
from search import documents
from search.ingest.extraction_worker import PAGES, PICTURE, SPEECH, ExtractionFailed, Limits, Reader
from search.ingest.item_vectors import Vectors, encode_batch, write_vectors
from search.media import MediaRejected
from search.media import audio as media_audio
from search.models import Embedding, EmbeddingSpace, EmbeddingStatus, ExtractionStatus, Item, Modality
from search.storage import spaces

logger = logging.getLogger(__name__)

PDF = "application/pdf"
# Words of this many items are embedded in one call per space.
CHUNK = 16


@dataclass
class Extracted:
    text: str  # the words, one OCR line a line, or the spoken words separated by spaces
    detail: dict  # Item.extraction

    @property
    def alternatives(self) -> str:
        """Item.extracted_alternatives: the words a recording may have said besides its transcript."""
        return " ".join(word for group in self.detail.get("alternatives", ()) for word in group["words"])

    def readings(self) -> list[tuple[int, int, str]]:
        """Each utterance's alternative readings, with the character span of its words in `text`."""
        groups = self.detail.get("alternatives") or ()
        if not groups:
            return []
        spans, offset = [], 0
        for word in self.detail.get("words", ()):
            spans.append((word["start"], offset, offset + len(word["text"])))
            offset += len(word["text"]) + 1
        out = []
        for group in groups:
            inside = [(a, b) for start, a, b in spans if group["start"] <= start < group["end"]]
            if inside:
                out += [(inside[0][0], inside[-1][1], reading) for reading in group.get("readings", ())]
        return out


def wanted(item: Item) -> bool:
    """Whether this item has words to read, with the current settings."""
    if item.modality == Modality.IMAGE:
        return settings.SEARCH_EXTRACT_OCR
    if item.modality == Modality.AUDIO:
        return settings.SEARCH_EXTRACT_SPEECH
    return settings.SEARCH_EXTRACT_OCR and item.mime_type == PDF and not item.text


def eligible_items():
    """Every stored item that extraction applies to, with the current settings."""
    condition = Q(pk__in=[])
    if settings.SEARCH_EXTRACT_OCR:
        condition |= Q(modality=Modality.IMAGE) | Q(modality=Modality.TEXT, mime_type=PDF, text="")
    if settings.SEARCH_EXTRACT_SPEECH:
        condition |= Q(modality=Modality.AUDIO)
    return Item.objects.filter(condition)


def mark_waiting(item_ids: list[int] | None = None, *, missing_only: bool = True):
    """Mark items for (another) reading and return those now waiting for it, by id. `missing_only`: those not
    read yet or whose reading failed; otherwise all of them again (their words found before stay searchable
    until the new ones replace them)."""
    items = eligible_items()
    if item_ids is not None:
        items = items.filter(pk__in=item_ids)
    marking = items.exclude(extraction_status=ExtractionStatus.DONE) if missing_only else items
    marking.exclude(extraction_status=ExtractionStatus.PENDING).update(
        extraction_status=ExtractionStatus.PENDING, extraction_error="")
    return items.filter(extraction_status=ExtractionStatus.PENDING).order_by("id")


# ------------------------------------------------------------------------------------------------ reading


def limits() -> Limits:
    return Limits(max_memory=settings.SEARCH_EXTRACT_MAX_MEMORY,
                  cpu_seconds=settings.SEARCH_EXTRACT_CPU_SECONDS,
                  idle_seconds=settings.SEARCH_EXTRACT_IDLE_SECONDS)


_reader: Reader | None = None
_reader_lock = threading.Lock()


@contextmanager
def reading():
    """This process's reading child, for one caller at a time (a new one when the limits changed)."""
    global _reader
    with _reader_lock:
        wanted_limits = limits()
        if _reader is not None and _reader.limits != wanted_limits:
            _reader.close()
            _reader = None
        if _reader is None:
            _reader = Reader(wanted_limits)
        try:
            yield _reader
        except BaseException:
            _reader.close()  # items it was sent are not answered now: a new child starts clean
            raise


def read(item: Item) -> Extracted:
    """The words in a stored item; raises ExtractionFailed (or MediaRejected) when its content cannot be read."""
    with reading() as reader:
        header, blobs, wall = request(item)
        return extracted(header, reader.read(header, blobs, wall_seconds=wall))


def request(item: Item) -> tuple[dict, list[bytes], float]:
    """What the reading child is sent for `item`: a header, its files and the seconds it may take on a clock.

    A scan's page pictures are taken out here, by the PDF reader's child under its own limits."""
    try:
        with default_storage.open(item.media.name, "rb") as handle:
            data = handle.read()
    except (OSError, ValueError) as exc:
        raise ExtractionFailed(f"cannot open the stored file ({exc})") from exc
    cpu = settings.SEARCH_EXTRACT_CPU_SECONDS
    if item.modality == Modality.IMAGE:
        header = {"kind": PICTURE, "mime": item.mime_type, "max_pixels": settings.SEARCH_MAX_IMAGE_PIXELS,
                  "max_side": settings.SEARCH_EXTRACT_MAX_SIDE, "cpu_seconds": cpu}
        return header, [data], _wall(cpu)
    if item.modality == Modality.AUDIO:
        audio_limits = media_audio.AudioLimits.from_settings()
        header = {"kind": SPEECH, "mime": item.mime_type, "audio": asdict(audio_limits),
                  "language": settings.SEARCH_SPEECH_LANGUAGE, "alternatives": settings.SEARCH_SPEECH_ALTERNATIVES,
                  "cpu_seconds": cpu,
                  "cpu_per_second": settings.SEARCH_EXTRACT_CPU_PER_AUDIO_SECOND}
        return header, [data], _wall(cpu + header["cpu_per_second"] * audio_limits.seconds)
    pages = documents.scanned_pages(data, max_pages=settings.SEARCH_EXTRACT_MAX_PAGES,
                                    max_side=settings.SEARCH_EXTRACT_MAX_SIDE)
    cpu *= max(1, len(pages))
    return {"kind": PAGES, "cpu_seconds": cpu}, [png or b"" for png in pages], _wall(cpu)


def _wall(cpu_seconds: float) -> float:
    """Wall-clock seconds for what may take `cpu_seconds` of CPU: twice as long, on a machine shared with others."""
    return 2 * cpu_seconds + 10


def extracted(header: dict, result: dict) -> Extracted:
    if header["kind"] != PAGES:
        return Extracted(result["text"], result["detail"])
    text, offsets = documents.join_pages(result["texts"])
    return Extracted(text, {"source": PICTURE, "pages": offsets, "sizes": result["sizes"], "lines": result["lines"]})


# ------------------------------------------------------------------------------------------------ storing


def reading_spaces(item: Item) -> list[tuple[EmbeddingSpace, object]]:
    """The configured spaces that embed this item's words: every space that reads text but cannot take the
    item itself (a photo's words go to the text space, not to the space that sees the photo); for a scan, every
    space that reads text."""
    out = []
    for name in settings.SEARCH_SPACES:
        encoder = spaces.get_encoder(name)
        if not encoder.can_embed(Modality.TEXT):
            continue
        if item.modality != Modality.TEXT and encoder.can_embed(item.modality):
            continue
        out.append((spaces.register(name), encoder))
    return out


def embed_words(item: Item, text: str | Extracted) -> dict[int, Vectors]:
    """The vectors of the words read from `item` in each of its reading spaces (none for no words)."""
    [vectors] = embed_many([(item, text)])
    if isinstance(vectors, Exception):
        raise vectors
    return vectors


def embed_many(texts: list[tuple[Item, str | Extracted]]) -> list[dict[int, Vectors] | ExtractionFailed]:
    """`embed_words` for many items: one encoding call per space for all of their words. A recording's alternative
    readings (Extracted.readings) become extra passages, each spanning its utterance's words in the transcript
    (apart by a hundredth of a character, as a passage's start is unique): found by one of them, the hit shows
    the transcript there."""
    readings = [words.readings() if isinstance(words, Extracted) else [] for _, words in texts]
    texts = [(item, words.text if isinstance(words, Extracted) else words) for item, words in texts]
    out: list[dict[int, Vectors] | ExtractionFailed] = [{} for _ in texts]
    by_modality: dict[str, list] = {}
    wanted: dict[str, tuple[EmbeddingSpace, object, list[int]]] = {}
    for index, (item, text) in enumerate(texts):
        if not text.strip():
            continue
        if item.modality not in by_modality:
            by_modality[item.modality] = reading_spaces(item)
        for space, encoder in by_modality[item.modality]:
            wanted.setdefault(space.name, (space, encoder, []))[2].append(index)
    for space, encoder, indexes in wanted.values():
        results = encode_batch(encoder, Modality.TEXT, [texts[index][1] for index in indexes])
        extra = [(index, start, end, reading) for index in indexes for start, end, reading in readings[index]]
        try:
            extra_vectors = encoder.encode_texts([reading for *_, reading in extra]) if extra else []
        except EncoderError as exc:  # the readings only add to what the transcript's own vectors find
            logger.warning("alternative readings not embedded in %s: %s", space.name, exc)
            extra, extra_vectors = [], []
        for (index, start, end, _), vector in zip(extra, extra_vectors, strict=True):
            result = results[indexes.index(index)]
            if not isinstance(result, Exception):
                taken = {segment.start for segment in result.segments}
                at = float(start)
                while at in taken:
                    at = round(at + 0.01, 2)
                result.segments.append(Segment(at, float(end), vector))
        for index, result in zip(indexes, results, strict=True):
            if isinstance(out[index], Exception):
                continue
            if isinstance(result, Exception):
                out[index] = ExtractionFailed(f"{space.name}: {result}")
            else:
                out[index][space.pk] = result
    return out


def store(item: Item, extracted: Extracted, vectors: dict[int, Vectors]) -> bool:
    """Write the words, their places and their vectors in one transaction; False when the item is gone or no
    longer waits for extraction (another worker stored it)."""
    with transaction.atomic():
        current = (Item.objects.select_for_update().filter(pk=item.pk, extraction_status=ExtractionStatus.PENDING)
                   .only("id").first())
        if current is None:
            return False
        _write(item, extracted, vectors)
    return True


def _write(item: Item, extracted: Extracted, vectors: dict[int, Vectors]) -> None:
    with transaction.atomic():
        changes = {"extracted_text": extracted.text, "extracted_alternatives": extracted.alternatives,
                   "extraction": extracted.detail,
                   "extraction_status": ExtractionStatus.DONE, "extraction_error": "", "updated_at": timezone.now()}
        targets = [space for space, _ in reading_spaces(item)]
        Embedding.objects.filter(item_id=item.pk, space__in=targets).delete()
        for space in targets:
            if space.pk in vectors:
                write_vectors(space, [(item.pk, vectors[space.pk])])
        if item.modality == Modality.TEXT:  # a scan: its words are its text's vectors
            changes |= ({"embedding_status": EmbeddingStatus.DONE, "embedding_error": ""} if vectors else
                        {"embedding_status": EmbeddingStatus.FAILED,
                         "embedding_error": "no words were read from its pages"})
        Item.objects.filter(pk=item.pk).update(**changes)


def correct(item: Item, text: str) -> None:
    """A curator's correction of the words read from an item: stored and embedded again in one transaction. The
    places of the words are kept where the correction allows: a picture's lines keep their boxes when there are
    as many lines as before; a recording's words are spread over the times of the words they replace.

    A recording's alternatives (what the recogniser may have heard besides) are all dropped, not only those of the
    utterances whose words changed: the realignment spreads the new words by position, so which utterance a
    change belongs to is a guess, and a transcript a person has read and corrected is the authority on what was
    said; the machine's second guesses would only bring back matches the curator ruled out."""
    text = text.strip()
    vectors = embed_words(item, text)
    _write(item, Extracted(text, _realigned(item.extraction or {}, text)), vectors)


def _realigned(detail: dict, text: str) -> dict:
    source = detail.get("source") or (SPEECH if detail.get("words") else PICTURE)
    if source == SPEECH:
        old, new = detail.get("words", []), text.split()
        words = []
        for index, word in enumerate(new):
            if old:
                at = old[min(len(old) - 1, index * len(old) // len(new))]
                words.append({"text": word, "start": at["start"], "end": at["end"], "confidence": 1.0})
        kept = {key: value for key, value in detail.items() if key != "alternatives"}
        return {**kept, "source": SPEECH, "words": words, "corrected": True}
    old, new = detail.get("lines", []), [line.strip() for line in text.splitlines() if line.strip()]
    same = len(old) == len(new)
    lines = [{**(old[index] if same else {}), "text": line, "confidence": 1.0} for index, line in enumerate(new)]
    return {**detail, "source": PICTURE, "lines": [{"box": None, **line} for line in lines], "corrected": True}


def extract_item(item_id: int) -> bool | None:
    """Read and store the words of one item waiting for extraction: True when stored, False when its content
    could not be read (marked failed with the reason), None when it no longer waits (deleted, or done by another
    worker). Errors of anything but the content (the database, a missing model) are raised."""
    item = Item.objects.filter(pk=item_id, extraction_status=ExtractionStatus.PENDING).first()
    if item is None:
        return None
    try:
        extracted = read(item)
        vectors = embed_words(item, extracted)
    except WeightsNotFound:
        raise
    except (ExtractionFailed, MediaRejected, EncoderError) as exc:
        _fail(item_id, exc)
        return False
    stored = store(item, extracted, vectors)
    return True if stored else None


def _fail(item_id: int, exc: Exception) -> None:
    reason = str(exc) or type(exc).__name__
    logger.warning("extraction of item %s failed: %s", item_id, reason)
    Item.objects.filter(pk=item_id, extraction_status=ExtractionStatus.PENDING).update(
        extraction_status=ExtractionStatus.FAILED, extraction_error=reason[:2000], updated_at=timezone.now())


def extract_items(item_ids: Iterable[int], *, on_item: Callable[[int, bool | None], None] | None = None
                  ) -> dict[bool | None, int]:
    """`extract_item` for many items, as one batch: one reading child reads them in order, the next item is sent to
    it before the one before is stored, and the words of up to CHUNK items are embedded in one call per space.
    `on_item(item_id, outcome)` is called as each is done; returns how many had each outcome. Errors of anything
    but an item's content are raised (the items stored until then stay stored)."""
    counts: dict[bool | None, int] = {True: 0, False: 0, None: 0}

    def done(item_id: int, outcome: bool | None) -> None:
        counts[outcome] += 1
        if on_item is not None:
            on_item(item_id, outcome)

    waiting = iter(item_ids)
    sent: deque[tuple[Item, dict]] = deque()
    chunk: list[tuple[Item, Extracted]] = []
    with reading() as reader:

        def send_next() -> None:
            for item_id in waiting:
                item = Item.objects.filter(pk=item_id, extraction_status=ExtractionStatus.PENDING).first()
                if item is None:
                    done(item_id, None)
                    continue
                try:
                    header, blobs, wall = request(item)
                except (ExtractionFailed, MediaRejected) as exc:
                    _fail(item_id, exc)
                    done(item_id, False)
                    continue
                reader.send(header, blobs, wall_seconds=wall)
                sent.append((item, header))
                return

        send_next()
        while sent:
            item, header = sent.popleft()
            try:
                words = extracted(header, reader.receive())
            except ExtractionFailed as exc:
                words = exc
            send_next()  # the child reads it while this one is embedded and stored
            if isinstance(words, Exception):
                _fail(item.pk, words)
                done(item.pk, False)
            else:
                chunk.append((item, words))
            if len(chunk) >= CHUNK or (chunk and not sent):
                _store_chunk(chunk, done)
                chunk = []
    return counts


def _store_chunk(chunk: list[tuple[Item, Extracted]], done: Callable[[int, bool | None], None]) -> None:
    for (item, words), vectors in zip(chunk, embed_many(chunk), strict=True):
        if isinstance(vectors, Exception):
            _fail(item.pk, vectors)
            done(item.pk, False)
            continue
        done(item.pk, True if store(item, words, vectors) else None)
