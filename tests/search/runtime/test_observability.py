"""What an operator sees: /healthz for the load balancer, /metrics for Prometheus, request ids in JSON logs."""

import json
import logging

import pytest
from django.core.cache import cache
from django.test import Client

from search.runtime import warmup

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_throttles():
    cache.clear()


def test_healthz_is_200_once_the_database_answers_and_every_space_is_loaded():
    warmup.warm_up()  # the real models of the default spaces, as a worker loads them before taking traffic
    response = Client().get("/healthz")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "ok" and body["database"] == "ok"
    assert tuple(int(n) for n in body["pgvector"].split(".")[:2]) >= (0, 8)
    assert body["spaces"] == {"demo": "ready", "text": "ready"}


def test_healthz_is_503_naming_a_space_that_is_not_loaded(monkeypatch):
    monkeypatch.setattr(warmup, "state", {})
    response = Client().get("/healthz")
    assert response.status_code == 503
    assert response.json()["spaces"] == {"demo": "loading", "text": "loading"} and response.json()["database"] == "ok"
    monkeypatch.setattr(warmup, "state", {"demo": "EncoderError: weights missing"})
    assert Client().get("/healthz").json()["spaces"]["demo"] == "EncoderError: weights missing"


def test_healthz_is_503_when_the_database_is_unreachable(settings):
    from django.db import connection

    warmup.warm_up()
    real = connection.settings_dict["NAME"]
    connection.close()
    # A database that cannot be opened, as after a failover: answers 503 and says so, not a 500.
    connection.settings_dict["NAME"] = "\x01"
    try:
        response = Client().get("/healthz")
    finally:
        connection.close()
        connection.settings_dict["NAME"] = real
    assert response.status_code == 503
    assert response.json()["status"] == "unavailable" and response.json()["database"] != "ok"


def _metric(text: str, name: str, **labels) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and all(f'{key}="{value}"' in line for key, value in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_metrics_count_requests_by_endpoint_searches_encoding_and_the_queue():
    client = Client()
    before = client.get("/metrics").content.decode()
    assert client.get("/api/search/", {"q": "a red circle"}).status_code == 200
    response = client.get("/metrics")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/plain")
    text = response.content.decode()
    name = "search_http_request_duration_seconds_count"
    assert _metric(text, name, endpoint="api-search", status="2xx") == _metric(before, name, endpoint="api-search",
                                                                                status="2xx") + 1
    assert _metric(text, "search_searches_total", mode="vector") >= _metric(before, "search_searches_total",
                                                                              mode="vector") + 1
    assert _metric(text, "search_encode_seconds_count", modality="text") >= 1
    assert 'search_queue_jobs{status="todo"}' in text
    assert "search_job_failures_total" in text


def test_metrics_can_require_a_token(settings):
    settings.SEARCH_METRICS_TOKEN = "s3cret-scrape-token"
    assert Client().get("/metrics").status_code == 401
    assert Client().get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-scrape-token").status_code == 200


def test_every_response_carries_a_request_id_and_a_sane_one_from_the_proxy_is_kept():
    generated = Client().get("/healthz")["X-Request-ID"]
    assert len(generated) == 32
    assert Client().get("/healthz", HTTP_X_REQUEST_ID="edge-42.a")["X-Request-ID"] == "edge-42.a"
    forged = Client().get("/healthz", HTTP_X_REQUEST_ID="x\nFAKE LOG LINE")["X-Request-ID"]
    assert "\n" not in forged and forged != "x\nFAKE LOG LINE"


def test_production_logs_are_json_lines_with_the_request_id(caplog):
    from search.runtime.logs import JsonFormatter, RequestIdFilter

    records = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(self.format(record))

    handler = Keep()
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter())
    access = logging.getLogger("search.requests")
    access.addHandler(handler)
    old_level = access.level
    access.setLevel(logging.INFO)
    try:
        Client().get("/api/spaces/", HTTP_X_REQUEST_ID="req-7")
    finally:
        access.removeHandler(handler)
        access.setLevel(old_level)
    [line] = [json.loads(r) for r in records]
    assert line["request_id"] == "req-7" and line["path"] == "/api/spaces/" and line["status"] == 200
    assert line["level"] == "INFO" and line["time"].endswith("Z") and line["duration_ms"] >= 0


def test_a_process_takes_its_share_of_the_cores_and_zero_leaves_torch_alone(settings):
    import torch

    before = torch.get_num_threads()
    try:
        settings.SEARCH_TORCH_THREADS = 1
        warmup.share_cpus()
        assert torch.get_num_threads() == 1
        settings.SEARCH_TORCH_THREADS = 0
        warmup.share_cpus()
        assert torch.get_num_threads() == 1  # unchanged: 0 means "as torch set itself up"
        warmup.share_cpus(2)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
