"""Request guards that must act before a view runs: upload size and database availability."""

import logging

from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError
from django.http import HttpResponse, JsonResponse

from search.uploads import UploadTooLarge

logger = logging.getLogger(__name__)

# Room for the multipart envelope and the text fields that travel with a file.
FORM_OVERHEAD = 64 * 1024


def _wants_json(request) -> bool:
    return request.path.startswith("/api/") or "application/json" in request.headers.get("Accept", "")


def _error(request, status: int, message: str):
    if _wants_json(request):
        return JsonResponse({"detail": message}, status=status)
    response = HttpResponse(f"<!doctype html><title>{status}</title><p>{message}</p>", status=status)
    response["Content-Type"] = "text/html; charset=utf-8"
    return response


class RequestGuardMiddleware:
    """Refuse NUL bytes in query parameters, and a body over the upload cap by its Content-Length,
    before reading any of it.

    Bodies without a (truthful) length are cut off by LimitedUploadHandler while streaming.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return _error(request, 400, "invalid Content-Length header")
        if any("\x00" in value for _, values in request.GET.lists() for value in values):
            # PostgreSQL text cannot hold NUL; refuse it here rather than fail deep in a query.
            return _error(request, 400, "query parameters cannot contain NUL characters")
        limit = settings.SEARCH_MAX_UPLOAD_BYTES + FORM_OVERHEAD
        if length > limit:
            return _error(request, 413, f"the request is {length:,} bytes; uploads are limited to "
                                        f"{settings.SEARCH_MAX_UPLOAD_BYTES:,} bytes")
        return self.get_response(request)


class ErrorMappingMiddleware:
    """Errors raised inside views that deserve a clear 4xx/5xx instead of a 500: an upload cut off
    past the cap (413), and a database that is down (503; the next request reconnects)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if isinstance(exception, UploadTooLarge):
            return _error(request, 413, str(exception))
        if isinstance(exception, (OperationalError, InterfaceError)) or (
            isinstance(exception, DatabaseError) and "connection" in str(exception).lower()
        ):
            first_line = str(exception).splitlines()[0] if str(exception) else repr(exception)
            logger.error("database unavailable: %s", first_line)
            from django.db import connections

            # Drop broken connections so the next request opens a fresh one.
            for conn in connections.all(initialized_only=True):
                conn.close_if_unusable_or_obsolete()
            response = _error(request, 503, "the database is unavailable right now; please try again shortly")
            response["Retry-After"] = "5"
            return response
        return None
