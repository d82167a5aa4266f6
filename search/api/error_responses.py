"""API errors are JSON with a message per field; known domain errors become 4xx, never 500.

Error bodies are bounded: a client that sends thousands of bad values gets the first few
messages and a count, not one message per value.
"""

from rest_framework import status
from rest_framework.exceptions import NotAuthenticated
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_handler

from search.engine.query_vectors import QueryError
from search.media import MediaRejected, MediaTooLarge

MAX_ENTRIES = 10  # per list or object of errors
MAX_MESSAGE = 500  # characters per message


def bounded(detail, depth: int = 0):
    """`detail` with at most MAX_ENTRIES entries per level, shortened messages, and no deeper than 6 levels."""
    if isinstance(detail, str):
        return detail if len(detail) <= MAX_MESSAGE else detail[:MAX_MESSAGE] + "…"
    if depth >= 6:
        return "…"
    if isinstance(detail, dict):
        keys = list(detail)
        kept = {key: bounded(detail[key], depth + 1) for key in keys[:MAX_ENTRIES]}
        if len(keys) > MAX_ENTRIES:
            kept["more"] = f"{len(keys) - MAX_ENTRIES} more errors not shown"
        return kept
    if isinstance(detail, list):
        kept = [bounded(entry, depth + 1) for entry in detail[:MAX_ENTRIES]]
        if len(detail) > MAX_ENTRIES:
            kept.append(f"{len(detail) - MAX_ENTRIES} more errors not shown")
        return kept
    return detail


def exception_handler(exc, context):
    if isinstance(exc, MediaRejected):
        code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE if isinstance(exc, MediaTooLarge) else 400
        return Response({"file": [str(exc)], "code": exc.code}, status=code)
    if isinstance(exc, QueryError):
        return Response({"detail": str(exc), "code": "invalid_query"}, status=400)
    if isinstance(exc, NotAuthenticated):
        exc = NotAuthenticated(
            "authentication credentials were not provided: send 'Authorization: Token <key>' "
            "(create one with `manage.py drf_create_token <user>`) or log in as staff"
        )
    response = drf_handler(exc, context)
    if response is not None:
        response.data = bounded(response.data)
    return response
