"""schemathesis over the live OpenAPI schema: zero 5xx responses and zero schema violations."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from rest_framework.authtoken.models import Token

from search.ingest.ingester import Ingester, IngestInput


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("fake_spaces")
def test_schemathesis_finds_no_server_errors_and_no_schema_violations(live_server, settings, output_dir):
    settings.SEARCH_THROTTLE_RATES = {"search": "1000000/min", "write": "1000000/min"}
    token = Token.objects.create(user=User.objects.create_user("fuzzer")).key
    Ingester().ingest_many([IngestInput(text=f"sample text {i}", owner_id=None) for i in range(10)])
    cli = Path(sys.executable).parent / "schemathesis"
    result = subprocess.run(
        [str(cli), "run", f"{live_server.url}/api/schema/", "-H", f"Authorization: Token {token}",
         "--checks", "not_a_server_error,response_schema_conformance,content_type_conformance,"
                     "status_code_conformance",
         "--max-time", os.environ.get("SCHEMATHESIS_SECONDS", "40"), "--workers", "1", "--seed", "20261120",
         "--suppress-health-check", "all"],
        capture_output=True, text=True, timeout=600,
    )
    (output_dir / "schemathesis.txt").write_text(result.stdout[-200_000:] + result.stderr[-20_000:])
    summary = result.stdout[-3000:]
    assert result.returncode == 0, summary


# Values that Python's json accepts but PostgreSQL, UTF-8 or the interpreter's stack do not.
HOSTILE_JSON = [
    '{"a": 1e400}', '{"a": -1e400}', '{"a": NaN}', '{"a": "\\udc00"}', '{"\\ud800": 1}',
    "[" * 5000 + "]" * 5000, '{"a":' * 3000 + "1" + "}" * 3000, "9" * 5000,
]


def _hostile_bodies(properties: list[str]) -> list[str]:
    bodies = list(HOSTILE_JSON)
    for name in properties:
        for value in HOSTILE_JSON:
            bodies.append(f'{{"{name}": {value}}}')
            bodies.append(f'{{"{name}": [{value}]}}')
    return bodies


@pytest.mark.django_db
@pytest.mark.usefixtures("fake_spaces")
def test_every_operation_in_the_schema_refuses_deep_and_non_finite_json_with_a_4xx(settings):
    """Schema-driven, like schemathesis, but with the inputs its generators never produce: every JSON body
    property and every query parameter of every operation gets deeply nested, non-finite and invalid-Unicode
    JSON. None may answer 5xx."""
    from rest_framework.test import APIClient

    settings.SEARCH_THROTTLE_RATES = {"search": "1000000/min", "write": "1000000/min"}
    user = User.objects.create_user("fuzzer", is_superuser=True, is_staff=True)
    client = APIClient()
    client.force_authenticate(user)
    item = Ingester().ingest(IngestInput(text="sample text", owner_id=user.pk)).item
    schema = client.get("/api/schema/", {"format": "json"}).json()
    failures, tried = [], 0
    for path, operations in schema["paths"].items():
        url = path.replace("{id}", str(item.pk))
        for method, operation in operations.items():
            body = (operation.get("requestBody") or {}).get("content", {}).get("application/json")
            if body is not None:
                ref = body["schema"].get("$ref", "")
                component = schema["components"]["schemas"].get(ref.rsplit("/", 1)[-1], {})
                for raw in _hostile_bodies(list(component.get("properties", {}))):
                    response = getattr(client, method)(url, data=raw.encode("utf-8", "surrogatepass"),
                                                       content_type="application/json")
                    tried += 1
                    if response.status_code >= 500:
                        failures.append((method, path, raw[:80], response.status_code))
            for parameter in operation.get("parameters", []):
                if parameter["in"] != "query":
                    continue
                for value in HOSTILE_JSON:
                    params = {"q": "red", parameter["name"]: value} if method == "get" else {parameter["name"]: value}
                    response = getattr(client, method)(url, params) if method == "get" else None
                    tried += 1
                    if response is not None and response.status_code >= 500:
                        failures.append((method, path, f"?{parameter['name']}={value[:60]}", response.status_code))
    assert tried > 100
    assert failures == []
