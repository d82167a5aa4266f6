"""Start-up guards: the database must have pgvector >= 0.8 (iterative index scans) and room for our
connection pool; a production server must have its static files collected."""

import logging
import threading
from pathlib import Path

from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured

logger = logging.getLogger(__name__)

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
                " (SELECT default_version FROM pg_available_extensions WHERE name = 'vector'),"
                " current_setting('max_connections')::int - current_setting('superuser_reserved_connections')::int"
            )
            installed, available, usable = cursor.fetchone()
        problem = pgvector_problem(installed, available)
        if problem:
            raise PgvectorMissing(problem)
        warning = pool_problem(connection.settings_dict, usable)
        if warning:
            logger.warning(warning)
        _checked.add(connection.alias)


def pool_problem(settings_dict: dict, usable_connections: int) -> str | None:
    """Say so when the pools of all server processes could ask for more connections than the server allows."""
    pool = (settings_dict.get("OPTIONS") or {}).get("pool")
    if not pool:
        return None
    wanted = (pool.get("max_size") or 4) * settings.DB_SERVER_PROCESSES if isinstance(pool, dict) else 4
    # Leave room for management commands, the admin shell and a few other clients.
    if wanted + 5 > usable_connections:
        return (
            f"the connection pools may open {wanted} connections but the server allows {usable_connections} "
            "(max_connections - superuser_reserved_connections): lower DJANGO_DB_POOL_MAX_SIZE or raise "
            "max_connections"
        )
    return None


def static_files_problem() -> str | None:
    """In production WhiteNoise serves the collected, hashed files: without them every page is a 500."""
    if not settings.PRODUCTION:
        return None
    manifest = Path(settings.STATIC_ROOT) / "staticfiles.json"
    if manifest.exists():
        return None
    return (
        f"static files are not collected (no {manifest}): run `python manage.py collectstatic --noinput` "
        "before starting the server"
    )


def require_collected_static() -> None:
    """Called by the WSGI/ASGI entry points: refuse to start rather than answer every page with a 500."""
    problem = static_files_problem()
    if problem:
        raise ImproperlyConfigured(problem)


@checks.register(checks.Tags.staticfiles)
def check_static_files(app_configs=None, **kwargs):
    # A warning, not an error: an error would stop `collectstatic` itself from running.
    problem = static_files_problem()
    return [checks.Warning(problem, id="search.W001")] if problem else []
