"""Settings come from the environment; production refuses unsafe values."""

import pytest
from django.core.exceptions import ImproperlyConfigured

from search.runtime.env import env_bool, env_int, env_list, parse_database_url
from tests.conftest import run_manage


def test_typed_helpers_parse_and_reject(monkeypatch):
    monkeypatch.setenv("X_BOOL", "yes")
    monkeypatch.setenv("X_INT", "42")
    monkeypatch.setenv("X_LIST", "a.example, b.example ,")
    assert env_bool("X_BOOL") is True
    assert env_int("X_INT", 1) == 42
    assert env_list("X_LIST", []) == ["a.example", "b.example"]
    assert env_int("X_UNSET", 7) == 7
    monkeypatch.setenv("X_BOOL", "maybe")
    with pytest.raises(ImproperlyConfigured, match="X_BOOL='maybe' is not a boolean"):
        env_bool("X_BOOL")
    monkeypatch.setenv("X_INT", "4o")
    with pytest.raises(ImproperlyConfigured, match="X_INT='4o' is not an integer"):
        env_int("X_INT", 1)
    with pytest.raises(ImproperlyConfigured, match=">= 100"):
        monkeypatch.setenv("X_INT", "5")
        env_int("X_INT", 1, minimum=100)


def test_database_url_is_parsed():
    db = parse_database_url("postgres://alice:p%40ss@db.internal:6543/search?sslmode=require")
    assert db["ENGINE"] == "django.db.backends.postgresql"
    assert (db["NAME"], db["USER"], db["PASSWORD"], db["HOST"], db["PORT"]) == (
        "search", "alice", "p@ss", "db.internal", "6543"
    )
    assert db["OPTIONS"] == {"sslmode": "require"}
    socket = parse_database_url("postgresql:///search?host=/run/postgresql")
    assert socket["HOST"] == "/run/postgresql"


@pytest.mark.parametrize("url", ["mysql://u@h/db", "postgres://u@h:5432/"])
def test_bad_database_url_is_refused(url):
    with pytest.raises(ImproperlyConfigured):
        parse_database_url(url)


def test_production_refuses_to_start_without_a_secret_key():
    result = run_manage("check", env={"DJANGO_PRODUCTION": "1", "DJANGO_SECRET_KEY": "", "DJANGO_ALLOWED_HOSTS": "x"})
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY must be set in production" in result.stderr


def test_production_refuses_a_weak_secret_key():
    env = {"DJANGO_PRODUCTION": "1", "DJANGO_SECRET_KEY": "secret", "DJANGO_ALLOWED_HOSTS": "x"}
    result = run_manage("check", env=env)
    assert result.returncode != 0
    assert "too weak for production" in result.stderr


def test_unknown_default_space_is_refused():
    result = run_manage("check", env={"SEARCH_DEFAULT_SPACE": "nope"})
    assert result.returncode != 0
    assert "SEARCH_DEFAULT_SPACE='nope' is not one of the configured spaces" in result.stderr


PRODUCTION_ENV = {"DJANGO_PRODUCTION": "1", "DJANGO_SECRET_KEY": "k" * 30 + "0123456789abcdefghijklmnopqrstuvwxyz",
                  "DJANGO_ALLOWED_HOSTS": "search.example.com"}


def _python(code: str, env: dict):
    import os
    import subprocess
    import sys

    from tests.conftest import ROOT

    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**os.environ, **env}, capture_output=True,
                          text=True, timeout=120)


def test_production_refuses_to_start_without_collected_static_files(tmp_path):
    env = {**PRODUCTION_ENV, "DJANGO_STATIC_ROOT": str(tmp_path / "static")}
    started = _python("import search.wsgi", env)
    assert started.returncode != 0
    assert "collectstatic --noinput" in started.stderr
    assert "collectstatic" in run_manage("check", env=env).stderr  # the check says so too, as a warning
    collected = run_manage("collectstatic", "--noinput", env=env)
    assert collected.returncode == 0, collected.stderr
    # The not-found page uses the site's layout and its hashed static files, and needs no database.
    page = _python("import search.wsgi; from django.test import Client; print(Client(raise_request_exception=False)"
                   ".get('/no-such-page/', HTTP_HOST='search.example.com', secure=True).status_code)", env)
    assert page.stdout.strip().endswith("404"), page.stderr[-2000:]


@pytest.mark.parametrize(("behind_proxy", "secure"), [("0", "False"), ("1", "True")])
def test_the_forwarded_proto_header_is_trusted_only_behind_a_declared_proxy(behind_proxy, secure):
    code = ("import django; django.setup(); from django.test import RequestFactory; "
            "print(RequestFactory().get('/', HTTP_X_FORWARDED_PROTO='https').is_secure())")
    result = _python(code, {**PRODUCTION_ENV, "DJANGO_BEHIND_TLS_PROXY": behind_proxy,
                            "DJANGO_SETTINGS_MODULE": "search.settings"})
    assert result.stdout.strip() == secure, result.stderr[-2000:]


@pytest.mark.parametrize("env, message", [
    ({"SEARCH_MEDIA_BACKEND": "ftp"}, "SEARCH_MEDIA_BACKEND='ftp' must be 'local' or 's3'"),
    ({"SEARCH_MEDIA_BACKEND": "s3", "AWS_STORAGE_BUCKET_NAME": ""}, "needs AWS_STORAGE_BUCKET_NAME"),
    ({"SEARCH_CACHE_URL": "memcached://h:11211"}, "must be a redis://, rediss:// or unix:// URL"),
])
def test_media_and_cache_settings_are_checked_at_start(env, message):
    result = run_manage("check", env=env)
    assert result.returncode != 0 and message in result.stderr


def test_the_media_backend_and_the_shared_cache_come_from_the_environment():
    probe = ("from django.conf import settings; from django.core.files.storage import storages;"
             "from django.core.cache import caches;"
             "print(type(storages['default']).__name__, settings.SEARCH_S3_OPTIONS['endpoint_url'],"
             "type(caches['default']).__name__)")
    s3 = run_manage("shell", "-c", probe, env={
        "SEARCH_MEDIA_BACKEND": "s3", "AWS_STORAGE_BUCKET_NAME": "b", "AWS_S3_ENDPOINT_URL": "http://minio:9000",
        "SEARCH_CACHE_URL": "redis://cache:6379/0"})
    # The last line: Django's shell first says how many objects it imported.
    assert s3.stdout.splitlines()[-1].split() == ["MediaS3Storage", "http://minio:9000", "RedisCache"], s3.stderr
    local = run_manage("shell", "-c", probe)
    assert local.stdout.splitlines()[-1].split() == ["FileSystemStorage", "None", "PostgresCache"], local.stderr
