from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema

_ERROR_BODY = {
    "application/json": {
        "schema": {
            "type": "object",
            "description": "'detail' for a general message, or one list of messages per field",
            "additionalProperties": True,
        }
    }
}

# Every operation can answer these; documenting them lets clients (and schema fuzzers) expect them.
_ERRORS = {
    "400": "The request is invalid; the body says what to fix, per field.",
    "401": "Authentication is needed: send 'Authorization: Token <key>'.",
    "403": "Not allowed for this user.",
    "404": "No such item (or page).",
    "413": "The upload is larger than the limit.",
    "414": "The URL is too long (a front server's limit).",
    "429": "Too many requests; retry after the time in the Retry-After header.",
    "503": "The database is unavailable; retry shortly.",
}


class AutoSchema(SpectacularAutoSchema):
    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        for code, description in _ERRORS.items():
            responses.setdefault(code, {"description": description, "content": _ERROR_BODY})
        return responses
