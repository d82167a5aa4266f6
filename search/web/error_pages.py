"""404 and 500 answers: JSON under /api/ (clients parse it), a page elsewhere."""

import sys

from django.db import DatabaseError
from django.http import HttpResponse, JsonResponse
from django.shortcuts import render


def _api_or_page(request, status: int, message: str, template: str):
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": message}, status=status)
    try:
        return render(request, template, {"message": message}, status=status)
    except Exception:  # the error page itself must never fail
        return HttpResponse(message, status=status, content_type="text/plain; charset=utf-8")


def bad_request(request, exception=None):
    # Django raises these (too many fields, a malformed multipart body) before any view runs.
    return _api_or_page(request, 400, "the request could not be understood", "400.html")


def not_found(request, exception=None):
    return _api_or_page(request, 404, "not found", "404.html")


def server_error(request):
    # Called inside Django's exception handler, so the error is at hand: a database that cannot be
    # reached is an outage to explain (503, the site's own page), not a bug.
    if isinstance(sys.exc_info()[1], DatabaseError):
        return _api_or_page(request, 503, "the database cannot be reached right now; try again in a minute",
                            "503.html")
    return _api_or_page(request, 500, "internal error; it has been logged", "500.html")
