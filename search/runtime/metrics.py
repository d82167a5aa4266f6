"""Prometheus metrics: what is counted, the middleware that times requests, and the /metrics view.

Under gunicorn each worker is a process with its own counters; with PROMETHEUS_MULTIPROC_DIR set
(`manage.py serve` sets it) prometheus_client writes them to files there and the view sums every
process's, the background workers' included. Queue depth and jobs by status are read from the
database at scrape time, so they are right whichever process answers.
"""

import hmac
import os
import time

from django.conf import settings
from django.db import DatabaseError, connection
from django.http import HttpResponse
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

REQUEST_LATENCY = Histogram(
    "search_http_request_duration_seconds", "Time to answer a request, by endpoint (URL name) and status class",
    ["method", "endpoint", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
SEARCHES = Counter("search_searches_total", "Searches run by the search service, by mode", ["mode"])
ENCODE_SECONDS = Histogram(
    "search_encode_seconds", "Time the encoders took per batch (queries and stored items), by modality",
    ["modality"], buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
JOB_FAILURES = Counter("search_job_failures_total", "Background jobs that failed after their last attempt", ["kind"])


class MetricsMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        # URL names, never paths: the label set stays small whatever clients request.
        endpoint = (match.view_name if match else "") or ("static" if request.path.startswith("/static/") else "other")
        REQUEST_LATENCY.labels(request.method if request.method in _METHODS else "other", endpoint,
                               f"{response.status_code // 100}xx").observe(time.perf_counter() - started)
        return response


_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}


class DatabaseCollector:
    """Queue depth (procrastinate's jobs by status) and our jobs by kind and status, read at scrape time."""

    def collect(self):
        queue = GaugeMetricFamily("search_queue_jobs", "Tasks in the job queue by status", labels=["status"])
        jobs = GaugeMetricFamily("search_jobs", "Background jobs by kind and status", labels=["kind", "status"])
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT status, count(*) FROM procrastinate_jobs GROUP BY status")
                counts = dict(cursor.fetchall())
                cursor.execute("SELECT kind, status, count(*) FROM search_job GROUP BY kind, status")
                job_rows = cursor.fetchall()
        except DatabaseError:
            return  # /healthz says the database is down; metrics still show the rest
        for status in ("todo", "doing", "succeeded", "failed", "cancelled", "aborted"):
            queue.add_metric([status], counts.get(status, 0))
        for kind, status, count in job_rows:
            jobs.add_metric([kind, status], count)
        yield queue
        yield jobs


def _registry() -> CollectorRegistry:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = CollectorRegistry()
        registry.register(_ProcessRegistry())
    registry.register(DatabaseCollector())
    return registry


class _ProcessRegistry:
    """This process's own metrics (single-process servers: runserver, tests)."""

    def collect(self):
        yield from REGISTRY.collect()


def metrics_view(request):
    token = settings.SEARCH_METRICS_TOKEN
    if token and not hmac.compare_digest(request.headers.get("Authorization", ""), f"Bearer {token}"):
        return HttpResponse("metrics need the bearer token set in SEARCH_METRICS_TOKEN\n", status=401,
                            content_type="text/plain")
    return HttpResponse(generate_latest(_registry()), content_type=CONTENT_TYPE_LATEST)
