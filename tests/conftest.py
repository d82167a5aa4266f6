import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Test output (screenshots, logs) lives in one ignored folder.
OUTPUT_DIR = ROOT / "test-output"


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix):
    """Give each test run its own database, so runs side by side on one embedded server never collide."""
    from django.conf import settings

    test = settings.DATABASES["default"].setdefault("TEST", {})
    test["NAME"] = f"{test.get('NAME') or 'test_search'}_{os.getpid()}"


@pytest.fixture(scope="session")
def output_dir() -> Path:
    OUTPUT_DIR.mkdir(exist_ok=True)
    return OUTPUT_DIR


@pytest.fixture(autouse=True)
def _media_root(settings, tmp_path):
    # Each test writes media into its own folder, so no test sees another's files.
    settings.MEDIA_ROOT = tmp_path / "media"


def run_manage(*args: str, env: dict | None = None, timeout: int = 120):
    """Run manage.py in a child process with this interpreter, as a user would."""
    import subprocess

    full_env = {**os.environ, **(env or {})}
    # The browser tests allow sync ORM calls from Playwright's event loop in this process only.
    full_env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    return subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args],
        cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=timeout,
    )
