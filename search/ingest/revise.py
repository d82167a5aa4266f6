"""Changing the body of a text item in place: its hash and every vector it has (the item's own and its
passages') follow, in one transaction, or nothing changes.

The new text is embedded before anything is written, so a failure (a refused text, an encoder that
is down, the same text stored already as another item) leaves the item exactly as it was.
"""

from django.conf import settings
from django.db import IntegrityError, transaction

from encoders.base import EncoderError
from search.ingest.item_vectors import encode_batch, write_vectors
from search.ingest.prepare import clean_text, text_sha256
from search.media import MediaRejected
from search.models import Embedding, EmbeddingStatus, Item, Modality
from search.storage import spaces


class DuplicateContent(MediaRejected):
    code = "duplicate"


class EmbeddingUnavailable(MediaRejected):
    code = "embedding_failed"


def replace_text(item: Item, text: str) -> Item:
    """Give a text item a new body; returns it refreshed. Raises MediaRejected (nothing changed)."""
    if item.modality != Modality.TEXT:
        raise MediaRejected("only a text item's body can be replaced; a caption is edited as a field")
    text = clean_text(text, what="text")
    if text == item.text:
        return item
    # A plain text is identified by its words; a document by its file, which does not change.
    sha = item.sha256 if item.media else text_sha256(text)
    if Item.objects.filter(sha256=sha).exclude(pk=item.pk).exists():
        raise DuplicateContent("this text is stored already as another item")
    encoded = []
    for name in settings.SEARCH_SPACES:
        encoder = spaces.get_encoder(name)
        if not encoder.can_embed(Modality.TEXT):
            continue
        space = spaces.register(name)
        [result] = encode_batch(encoder, Modality.TEXT, [text])
        if isinstance(result, Exception):
            raise EmbeddingUnavailable(f"the new text could not be embedded in {name!r}, so nothing changed: {result}")
        encoded.append((space, result))
    try:
        with transaction.atomic():
            Item.objects.select_for_update().filter(pk=item.pk).update(
                text=text, sha256=sha, byte_size=item.byte_size if item.media else len(text.encode("utf-8")),
                # A document's page offsets no longer point into an edited text.
                text_pages=None, embedding_status=EmbeddingStatus.DONE, embedding_error="",
            )
            for space, vectors in encoded:
                Embedding.objects.filter(item_id=item.pk, space=space).delete()
                write_vectors(space, [(item.pk, vectors)])
    except IntegrityError as exc:  # the same text stored by someone else meanwhile
        raise DuplicateContent("this text is stored already as another item") from exc
    item.refresh_from_db()
    return item


__all__ = ["DuplicateContent", "EmbeddingUnavailable", "EncoderError", "replace_text"]
