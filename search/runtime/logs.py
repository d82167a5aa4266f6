"""Request ids and JSON log lines.

Every request gets an id (the proxy's X-Request-ID when it sends a sane one, else a new one),
echoed in the response and attached to every log record made while answering it, so one
request's lines can be found among many workers'. One access line per request is logged to
`search.requests` (INFO; on in production).
"""

import contextvars
import json
import logging
import re
import time
import uuid

_request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
_SANE_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
access_log = logging.getLogger("search.requests")


class RequestIdMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        given = request.headers.get("X-Request-ID", "")
        request_id = given if _SANE_ID.fullmatch(given) else uuid.uuid4().hex
        request.request_id = request_id
        token = _request_id.set(request_id)
        started = time.perf_counter()
        try:
            response = self.get_response(request)
            response["X-Request-ID"] = request_id
            if access_log.isEnabledFor(logging.INFO):
                access_log.info("%s %s %s", request.method, request.path, response.status_code, extra={
                    "method": request.method, "path": request.path, "status": response.status_code,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 1),
                })
            return response
        finally:
            _request_id.reset(token)


class RequestIdFilter(logging.Filter):
    def filter(self, record):
        record.request_id = _request_id.get()
        return True


# Attributes every LogRecord has; anything else was passed in `extra` and goes into the JSON object.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "request_id"}


class JsonFormatter(logging.Formatter):
    converter = time.gmtime  # the "Z" below means UTC

    def format(self, record):
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", "-"),
        }
        entry.update({key: value for key, value in vars(record).items() if key not in _STANDARD})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)
