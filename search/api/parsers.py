"""The API's JSON parser: bounded in size, depth and content (see search.runtime.json_input)."""

from django.conf import settings
from rest_framework import parsers
from rest_framework.exceptions import ParseError

from search.runtime import json_input


class RequestBodyTooLarge(ParseError):
    status_code = 413
    default_detail = "the JSON body is too large"
    default_code = "too_large"


class JSONParser(parsers.JSONParser):
    """DRF's parser reads whatever length the client sends and lets `1e400`, lone surrogates and
    10,000-deep nesting through to code that fails on them with a 500; this one refuses them."""

    def parse(self, stream, media_type=None, parser_context=None):
        # A JSON body carries a query or an item's fields, never a file: the form-field cap applies.
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        raw = stream.read(limit + 1)
        if len(raw) > limit:
            raise RequestBodyTooLarge(f"the JSON body is larger than {limit:,} bytes")
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            return json_input.loads(raw.decode(encoding))
        except UnicodeDecodeError:
            raise ParseError(f"JSON parse error - the body is not valid {encoding}") from None
        except json_input.UntrustedJSONError as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
