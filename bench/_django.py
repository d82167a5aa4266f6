"""Shared set-up for benchmarks that touch the product: a separate database and media folder."""

import os
import platform
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "benchmarks"


def setup(db_name: str = "bench_search") -> Path:
    """Configure Django against a fresh database of its own on the embedded server; returns the media folder.

    Each benchmark starts from an empty database: nothing an earlier run (or an earlier model) left
    behind can skew its figures or meet a refused encoder identity.
    """
    sys.path.insert(0, str(ROOT))
    media = Path(tempfile.mkdtemp(prefix="bench-media-"))
    os.environ.setdefault("SEARCH_DB_NAME", db_name)
    os.environ["DJANGO_MEDIA_ROOT"] = str(media)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "search.settings")
    import django
    from django.core.management import call_command

    django.setup()
    from django.db import connection

    with connection._nodb_cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{connection.settings_dict["NAME"]}" WITH (FORCE)')
    call_command("migrate", verbosity=0)
    return media


def machine() -> str:
    import torch

    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, "
        f"Python {platform.python_version()}, torch {torch.__version__} "
        f"({'CUDA' if torch.cuda.is_available() else 'CPU'}, {torch.get_num_threads()} threads)"
    )


def write_fragment(name: str, text: str, out: str | None = None) -> Path:
    """Write a report to docs/benchmarks/<name>, or to `out` (smoke runs point it at a scratch folder)."""
    path = Path(out) if out else DOCS / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path
