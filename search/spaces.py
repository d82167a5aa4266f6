"""Registration of the configured embedding spaces in the database, and their HNSW indexes.

A space's name is bound to one encoder identity for its lifetime: vectors from two models
never share a space. A configured encoder whose identity differs from the stored one is
refused until its vectors are rebuilt (`manage.py embed --space NAME --reset`).
"""

import logging
import sys

from django.conf import settings
from django.db import connection, transaction

import encoders
from search.models import EmbeddingSpace

logger = logging.getLogger(__name__)


class SpaceIdentityMismatch(RuntimeError):
    def __init__(self, name: str, stored: str, configured: str):
        super().__init__(
            f"space {name!r} holds vectors made by {stored!r}, but the configured encoder is {configured!r}; "
            f"rebuild it with `manage.py embed --space {name} --reset`, or configure the new model under a new name"
        )
        self.name, self.stored, self.configured = name, stored, configured


def get_encoder(name: str | None = None):
    """The encoder behind a configured space (the registry is configured from settings at start)."""
    return encoders.get_space(name or settings.SEARCH_DEFAULT_SPACE)


def configured_names() -> list[str]:
    return list(settings.SEARCH_SPACES)


def register(name: str, *, allow_identity_change: bool = False) -> EmbeddingSpace:
    """Create or validate the row for a configured space and make sure its HNSW index exists."""
    encoder = get_encoder(name)
    known = EmbeddingSpace.objects.filter(name=name).first()
    if (known is not None and known.identity == encoder.identity
            and sorted(known.modalities) == sorted(encoder.modalities) and index_exists(known)):
        return known  # the common case: two cheap reads per call
    with transaction.atomic():
        space, created = EmbeddingSpace.objects.select_for_update().get_or_create(
            name=name,
            defaults={
                "identity": encoder.identity,
                "dimension": encoder.dim,
                "metric": encoder.metric,
                "modalities": sorted(encoder.modalities),
            },
        )
        if not created and space.identity != encoder.identity:
            if not allow_identity_change:
                raise SpaceIdentityMismatch(name, space.identity, encoder.identity)
            # The caller is rebuilding the space: its old vectors are meaningless now.
            space.embeddings.all().delete()
            drop_index(space)
            space.identity, space.dimension = encoder.identity, encoder.dim
            space.metric, space.modalities = encoder.metric, sorted(encoder.modalities)
            space.save()
        elif sorted(space.modalities) != sorted(encoder.modalities):
            space.modalities = sorted(encoder.modalities)
            space.save(update_fields=["modalities"])
    ensure_index(space)
    return space


def ensure_index(space: EmbeddingSpace) -> None:
    if index_exists(space):
        return
    m, ef_construction = settings.SEARCH_HNSW_M, settings.SEARCH_HNSW_EF_CONSTRUCTION
    with transaction.atomic(), connection.cursor() as cursor:
        # Parallel build: vectors live in TOAST, so the table looks small and the planner would
        # otherwise build with one worker; the graph must also fit in maintenance memory.
        cursor.execute("SET LOCAL maintenance_work_mem = '512MB'")
        cursor.execute("SET LOCAL max_parallel_maintenance_workers = 2")
        cursor.execute("SET LOCAL min_parallel_table_scan_size = 0")
        cursor.execute(
            f"CREATE INDEX IF NOT EXISTS {space.index_name} ON search_embedding "
            f"USING hnsw ((vector::vector({int(space.dimension)})) vector_cosine_ops) "
            f"WITH (m = {int(m)}, ef_construction = {int(ef_construction)}) "
            f"WHERE space_id = {int(space.pk)} AND segment_start IS NULL"
        )


def drop_index(space: EmbeddingSpace) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"DROP INDEX IF EXISTS {space.index_name}")


def index_exists(space: EmbeddingSpace) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_indexes WHERE indexname = %s", [space.index_name])
        return cursor.fetchone() is not None


def registered_spaces() -> list[EmbeddingSpace]:
    """Every configured space that can be used now, registered if it was not yet."""
    usable = []
    for name in configured_names():
        try:
            usable.append(register(name))
        except (SpaceIdentityMismatch, encoders.EncoderError) as exc:
            logger.warning("space %r is not usable: %s", name, exc)
    return usable


def sync_after_migrate(sender, using="default", verbosity=1, **kwargs):
    """post_migrate hook: `migrate` registers every configured space and builds its index."""
    for name in settings.SEARCH_SPACES:
        try:
            space = register(name)
        except (SpaceIdentityMismatch, encoders.EncoderError) as exc:
            # Migrating must not fail because a model file changed or is missing; using the space says why.
            print(f"warning: space {name!r} not registered: {exc}", file=sys.stderr)
            continue
        if verbosity >= 1:
            print(f"  Space {space.name!r}: dim {space.dimension}, {space.identity}, index {space.index_name}")
