"""Request guards that must act before a view runs: upload size and database availability."""

import logging

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.db import DatabaseError, InterfaceError
from django.http import HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils.html import escape

from search.runtime.upload_limits import UploadTooLarge

logger = logging.getLogger(__name__)

# Room for the multipart envelope and the text fields that travel with a file.
FORM_OVERHEAD = 64 * 1024


def _wants_json(request) -> bool:
    return request.path.startswith("/api/") or "application/json" in request.headers.get("Accept", "")


def _error(request, status: int, message: str):
    if _wants_json(request):
        return JsonResponse({"detail": message}, status=status)
    # A page in the site's layout (templates/error.html; it needs no database). Messages may quote what
    # the client sent (a file name): the template escapes them like everything else on a page.
    try:
        return render(request, "error.html", {"status": status, "message": message}, status=status)
    except Exception:  # the error page itself must never fail
        response = HttpResponse(f"<!doctype html><title>{status}</title><p>{escape(message)}</p>", status=status)
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


# SQLSTATE classes that mean the request carried something the database refuses (a malformed array
# literal, a text too long for a tsvector, a duplicate key): the client's fault, answered with 400.
REQUEST_FAULT_CLASSES = ("22", "23", "54")


def _sqlstate(exception) -> str | None:
    cause = exception.__cause__
    return getattr(cause, "sqlstate", None) or getattr(exception, "sqlstate", None)


def database_unavailable(exception) -> bool:
    """A lost or refused connection (no SQLSTATE, or class 08/53/57), as opposed to a refused statement."""
    if isinstance(exception, InterfaceError):
        return True
    if not isinstance(exception, DatabaseError):
        return False
    state = _sqlstate(exception)
    if state is None:
        return "connection" in str(exception).lower() or type(exception).__name__ == "OperationalError"
    return state[:2] in ("08", "53", "57")


class ErrorMappingMiddleware:
    """Errors raised inside views that deserve a clear 4xx/5xx instead of a 500: an upload cut off
    past the cap (413), a body or form too large or with too many fields (413/400), a value the
    database refuses (400), and a database that is down (503; the next request reconnects)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if isinstance(exception, UploadTooLarge):
            return _error(request, 413, str(exception))
        if isinstance(exception, RequestDataTooBig):
            return _error(request, 413, f"the request's form data is larger than "
                                        f"{settings.DATA_UPLOAD_MAX_MEMORY_SIZE:,} bytes")
        if isinstance(exception, TooManyFieldsSent | TooManyFilesSent):
            return _error(request, 400, "the request has too many form fields or files")
        if isinstance(exception, DatabaseError) and (_sqlstate(exception) or "")[:2] in REQUEST_FAULT_CLASSES:
            first_line = str(exception).splitlines()[0] if str(exception) else type(exception).__name__
            logger.warning("refused by the database: %s", first_line)
            # The database's own words stay in the log: they name tables and columns.
            return _error(request, 400, "the request holds a value the database cannot accept "
                                        "(a malformed list, a text too long to index, a duplicate)")
        if database_unavailable(exception):
            first_line = str(exception).splitlines()[0] if str(exception) else repr(exception)
            logger.error("database unavailable: %s", first_line)
            from django.db import connections

            # Drop broken connections so the next request opens a fresh one.
            for conn in connections.all(initialized_only=True):
                conn.close_if_unusable_or_obsolete()
            # A part of the database may say which (a shard: search.storage.shards.fanout.ShardUnavailable).
            response = _error(request, 503, getattr(exception, "unavailable_message", None)
                              or "the database is unavailable right now; please try again shortly")
            response["Retry-After"] = "5"
            return response
        if media_store_unavailable(exception):
            logger.error("media store unavailable: %s", exception)
            response = _error(request, 503, "the media store is unavailable right now; please try again shortly")
            response["Retry-After"] = "5"
            return response
        return None


def media_store_unavailable(exception: BaseException) -> bool:
    """An error of boto3 (SEARCH_MEDIA_BACKEND=s3) that reached a view: the object store is down, slow or refuses our
    credentials, none of it the request's fault. An upload's files and row were rolled back together."""
    return type(exception).__module__.split(".")[0] in {"botocore", "boto3", "s3transfer"}
