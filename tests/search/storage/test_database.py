"""The database the product runs on: real PostgreSQL, pgvector >= 0.8, migrations complete."""

import pytest
from django.db import connection

from search.runtime.checks import pgvector_problem
from tests.conftest import run_manage

pytestmark = pytest.mark.django_db


def test_runs_on_postgresql_with_pgvector_0_8_or_newer():
    assert connection.vendor == "postgresql"
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version_num")
        assert int(cursor.fetchone()[0]) >= 160000
        cursor.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        version = tuple(int(p) for p in cursor.fetchone()[0].split("."))
    assert version >= (0, 8, 0)


def test_tests_use_their_own_database():
    assert connection.settings_dict["NAME"].startswith("test_")


def test_no_migration_is_pending():
    result = run_manage("makemigrations", "--check", "--dry-run")
    assert result.returncode == 0, result.stdout + result.stderr


def test_system_check_is_clean():
    result = run_manage("check")
    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout


@pytest.mark.parametrize(
    ("installed", "available", "expected"),
    [
        ("0.8.0", "0.8.0", None),
        ("0.8.5", "0.8.5", None),
        (None, "0.8.1", None),  # the initial migration will create it
        ("0.7.4", "0.8.0", "ALTER EXTENSION vector UPDATE"),
        ("0.5.1", "0.5.1", "pgvector 0.5.1 is too old"),
        (None, None, "has no pgvector extension"),
        (None, "0.6.0", "upgrade the pgvector package"),
    ],
)
def test_pgvector_version_guard_says_what_to_install(installed, available, expected):
    problem = pgvector_problem(installed, available)
    if expected is None:
        assert problem is None
    else:
        assert expected in problem
