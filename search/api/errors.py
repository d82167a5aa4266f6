"""API errors are JSON with a message per field; known domain errors become 4xx, never 500."""

from rest_framework import status
from rest_framework.exceptions import NotAuthenticated
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_handler

from search.media import MediaRejected, MediaTooLarge
from search.queries import QueryError


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
    return drf_handler(exc, context)
