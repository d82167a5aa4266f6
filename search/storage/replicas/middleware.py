"""Per-request replica routing: read-your-writes for a client that just wrote, and a retry on the
primary when a replica fails under a read-only request.

A client is its API token, else its session, else its address; it stays on the primary for
`SEARCH_REPLICA_STICKY_SECONDS` after a request that wrote (Django's cache remembers it, so
the processes share it where the cache is shared; a cookie carries it too).
"""

import hashlib
import time

from django.conf import settings
from django.core.cache import cache
from django.db import DEFAULT_DB_ALIAS, InterfaceError, OperationalError

from search.storage import replicas

COOKIE = "search_primary_until"
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


def client_key(request) -> str:
    who = (request.META.get("HTTP_AUTHORIZATION") or request.COOKIES.get(settings.SESSION_COOKIE_NAME)
           or request.META.get("REMOTE_ADDR", ""))
    return "replicas:primary:" + hashlib.sha256(who.encode()).hexdigest()[:32]


class ReplicaRoutingMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if not replicas.replica_aliases():
            return self.get_response(request)
        key = client_key(request)
        pinned = self._cookie_pinned(request) or bool(cache.get(key))
        token = replicas.begin(pinned=pinned)
        try:
            try:
                response = self.get_response(request)
            except (OperationalError, InterfaceError):
                work = replicas._work.get()
                alias = work.alias if work else None
                if request.method not in SAFE_METHODS or alias in (None, DEFAULT_DB_ALIAS) or work.wrote:
                    raise
                replicas.replica_failed(alias)
                response = self.get_response(request)
        finally:
            work = replicas.end(token)
        if work.wrote:
            sticky = settings.SEARCH_REPLICA_STICKY_SECONDS
            cache.set(key, True, sticky)
            response.set_cookie(COOKIE, str(int(time.time() + sticky)), max_age=int(sticky) + 1,
                                httponly=True, samesite="Lax")
        return response

    @staticmethod
    def _cookie_pinned(request) -> bool:
        try:
            return float(request.COOKIES.get(COOKIE, "0")) > time.time()
        except ValueError:
            return False
