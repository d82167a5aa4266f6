"""Settings for the multimodal search product.

Everything deployment-specific comes from the environment through the typed helpers in
search/runtime/env.py. The defaults run a fresh checkout locally with nothing to configure: an
embedded PostgreSQL in var/pgdata, media in var/media, and the shipped demo model.
"""

import json
import os
import secrets
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from search.runtime.env import env_bool, env_float, env_int, env_list, env_str, parse_database_url

# ONNX Runtime (the OCR and speech models, search.ingest.extraction) sends telemetry unless this is set before it is
# first imported; every process of the product loads these settings first (web, job workers, commands).
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("SEARCH_VAR_DIR", str(BASE_DIR / "var"))).resolve()
# Models converted from their shipped weights, kept between processes (a text space's ONNX export for its queries,
# encoders/text_onnx.py); encoders/ reads it from the environment, as it reads $HF_HUB_CACHE.
os.environ.setdefault("SEARCH_MODEL_CACHE", str(VAR_DIR / "models"))

# Production is an explicit choice; it turns every "convenient default" below into an error.
PRODUCTION = env_bool("DJANGO_PRODUCTION", False)
DEBUG = env_bool("DJANGO_DEBUG", False)
if PRODUCTION and DEBUG:
    raise ImproperlyConfigured("DJANGO_DEBUG must be off when DJANGO_PRODUCTION is on")


def _secret_key() -> str:
    key = env_str("DJANGO_SECRET_KEY")
    if key:
        if PRODUCTION and (len(key) < 50 or key.startswith("django-insecure") or len(set(key)) < 5):
            raise ImproperlyConfigured("DJANGO_SECRET_KEY is too weak for production: use 50+ random characters")
        return key
    if PRODUCTION:
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY must be set in production, e.g. "
            "python -c 'import secrets; print(secrets.token_urlsafe(64))'"
        )
    # Local use: a random key generated once and kept beside the data, never a key in git.
    key_file = VAR_DIR / "secret_key"
    if not key_file.exists():
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        key_file.write_text(secrets.token_urlsafe(64))
        key_file.chmod(0o600)
    return key_file.read_text().strip()


SECRET_KEY = _secret_key()
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", [] if PRODUCTION else ["127.0.0.1", "localhost", "[::1]"])
if PRODUCTION and not ALLOWED_HOSTS:
    raise ImproperlyConfigured("DJANGO_ALLOWED_HOSTS must list the host names this server answers to")
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    # Before WhiteNoise: our runserver (a deeper listen backlog) extends WhiteNoise's.
    "search",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    # The background job queue, in the same PostgreSQL (see docs/architecture.md, "Background jobs").
    "procrastinate.contrib.django",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
]

MIDDLEWARE = [
    # First, so the request id and the latency cover everything below (search/runtime/logs.py and metrics.py).
    "search.runtime.logs.RequestIdMiddleware",
    "search.runtime.metrics.MetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "search.runtime.guards.RequestGuardMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "search.runtime.guards.ErrorMappingMiddleware",
    # Innermost, so a failed replica under a read-only request is retried on the primary (search/storage/replicas/).
    "search.storage.replicas.middleware.ReplicaRoutingMiddleware",
]

ROOT_URLCONF = "search.urls"
WSGI_APPLICATION = "search.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# Database: an external server when DATABASE_URL is set, else the embedded one.
DATABASE_URL = env_str("DATABASE_URL")
if DATABASE_URL:
    _default_db = parse_database_url(DATABASE_URL)
else:
    _default_db = {
        "ENGINE": "search.storage.pgembedded",
        "NAME": env_str("SEARCH_DB_NAME", "search"),
        "USER": "postgres",
        "PGDATA": str(Path(env_str("SEARCH_PGDATA", str(VAR_DIR / "pgdata"))).resolve()),
        # Server settings that override the ones search/storage/embedded_server.py derives from the machine.
        "TUNING": {
            "shared_buffers": env_str("SEARCH_PG_SHARED_BUFFERS"),
            "effective_cache_size": env_str("SEARCH_PG_EFFECTIVE_CACHE_SIZE"),
            "maintenance_work_mem": env_str("SEARCH_PG_MAINTENANCE_WORK_MEM"),
            "max_parallel_maintenance_workers": env_str("SEARCH_PG_PARALLEL_BUILD_WORKERS"),
        },
    }
# Django's own psycopg 3 connection pool: a request borrows a connection and gives it back when it ends,
# so a burst of concurrent requests (one thread each under the development server) waits for one of
# DJANGO_DB_POOL_MAX_SIZE connections instead of opening one per thread until PostgreSQL refuses
# (its max_connections, 100 by default, is shared by every process: keep workers x max size below it;
# `manage.py check` warns otherwise). DJANGO_DB_POOL=0 turns it off: then DJANGO_CONN_MAX_AGE applies.
DB_POOL = env_bool("DJANGO_DB_POOL", True)
if DB_POOL:
    _default_db.setdefault("OPTIONS", {})["pool"] = {
        "min_size": env_int("DJANGO_DB_POOL_MIN_SIZE", 1, minimum=0),
        "max_size": env_int("DJANGO_DB_POOL_MAX_SIZE", 16, minimum=1),
        # How long a request waits for a free connection before it gets a 503 with Retry-After.
        "timeout": env_float("DJANGO_DB_POOL_TIMEOUT", 15.0),
        # Connections idle this long are closed, down to min_size.
        "max_idle": env_float("DJANGO_DB_POOL_MAX_IDLE", 120.0),
    }
    _default_db["CONN_MAX_AGE"] = 0  # the pool keeps connections; Django must hand them back
else:
    _default_db["CONN_MAX_AGE"] = env_int("DJANGO_CONN_MAX_AGE", 0, minimum=0)
# Server processes sharing the database (gunicorn workers, say): the pool check multiplies by it.
DB_SERVER_PROCESSES = env_int("DJANGO_DB_SERVER_PROCESSES", 1, minimum=1)
_default_db["CONN_HEALTH_CHECKS"] = True
_default_db["TEST"] = {"NAME": "test_" + _default_db["NAME"]}
DATABASES = {"default": _default_db}
# Read replicas (search/storage/replicas/): searches and page reads go to a streaming replica that answers and
# keeps up, writes and a client's reads just after it wrote go to the primary.
DATABASE_REPLICA_URLS = env_list("DATABASE_REPLICA_URLS", [])
SEARCH_REPLICAS = []
for _number, _url in enumerate(DATABASE_REPLICA_URLS, start=1):
    _replica = parse_database_url(_url)
    if DB_POOL:
        _replica["OPTIONS"]["pool"] = dict(_default_db["OPTIONS"]["pool"])
    _replica.update(CONN_MAX_AGE=_default_db["CONN_MAX_AGE"], CONN_HEALTH_CHECKS=True, TEST={"MIRROR": "default"})
    DATABASES[f"replica{_number}"] = _replica
    SEARCH_REPLICAS.append(f"replica{_number}")
DATABASE_ROUTERS = ["search.storage.replicas.router.ReplicaRouter"]
# Sharded vectors (search/storage/shards/, issue 30): one libpq URL per shard server, DATABASE_URL being the coordinator
# (it needs postgres_fdw). Unset: one server holds everything, as before.
DATABASE_SHARD_URLS = env_list("DATABASE_SHARD_URLS", [])
SEARCH_SHARDS = []
for _url in DATABASE_SHARD_URLS:
    try:
        SEARCH_SHARDS.append(parse_database_url(_url))
    except ImproperlyConfigured as _exc:
        raise ImproperlyConfigured(f"DATABASE_SHARD_URLS: {_exc}") from None
SEARCH_REPLICA_MAX_LAG = env_float("SEARCH_REPLICA_MAX_LAG", 5.0)  # seconds behind before the primary serves
SEARCH_REPLICA_STICKY_SECONDS = env_float("SEARCH_REPLICA_STICKY_SECONDS", 10.0)  # read-your-writes window
SEARCH_REPLICA_CHECK_SECONDS = env_float("SEARCH_REPLICA_CHECK_SECONDS", 2.0)  # how often lag is checked
SEARCH_REPLICA_RETRY_SECONDS = env_float("SEARCH_REPLICA_RETRY_SECONDS", 15.0)  # a failed replica sits out
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# The oldest pgvector that has iterative index scans, which filtered search relies on.
PGVECTOR_MIN_VERSION = (0, 8, 0)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# collectstatic output, served by WhiteNoise in production; locally WhiteNoise serves from the app folders.
STATIC_ROOT = Path(env_str("DJANGO_STATIC_ROOT", str(BASE_DIR / "staticfiles"))).resolve() if PRODUCTION else None
WHITENOISE_USE_FINDERS = not PRODUCTION
STATICFILES_DIRS = [BASE_DIR / "search" / "static"]
# Media (uploads and previews): the local disk (DJANGO_MEDIA_ROOT), or with SEARCH_MEDIA_BACKEND=s3 a private bucket in
# an S3-compatible object store that every web node and job worker reads (docs/scaling.md). Configured with
# django-storages' own names; unset keys fall back to boto3's chain (instance roles, ~/.aws). Nothing reads
# MEDIA_ROOT but the local backend: code goes through default_storage and search/storage/media_store.py.
SEARCH_MEDIA_BACKEND = env_str("SEARCH_MEDIA_BACKEND", "local").lower()
SEARCH_S3_OPTIONS = {  # also read by `manage.py move_media --to s3` while the local disk is still the default
    "bucket_name": env_str("AWS_STORAGE_BUCKET_NAME"),
    "endpoint_url": env_str("AWS_S3_ENDPOINT_URL") or None,  # MinIO, Ceph, R2...; unset: AWS itself
    "access_key": env_str("AWS_ACCESS_KEY_ID") or None,
    "secret_key": env_str("AWS_SECRET_ACCESS_KEY") or None,
    "region_name": env_str("AWS_S3_REGION_NAME") or None,
    "addressing_style": env_str("AWS_S3_ADDRESSING_STYLE") or None,  # "path" for most self-hosted stores
    "location": env_str("AWS_LOCATION"),  # a key prefix, to share a bucket
    # Names are content-addressed (search.models.media_path): the same name is the same bytes.
    "file_overwrite": True,
    # Files are served by our view after the access check, never by bucket URLs: no ACL is sent, so objects keep
    # the bucket's own (private) policy.
    "default_acl": None,
    "querystring_auth": True,
    # A file opened to be read again (re-embed, extraction) spools to disk past this, not all into memory.
    "max_memory_size": 2 * 1024 * 1024,
}
if SEARCH_MEDIA_BACKEND == "local":
    _media_storage = {"BACKEND": "django.core.files.storage.FileSystemStorage"}
elif SEARCH_MEDIA_BACKEND == "s3":
    if not SEARCH_S3_OPTIONS["bucket_name"]:
        raise ImproperlyConfigured("SEARCH_MEDIA_BACKEND=s3 needs AWS_STORAGE_BUCKET_NAME (a private bucket)")
    _media_storage = {"BACKEND": "search.storage.s3_media.MediaS3Storage", "OPTIONS": SEARCH_S3_OPTIONS}
else:
    raise ImproperlyConfigured(f"SEARCH_MEDIA_BACKEND={SEARCH_MEDIA_BACKEND!r} must be 'local' or 's3'")
# State that must agree across processes and machines (throttle counts, read-your-writes marks, map layouts): a cache
# every web process shares. By default a table in the product's own PostgreSQL (migration 0010, UNLOGGED: no WAL for
# cache writes, emptied after a crash, never on replicas; search/storage/db_cache.py counts a throttle in one
# statement); SEARCH_CACHE_URL=redis://host:6379/0 moves it to Redis through Django's own backend.
SEARCH_CACHE_URL = env_str("SEARCH_CACHE_URL")
if SEARCH_CACHE_URL:
    if not SEARCH_CACHE_URL.startswith(("redis://", "rediss://", "unix://")):
        raise ImproperlyConfigured(f"SEARCH_CACHE_URL={SEARCH_CACHE_URL!r} must be a redis://, rediss:// or unix:// "
                                   "URL")
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": SEARCH_CACHE_URL,
                          "KEY_PREFIX": env_str("SEARCH_CACHE_PREFIX", "search")}}
else:
    CACHES = {"default": {"BACKEND": "search.storage.db_cache.PostgresCache", "LOCATION": "search_cache",
                          "KEY_PREFIX": env_str("SEARCH_CACHE_PREFIX", "search"),
                          # Expired rows go first; past this many, the oldest third (Django's cull).
                          "OPTIONS": {"MAX_ENTRIES": env_int("SEARCH_CACHE_MAX_ENTRIES", 200_000, minimum=100)}}}
STORAGES = {
    "default": _media_storage,
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if PRODUCTION
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
MEDIA_ROOT = Path(env_str("DJANGO_MEDIA_ROOT", str(VAR_DIR / "media"))).resolve()
MEDIA_URL = "/media/"

# Embedding spaces, in the spirit of CACHES: name -> encoder class + options.
# SEARCH_SPACES_JSON (a JSON object, or a path to a JSON file) replaces the shipped default.
def _spaces() -> dict:
    raw = env_str("SEARCH_SPACES_JSON")
    if not raw:
        from encoders.registry import DEFAULT_SPACES

        return DEFAULT_SPACES
    text = Path(raw).read_text() if not raw.lstrip().startswith("{") else raw
    try:
        spaces = json.loads(text)
    except ValueError as exc:
        raise ImproperlyConfigured(f"SEARCH_SPACES_JSON is not valid JSON: {exc}") from None
    if not isinstance(spaces, dict) or not spaces:
        raise ImproperlyConfigured("SEARCH_SPACES_JSON must be a non-empty JSON object of spaces")
    return spaces


SEARCH_SPACES = _spaces()
SEARCH_DEFAULT_SPACE = env_str("SEARCH_DEFAULT_SPACE", next(iter(SEARCH_SPACES)))
if SEARCH_DEFAULT_SPACE not in SEARCH_SPACES:
    raise ImproperlyConfigured(
        f"SEARCH_DEFAULT_SPACE={SEARCH_DEFAULT_SPACE!r} is not one of the configured spaces: {sorted(SEARCH_SPACES)}"
    )
# HNSW build parameters for every space's index, and the default search breadth.
SEARCH_HNSW_M = env_int("SEARCH_HNSW_M", 16, minimum=2)
SEARCH_HNSW_EF_CONSTRUCTION = env_int("SEARCH_HNSW_EF_CONSTRUCTION", 64, minimum=4)
SEARCH_HNSW_EF_SEARCH = env_int("SEARCH_HNSW_EF_SEARCH", 100, minimum=1)

# Throttles by tier (search/api/throttling.py): anonymous clients per address (see SEARCH_NUM_PROXIES),
# token holders and staff per account. A search page types ahead at a few requests a second and an
# integration uploads as fast as it encodes, so the defaults are per minute rates neither reaches on this
# hardware; they stop runaway loops and scrapers, not users. "none" means no limit.
def _rate(name: str, default: str) -> str | None:
    value = env_str(name, default)
    return None if value.lower() == "none" else value


SEARCH_THROTTLE_RATES = {
    "search": _rate("SEARCH_THROTTLE_SEARCH", "600/min"),
    "search.user": _rate("SEARCH_THROTTLE_SEARCH_USER", "3000/min"),
    "search.staff": _rate("SEARCH_THROTTLE_SEARCH_STAFF", "none"),
    # Writes always need an account; a batch upload counts once, whatever it holds.
    "write": _rate("SEARCH_THROTTLE_WRITE", "1200/min"),
    "write.staff": _rate("SEARCH_THROTTLE_WRITE_STAFF", "none"),
}
# Reads are public unless SEARCH_API_PUBLIC_READS=0; writes always need a token or a staff session.
SEARCH_API_PUBLIC_READS = env_bool("SEARCH_API_PUBLIC_READS", True)
REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "search.api.schema.AutoSchema",
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["search.api.permissions.ReadPublicWriteAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 20,
    "DEFAULT_THROTTLE_CLASSES": ["search.api.throttling.ScopedSettingsRateThrottle"],
    "DEFAULT_PARSER_CLASSES": [
        "search.api.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    # How many proxies in front of the server append to X-Forwarded-For. 0 (the default): the header is
    # ignored and the client is the socket's address, so no client can choose its throttling identity.
    "NUM_PROXIES": env_int("SEARCH_NUM_PROXIES", 0, minimum=0),
    "EXCEPTION_HANDLER": "search.api.error_responses.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Multimodal search API",
    "DESCRIPTION": "Store text, images and audio; search them across modalities in shared embedding spaces.",
    "VERSION": "0.1.0",
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # One name for the modality choices wherever they appear (items, spaces, search filters).
    "ENUM_NAME_OVERRIDES": {"ModalityEnum": "search.models.Modality"},
}

SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
# The page's script reads the token from a <meta> tag, never from the cookie.
CSRF_COOKIE_HTTPONLY = True
# Only a proxy that sets X-Forwarded-Proto (and strips it from clients) may make a request "secure".
if env_bool("DJANGO_BEHIND_TLS_PROXY", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Uploaders' usernames appear in the API and on item pages for curators only, unless this is on.
SEARCH_SHOW_OWNERS = env_bool("SEARCH_SHOW_OWNERS", False)
if PRODUCTION:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", True)
    # Load balancers and Prometheus talk plain HTTP to the server itself: a redirect would fail their checks.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^metrics$"]
    SECURE_HSTS_SECONDS = env_int("DJANGO_HSTS_SECONDS", 31536000, minimum=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True

# One JSON object per line in production (DJANGO_LOG_JSON overrides), each with the request's id.
LOG_JSON = env_bool("DJANGO_LOG_JSON", PRODUCTION)
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "search.runtime.logs.RequestIdFilter"}},
    "formatters": {
        "json": {"()": "search.runtime.logs.JsonFormatter"},
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "filters": ["request_id"],
                             "formatter": "json" if LOG_JSON else "plain"}},
    "root": {"handlers": ["console"], "level": env_str("DJANGO_LOG_LEVEL", "WARNING")},
    # One line per request and per job unit; INFO so they show in production under the WARNING default.
    "loggers": {"search.requests": {"level": env_str("SEARCH_REQUEST_LOG_LEVEL", "INFO" if PRODUCTION else "WARNING")},
                "search.jobs": {"level": "INFO"}},
}

# Background jobs (search/jobs/runner.py, search/tasks.py). A worker killed without a goodbye (kill -9, a lost
# machine) stops its heartbeat; after SEARCH_JOB_STALLED_SECONDS its running jobs are retried.
SEARCH_JOB_HEARTBEAT_SECONDS = env_float("SEARCH_JOB_HEARTBEAT_SECONDS", 10.0)
SEARCH_JOB_STALLED_SECONDS = env_float("SEARCH_JOB_STALLED_SECONDS", 30.0)
# Inputs of a batch upload stored per transaction: the most work a crash can make a worker redo.
SEARCH_JOB_CHUNK = env_int("SEARCH_JOB_CHUNK", 16, minimum=1)
# A batch upload's cap on inputs; its whole body is capped like any upload (SEARCH_MAX_UPLOAD_BYTES).
SEARCH_MAX_BATCH_ITEMS = env_int("SEARCH_MAX_BATCH_ITEMS", 1000, minimum=1)
# When set, GET /metrics needs "Authorization: Bearer <token>" (else keep /metrics off the public proxy).
SEARCH_METRICS_TOKEN = env_str("SEARCH_METRICS_TOKEN")

# Ingestion limits: what a single item may be. Uploads above them are refused with a clear error.
SEARCH_MAX_UPLOAD_BYTES = env_int("SEARCH_MAX_UPLOAD_BYTES", 50 * 1024 * 1024, minimum=1)
SEARCH_MAX_IMAGE_PIXELS = env_int("SEARCH_MAX_IMAGE_PIXELS", 40_000_000, minimum=1)
SEARCH_MAX_AUDIO_SECONDS = env_int("SEARCH_MAX_AUDIO_SECONDS", 600, minimum=1)
SEARCH_MAX_AUDIO_SAMPLE_RATE = env_int("SEARCH_MAX_AUDIO_SAMPLE_RATE", 192_000, minimum=8000)
# Decoded samples (frames x channels), checked from the header: ten minutes of 48 kHz stereo. Decoding
# and CPU scale with this, not with the file's size (silence compresses to almost nothing).
SEARCH_MAX_AUDIO_SAMPLES = env_int("SEARCH_MAX_AUDIO_SAMPLES", 600 * 48_000 * 2, minimum=8000)
SEARCH_MAX_AUDIO_CHANNELS = env_int("SEARCH_MAX_AUDIO_CHANNELS", 8, minimum=1)  # 7.1 surround
# A query clip needs seconds, not the minutes a stored recording may last.
SEARCH_MAX_QUERY_AUDIO_SECONDS = env_int("SEARCH_MAX_QUERY_AUDIO_SECONDS", 30, minimum=1)
# Audio is decoded to mono at this rate at most (lower rates are kept): what the encoders' front ends
# use (16 kHz for the demo and trained towers). Raise it for a model that listens above 8 kHz.
SEARCH_AUDIO_ANALYSIS_RATE = env_int("SEARCH_AUDIO_ANALYSIS_RATE", 16_000, minimum=8000)
# Images are decoded once at the smallest size whose shorter side is still at least this and whose
# longer side still fills the 320-px thumbnail (a JPEG at 1/2..1/8 scale by libjpeg itself): the
# encoders' input (64 px demo, 224 px ViT-B). Raise it for a model with a larger input (336, 448).
SEARCH_IMAGE_DECODE_SIZE = env_int("SEARCH_IMAGE_DECODE_SIZE", 224, minimum=64)
# GPS position from photos' EXIF goes into an item's metadata only when this is on (privacy by default).
SEARCH_STORE_GPS = env_bool("SEARCH_STORE_GPS", False)
# A text item (or a document's extracted text) may be this long; it is searched passage by passage.
SEARCH_MAX_TEXT_CHARS = env_int("SEARCH_MAX_TEXT_CHARS", 1_000_000, minimum=1)
# Documents (.txt, .md, .html, .pdf): pages of a PDF, and the seconds a PDF may take to read (it is read
# in a child process with a memory cap, so a decompression bomb or a parser loop ends there).
SEARCH_MAX_DOCUMENT_PAGES = env_int("SEARCH_MAX_DOCUMENT_PAGES", 2000, minimum=1)
SEARCH_DOCUMENT_TIMEOUT = env_float("SEARCH_DOCUMENT_TIMEOUT", 30.0)
SEARCH_DOCUMENT_MAX_MEMORY = env_int("SEARCH_DOCUMENT_MAX_MEMORY", 1536 * 1024 * 1024, minimum=64 * 1024 * 1024)
SEARCH_INGEST_BATCH_SIZE = env_int("SEARCH_INGEST_BATCH_SIZE", 32, minimum=1)
# Words inside media (issue 27), read in the background after an item is stored (search.ingest.extraction):
# text in pictures and scanned PDF pages (OCR, English and Chinese script models), and speech in recordings
# (US English). Each can be turned off; a scanned PDF is then refused as before (no_text_layer).
SEARCH_EXTRACT_OCR = env_bool("SEARCH_EXTRACT_OCR", True)
SEARCH_EXTRACT_SPEECH = env_bool("SEARCH_EXTRACT_SPEECH", True)
SEARCH_SPEECH_LANGUAGE = env_str("SEARCH_SPEECH_LANGUAGE", "en-us")
# Words the recogniser heard only as alternatives (its n-best list) are searched too, never shown as said: a key
# word it misheard still finds the recording (docs/benchmarks/extraction.md). 0 keeps to its best hypothesis.
SEARCH_SPEECH_ALTERNATIVES = env_bool("SEARCH_SPEECH_ALTERNATIVES", True)
# Caps checked before the work starts: pages of a scanned PDF read, and pixels of a picture read (larger ones
# are read at this size, from the stored original).
SEARCH_EXTRACT_MAX_PAGES = env_int("SEARCH_EXTRACT_MAX_PAGES", 50, minimum=1)
SEARCH_EXTRACT_MAX_SIDE = env_int("SEARCH_EXTRACT_MAX_SIDE", 2000, minimum=256)
# The reading child (search.ingest.extraction_worker): its address space, models included (with both readers
# loaded it peaked at 1.7 GiB after a 4000x3000 photo, a scanned page and a memo); the CPU seconds one picture or
# page may take (a picture takes ~0.3 s, a page ~1.5 s) and those a recording may take per second of sound on top
# (the recogniser takes ~0.3); how long it waits for the next item before it exits and gives its memory back.
# An item over a limit fails with the reason; the job goes on.
SEARCH_EXTRACT_MAX_MEMORY = env_int("SEARCH_EXTRACT_MAX_MEMORY", 3 * 2**30, minimum=256 * 2**20)
SEARCH_EXTRACT_CPU_SECONDS = env_float("SEARCH_EXTRACT_CPU_SECONDS", 60.0)
SEARCH_EXTRACT_CPU_PER_AUDIO_SECOND = env_float("SEARCH_EXTRACT_CPU_PER_AUDIO_SECOND", 1.0)
SEARCH_EXTRACT_IDLE_SECONDS = env_float("SEARCH_EXTRACT_IDLE_SECONDS", 60.0)
# Requests may carry files up to the upload cap (plus form fields); Django's in-memory
# threshold stays small so large uploads stream to a temporary file instead of RAM.
# A JSON body must hold the longest text: 6 bytes a character as \u escapes (what json.dumps sends).
DATA_UPLOAD_MAX_MEMORY_SIZE = max(2 * 1024 * 1024, 6 * SEARCH_MAX_TEXT_CHARS + 64 * 1024)
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
FILE_UPLOAD_HANDLERS = [
    "search.runtime.upload_limits.LimitedUploadHandler",
    "django.core.files.uploadhandler.MemoryFileUploadHandler",
    "django.core.files.uploadhandler.TemporaryFileUploadHandler",
]

# Search limits: results per page, pages, parts of a weighted query, query text length.
SEARCH_MAX_K = env_int("SEARCH_MAX_K", 100, minimum=1)
SEARCH_MAX_PAGE = env_int("SEARCH_MAX_PAGE", 50, minimum=1)
SEARCH_MAX_QUERY_PARTS = env_int("SEARCH_MAX_QUERY_PARTS", 8, minimum=1)
SEARCH_MAX_QUERY_CHARS = env_int("SEARCH_MAX_QUERY_CHARS", 1000, minimum=1)
# Below this many matching rows a filtered query is answered exactly (cheaper, and never short).
SEARCH_EXACT_BELOW = env_int("SEARCH_EXACT_BELOW", 5000, minimum=0)
# Results below this calibrated relevance (search.engine.calibration; 0.5: as likely relevant as not) are left out
# unless a client asks for them; the relevant set is sought among this many nearest candidates, and
# among SEARCH_MAX_RELEVANT when it is sorted by a field or counted into facets.
SEARCH_MIN_RELEVANCE = env_float("SEARCH_MIN_RELEVANCE", 0.5)
SEARCH_RELEVANT_DEPTH = env_int("SEARCH_RELEVANT_DEPTH", 100, minimum=1)
SEARCH_MAX_RELEVANT = env_int("SEARCH_MAX_RELEVANT", 1000, minimum=1)
# Curators' pinned items lead the results of queries they are at least this similar to (cosine).
SEARCH_PIN_MIN_SIMILARITY = env_float("SEARCH_PIN_MIN_SIMILARITY", 0.2)
# How long each modality's mean vector (the cross-modal score baseline) is reused before recomputing.
SEARCH_CENTROID_TTL = env_int("SEARCH_CENTROID_TTL", 60, minimum=0)
SEARCH_TEXT_CACHE_SIZE = env_int("SEARCH_TEXT_CACHE_SIZE", 1024, minimum=0)
# Intra-op threads of the encoders in this process (0: torch's default, one per core). `manage.py serve` sets it
# to the cores over its processes (web and job workers): two processes each running a two-thread OpenMP team on
# two cores made a query's MiniLM encoding 4x slower (180 ms instead of 50) while a job ingested beside it, and a
# short query gains nothing from a second thread (11.1 ms with one, 11.2 with two, idle machine).
SEARCH_TORCH_THREADS = env_int("SEARCH_TORCH_THREADS", 0, minimum=0)
