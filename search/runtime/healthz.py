"""GET /healthz: is this process fit to take traffic? For a load balancer or an orchestrator."""

from django.conf import settings
from django.db import DatabaseError, connection
from django.http import JsonResponse

from search.runtime import warmup


def healthz(request):
    """200 when the database answers with pgvector installed and every configured space is loaded; else 503
    with what is down. Spaces load at start (see search/runtime/warmup.py), so a fresh worker reports 503 until then."""
    report: dict = {"status": "ok"}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
            row = cursor.fetchone()
        report["database"] = "ok"
        report["pgvector"] = row[0] if row else None
        if row is None:
            report["status"] = "unavailable"
            report["database"] = "the vector extension is not installed"
    except DatabaseError as exc:
        report.update(status="unavailable", database=(str(exc).splitlines() or ["unreachable"])[0], pgvector=None)
    report["spaces"] = {name: warmup.state.get(name, "loading") for name in settings.SEARCH_SPACES}
    if any(value != "ready" for value in report["spaces"].values()):
        report["status"] = "unavailable"
    return JsonResponse(report, status=200 if report["status"] == "ok" else 503,
                        headers={"Cache-Control": "no-store"})
