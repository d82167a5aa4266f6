"""Words inside media (issue 27), read in the background after an item is stored.

An item is searchable by its picture or sound from the moment it is stored; this stage reads the words in it
and makes it findable by them too:

* a picture: the lines of text in it (OCR, encoders.ocr), each with its box and confidence;
* a scanned PDF (no text layer): the pictures of its pages, taken out by pypdf in the PDF reader's child
  process under its time and memory limits (search.documents.scanned_pages), then OCR page by page;
* a recording: its transcript with word times (encoders.speech); music, tones and noise give none.

The words go into `Item.extracted_text` (in the full-text document, migration 0008) with where each was in
`Item.extraction`, and are embedded as passages in every space that reads text but cannot see or hear the
item itself (the real-language `text` space beside the demo model): a photo's text-space vectors are its
words'. A scan is a text item with no text of its own: its words are embedded in every space that reads text.

Reading happens outside any transaction; storing (the words, the status, the vectors) is one transaction, so a
failure leaves the item as it was, never half-written. A failure of the content (an unreadable file, a model
that refuses it) marks the item `failed` with the reason; anything else is raised for the job to retry.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from PIL import Image

from encoders.base import EncoderError, WeightsNotFound
from search import documents
from search.ingest.item_vectors import Vectors, encode_batch, write_vectors
from search.media import MediaRejected
from search.media import audio as media_audio
from search.media.image_decoding import decode_image
from search.models import Embedding, EmbeddingSpace, EmbeddingStatus, ExtractionStatus, Item, Modality
from search.storage import spaces

logger = logging.getLogger(__name__)

PICTURE, SPEECH = "picture", "speech"  # Item.extraction["source"]
PDF = "application/pdf"
# A picture is decoded for reading at least this large on its shorter side (then reduced to
# SEARCH_EXTRACT_MAX_SIDE on its longer one): the detector sees 960 px, small print needs the pixels.
READ_SIDE = 1000


class ExtractionFailed(Exception):
    """The item's content could not be read (the reason is stored on the item)."""


@dataclass
class Extracted:
    text: str  # the words, one OCR line a line, or the spoken words separated by spaces
    detail: dict  # Item.extraction


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


def read(item: Item) -> Extracted:
    """The words in a stored item; raises ExtractionFailed (or MediaRejected) when its content cannot be read."""
    try:
        with default_storage.open(item.media.name, "rb") as handle:
            data = handle.read()
    except (OSError, ValueError) as exc:
        raise ExtractionFailed(f"cannot open the stored file ({exc})") from exc
    if item.modality == Modality.IMAGE:
        return read_picture(data, item.mime_type)
    if item.modality == Modality.AUDIO:
        return read_speech(data, item.mime_type)
    return read_scan(data)


def read_picture(data: bytes, mime: str) -> Extracted:
    from encoders.ocr import lines_text, ocr_image

    decoded = decode_image(data, mime, max_pixels=settings.SEARCH_MAX_IMAGE_PIXELS, min_side=READ_SIDE)
    image = decoded.image
    image.thumbnail((settings.SEARCH_EXTRACT_MAX_SIDE, settings.SEARCH_EXTRACT_MAX_SIDE))
    lines = ocr_image(image)
    return Extracted(lines_text(lines), {"source": PICTURE, "size": list(image.size),
                                         "lines": [_line(line) for line in lines]})


def read_scan(data: bytes) -> Extracted:
    from encoders.ocr import lines_text, ocr_page

    side = settings.SEARCH_EXTRACT_MAX_SIDE
    pictures = documents.scanned_pages(data, max_pages=settings.SEARCH_EXTRACT_MAX_PAGES, max_side=side)
    texts, lines, sizes = [], [], []
    for number, png in enumerate(pictures, start=1):
        if png is None:
            texts.append("")
            sizes.append(None)
            continue
        with Image.open(io.BytesIO(png)) as page:
            page.load()
            found = ocr_page(page)
            sizes.append(list(page.size))
        texts.append(lines_text(found))
        lines.extend({**_line(line), "page": number} for line in found)
    text, offsets = documents.join_pages(texts)
    return Extracted(text, {"source": PICTURE, "pages": offsets, "sizes": sizes, "lines": lines})


def read_speech(data: bytes, mime: str) -> Extracted:
    from encoders.speech import transcribe

    sound = media_audio.decode(data, mime, media_audio.AudioLimits.from_settings())
    transcript = transcribe(sound.waveform, sound.rate, language=settings.SEARCH_SPEECH_LANGUAGE)
    words = [{"text": w.text, "start": w.start, "end": w.end, "confidence": w.confidence} for w in transcript.words]
    return Extracted(" ".join(w["text"] for w in words), {
        "source": SPEECH, "words": words, "speech_seconds": transcript.speech_seconds,
        "utterances": [[u.start, u.end] for u in transcript.utterances if u.words],
    })


def _line(line) -> dict:
    return {"text": line.text, "box": [[round(x, 1), round(y, 1)] for x, y in line.box],
            "confidence": line.confidence}


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


def embed_words(item: Item, text: str) -> dict[int, Vectors]:
    """The vectors of the words read from `item` in each of its reading spaces (none for no words)."""
    vectors: dict[int, Vectors] = {}
    if not text.strip():
        return vectors
    for space, encoder in reading_spaces(item):
        [result] = encode_batch(encoder, Modality.TEXT, [text])
        if isinstance(result, Exception):
            raise ExtractionFailed(f"{space.name}: {result}")
        vectors[space.pk] = result
    return vectors


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
        changes = {"extracted_text": extracted.text, "extraction": extracted.detail,
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
    as many lines as before; a recording's words are spread over the times of the words they replace."""
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
        return {**detail, "source": SPEECH, "words": words, "corrected": True}
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
        vectors = embed_words(item, extracted.text)
    except WeightsNotFound:
        raise
    except (ExtractionFailed, MediaRejected, EncoderError) as exc:
        reason = str(exc) or type(exc).__name__
        logger.warning("extraction of item %s failed: %s", item_id, reason)
        Item.objects.filter(pk=item_id, extraction_status=ExtractionStatus.PENDING).update(
            extraction_status=ExtractionStatus.FAILED, extraction_error=reason[:2000], updated_at=timezone.now())
        return False
    stored = store(item, extracted, vectors)
    return True if stored else None
