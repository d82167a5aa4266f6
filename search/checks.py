"""Start-up guard: the database must have pgvector >= 0.8 (iterative index scans)."""

import threading

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

_checked: set[str] = set()
_lock = threading.Lock()


class PgvectorMissing(ImproperlyConfigured):
    pass


def _parse(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split(".") if part.isdigit())


def pgvector_problem(installed: str | None, available: str | None) -> str | None:
    """Return why this database cannot serve us, or None when it can."""
    minimum = settings.PGVECTOR_MIN_VERSION
    wanted = ".".join(map(str, minimum))
    if installed is not None:
        if _parse(installed) >= minimum:
            return None
        if available is not None and _parse(available) >= minimum:
            return (
                f"pgvector {installed} is installed in this database but >= {wanted} is required; "
                f"{available} is available: run ALTER EXTENSION vector UPDATE;"
            )
        return (
            f"pgvector {installed} is too old: >= {wanted} is required. Install a newer pgvector on the "
            "PostgreSQL server (e.g. apt install postgresql-<major>-pgvector, or build from "
            "github.com/pgvector/pgvector), then run ALTER EXTENSION vector UPDATE;"
        )
    if available is None:
        return (
            f"the PostgreSQL server has no pgvector extension: install pgvector >= {wanted} on it "
            "(e.g. apt install postgresql-<major>-pgvector), or unset DATABASE_URL to use the embedded database"
        )
    if _parse(available) < minimum:
        return f"the server offers pgvector {available}, but >= {wanted} is required: upgrade the pgvector package"
    return None


def check_pgvector_on_connect(sender, connection, **kwargs):
    if connection.vendor != "postgresql" or connection.alias in _checked:
        return
    with _lock:
        if connection.alias in _checked:
            return
        with connection.connection.cursor() as cursor:
            cursor.execute(
                "SELECT (SELECT extversion FROM pg_extension WHERE extname = 'vector'),"
                " (SELECT default_version FROM pg_available_extensions WHERE name = 'vector')"
            )
            installed, available = cursor.fetchone()
        problem = pgvector_problem(installed, available)
        if problem:
            raise PgvectorMissing(problem)
        _checked.add(connection.alias)
