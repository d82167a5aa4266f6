"""(Re)computing one space's vectors for stored items: backfills, retries and rebuilds.

Resumable by construction: each batch commits its vectors with the items' new status, and
`missing_only` picks up exactly the items that still lack a vector in the space.
"""

from collections.abc import Callable, Iterator

from django.db import transaction
from django.db.models import Exists, OuterRef

from search.ingest.item_vectors import encode_batch, load_content, write_vectors
from search.models import Embedding, EmbeddingSpace, EmbeddingStatus, Item
from search.storage import spaces


def items_to_embed(space: EmbeddingSpace, *, missing_only: bool, modalities=None):
    wanted = [m for m in space.modalities if not modalities or m in modalities]
    # A scan whose pages have not been read yet has nothing to embed (search.ingest.extraction embeds it).
    items = Item.objects.filter(modality__in=wanted).exclude(modality="text", text="", extracted_text="").order_by("id")
    if missing_only:
        has_vector = Embedding.objects.filter(item=OuterRef("pk"), space=space, segment_start__isnull=True)
        items = items.exclude(Exists(has_vector))
    return items


def _batches(queryset, size: int) -> Iterator[list[Item]]:
    last_id = 0
    while True:
        batch = list(queryset.filter(id__gt=last_id)[:size])
        if not batch:
            return
        yield batch
        last_id = batch[-1].id


def embed_space(
    name: str,
    *,
    missing_only: bool = True,
    reset: bool = False,
    batch_size: int = 32,
    on_batch: Callable[[int], None] | None = None,
    modalities=None,
) -> dict[str, int]:
    space = spaces.register(name, allow_identity_change=reset)
    encoder = spaces.get_encoder(name)
    queryset = items_to_embed(space, missing_only=missing_only, modalities=modalities)
    counts = {"embedded": 0, "failed": 0}
    for batch in _batches(queryset, batch_size):
        by_modality: dict[str, list[Item]] = {}
        for item in batch:
            by_modality.setdefault(item.modality, []).append(item)
        rows, failed = [], {}
        for modality, items in by_modality.items():
            contents, loadable = [], []
            for item in items:
                try:
                    contents.append(load_content(item))
                    loadable.append(item)
                except Exception as exc:  # a missing or unreadable media file fails this item only
                    failed[item.pk] = f"{space.name}: cannot load the stored media ({exc})"
            for item, result in zip(loadable, encode_batch(encoder, modality, contents), strict=True):
                if isinstance(result, Exception):
                    failed[item.pk] = f"{space.name}: {result}"
                else:
                    rows.append((item.pk, result))
        with transaction.atomic():
            Embedding.objects.filter(space=space, item_id__in=[pk for pk, _ in rows]).delete()
            write_vectors(space, rows)
            done_ids = [pk for pk, _ in rows]
            _settle_status(done_ids)
            for pk, reason in failed.items():
                Item.objects.filter(pk=pk).update(
                    embedding_status=EmbeddingStatus.FAILED, embedding_error=reason[:2000]
                )
        counts["embedded"] += len(rows)
        counts["failed"] += len(failed)
        if on_batch:
            on_batch(len(batch))
    return counts


def _settle_status(item_ids: list[int]) -> None:
    """Mark items done once every configured space that can embed them holds their vector."""
    if not item_ids:
        return
    registered = list(EmbeddingSpace.objects.filter(name__in=spaces.configured_names()))
    for item in Item.objects.filter(pk__in=item_ids).only("id", "modality"):
        needed = {s.pk for s in registered if item.modality in s.modalities}
        have = set(
            Embedding.objects.filter(item=item, segment_start__isnull=True, space_id__in=needed)
            .values_list("space_id", flat=True)
        )
        if needed <= have:
            Item.objects.filter(pk=item.pk).update(embedding_status=EmbeddingStatus.DONE, embedding_error="")
