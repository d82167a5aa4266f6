"""Registration of the configured embedding spaces in the database, and their HNSW indexes.

A space's name is bound to one encoder identity for its lifetime: vectors from two models
never share a space. A configured encoder whose identity differs from the stored one is
refused until its vectors are rebuilt (`manage.py embed --space NAME --reset`).

A space stores half-precision vectors unless its settings say `"PRECISION": "full"`;
changing it converts the stored vectors and rebuilds the index (full precision regained
from half needs `embed --reset`: the extra bits were never stored).
"""

import contextlib
import logging
import sys
import time

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connection, transaction

import encoders
from search.models import HNSW_INDEX_PREFIX, EmbeddingSpace, Precision
from search.storage import knn

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


def configured_precision(name: str) -> str:
    value = str(settings.SEARCH_SPACES.get(name, {}).get("PRECISION", Precision.HALF)).lower()
    if value not in Precision.values:
        choices = ", ".join(Precision.values)
        raise ImproperlyConfigured(f"space {name!r}: PRECISION must be one of {choices}, not {value!r}")
    return value


def register(name: str, *, allow_identity_change: bool = False) -> EmbeddingSpace:
    """Create or validate the row for a configured space and make sure its HNSW index exists."""
    encoder = get_encoder(name)
    precision = configured_precision(name)
    # The common case, every search: the row and whether its index is there, in one statement written
    # out (a queryset is compiled anew on each call, which cost more than running it).
    known = next(iter(EmbeddingSpace.objects.raw(
        f"SELECT *, to_regclass(%s || id) IS NOT NULL AS indexed, {FINGERPRINT_SQL} AS fingerprint"
        " FROM search_embeddingspace s WHERE name = %s",
        [HNSW_INDEX_PREFIX, name])), None)
    if (known is not None and known.identity == encoder.identity and known.precision == precision
            and sorted(known.modalities) == sorted(encoder.modalities) and known.indexed):
        return known
    with transaction.atomic():
        space, created = EmbeddingSpace.objects.select_for_update().get_or_create(
            name=name,
            defaults={
                "identity": encoder.identity,
                "dimension": encoder.dim,
                "metric": encoder.metric,
                "modalities": sorted(encoder.modalities),
                "precision": precision,
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
        if space.precision != precision:
            set_precision(space, precision)
    ensure_index(space)
    return space


# What tells a kept space row from a changed one: a hash of the whole row (its calibration included).
FINGERPRINT_SQL = "md5(s::text)"

_kept: dict[str, EmbeddingSpace] = {}  # name -> the row a search last read, with its fingerprint
# name -> when a row read anew confirmed that the space holds nothing a search wants (see recently_found_empty)
_found_empty: dict[str, float] = {}
EMPTY_RECHECK_SECONDS = 5.0


def searchable(name: str) -> EmbeddingSpace:
    """The row of a configured space for a search, kept between searches: reading it was one statement of
    every search. The search checks the kept row's fingerprint in its own statement
    (search.engine.ranking_batch.run) and calls `forget` and runs again when the row changed."""
    kept = _kept.get(name)
    if kept is not None:
        encoder = get_encoder(name)
        if (kept.identity == encoder.identity and kept.precision == configured_precision(name)
                and sorted(kept.modalities) == sorted(encoder.modalities)):
            return kept
    space = register(name)
    if getattr(space, "fingerprint", None):  # read by the common path; a row just created is read again next time
        _kept[name] = space
    return space


def is_kept(space: EmbeddingSpace) -> bool:
    """Whether this row object is the one kept for searches (and so may have gone stale)."""
    return _kept.get(space.name) is space


def forget(name: str | None = None) -> None:
    """Drop the kept rows (all, or one space's): after the row was written here, or found changed."""
    if name is None:
        _kept.clear()
        _found_empty.clear()
    else:
        _kept.pop(name, None)
        _found_empty.pop(name, None)


def found_empty(name: str) -> None:
    """A row read anew says the space holds nothing a search wants (search.engine.search_service._eligible)."""
    _found_empty[name] = time.monotonic()


def recently_found_empty(name: str) -> bool:
    """Whether a row read anew found the space empty in the last EMPTY_RECHECK_SECONDS: a configured space that
    holds nothing yet (a text space before the first words) was read again on every search, two statements."""
    at = _found_empty.get(name)
    return at is not None and time.monotonic() - at < EMPTY_RECHECK_SECONDS


def set_precision(space: EmbeddingSpace, precision: str) -> None:
    """Convert a space's stored vectors to another precision; its index is rebuilt by ensure_index."""
    drop_index(space)
    with connection.cursor() as cursor:
        if precision == Precision.FULL:
            logger.warning("space %r: full precision from stored half-precision vectors; "
                           "`manage.py embed --space %s --reset` re-encodes at full precision", space.name, space.name)
            cursor.execute("UPDATE search_embedding SET vector_full = vector::vector WHERE space_id = %s", [space.pk])
        else:
            cursor.execute("UPDATE search_embedding SET vector = vector_full::halfvec, vector_full = NULL"
                           " WHERE space_id = %s AND vector_full IS NOT NULL", [space.pk])
    space.precision = precision
    space.save(update_fields=["precision"])


def index_sql(space: EmbeddingSpace) -> str:
    m, ef_construction = settings.SEARCH_HNSW_M, settings.SEARCH_HNSW_EF_CONSTRUCTION
    return (
        f"CREATE INDEX IF NOT EXISTS {space.index_name} ON search_embedding "
        f"USING hnsw (({knn.column_sql(space)}) {knn.opclass(space)}) "
        f"WITH (m = {int(m)}, ef_construction = {int(ef_construction)}) "
        f"WHERE space_id = {int(space.pk)} AND (segment_start IS NULL OR passage)"
    )


def build_memory_mb(space: EmbeddingSpace, rows: int) -> int:
    """Maintenance memory for building the space's graph in memory (pgvector falls back to a much
    slower on-disk build when it does not fit): each element's vector, its neighbour lists, overhead."""
    per_element = knn.bytes_per_vector(space) + 2 * settings.SEARCH_HNSW_M * 8 + 160
    return int(rows * per_element * 1.2 / 2**20) + 64


# Advisory lock namespace for a space's index: held by a bulk load for its duration, and by a build.
INDEX_LOCK = 0x5EA4C1


def ensure_index(space: EmbeddingSpace) -> None:
    """Build the space's index if it is missing, unless a bulk load (here or in another process) is filling
    the space: it builds the index itself when done, and searches scan exactly until then."""
    if space.pk in _loading or index_exists(space):
        return
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s, %s)", [INDEX_LOCK, int(space.pk)])
        if not cursor.fetchone()[0]:
            return  # another process is loading this space or building its index
        cursor.execute("SELECT count(*) FROM search_embedding WHERE space_id = %s"
                       " AND (segment_start IS NULL OR passage)", [space.pk])
        rows = cursor.fetchone()[0]
        # The server's maintenance_work_mem (derived from the machine for the embedded one) unless this
        # graph needs more; parallel workers as the server allows. A space that is a small part of a large
        # table would otherwise be built by one process.
        cursor.execute("SELECT pg_size_bytes(current_setting('maintenance_work_mem')) / 1048576")
        if cursor.fetchone()[0] < build_memory_mb(space, rows):
            cursor.execute(f"SET LOCAL maintenance_work_mem = '{build_memory_mb(space, rows)}MB'")
        cursor.execute("SET LOCAL min_parallel_table_scan_size = 0")
        # CREATE INDEX refuses to run with deferred foreign-key checks queued by rows written earlier in
        # the same transaction (a bulk load): run those checks now, then defer again as Django's are.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute(index_sql(space))
        cursor.execute("SET CONSTRAINTS ALL DEFERRED")


@contextlib.contextmanager
def bulk_load(space: EmbeddingSpace, rows: int):
    """Load `rows` vectors into a space with its index built once afterwards instead of row by row.

    Building after the load is faster whenever the load is large against what the space holds
    (measured in docs/benchmarks.md: 578 vectors/s with the index live against 3,778 with it
    rebuilt after); for a small addition to a large space the live index is cheaper, so it stays.
    Searches of this space during the load scan exactly.
    """
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM search_embedding WHERE space_id = %s", [space.pk])
        existing = cursor.fetchone()[0]
    rebuild = rows >= BULK_LOAD_MIN_ROWS and rows >= existing
    if not rebuild:
        yield False
        return
    with connection.cursor() as cursor:
        # Session-level: other processes' ensure_index leave the space alone until the load is done.
        cursor.execute("SELECT pg_advisory_lock(%s, %s)", [INDEX_LOCK, int(space.pk)])
    _loading.add(space.pk)
    try:
        drop_index(space)
        yield True
    finally:
        _loading.discard(space.pk)
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [INDEX_LOCK, int(space.pk)])
        ensure_index(space)


_loading: set[int] = set()  # spaces this process is bulk-loading


# Below this many rows the index is kept live during a load: dropping and rebuilding cannot pay off.
BULK_LOAD_MIN_ROWS = 10_000


def drop_index(space: EmbeddingSpace) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"DROP INDEX IF EXISTS {space.index_name}")


def index_exists(space: EmbeddingSpace) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [space.index_name])
        return cursor.fetchone()[0]


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
