"""API throttles by scope and tier, counted in the shared cache so every process and node counts the same client.

DRF's SimpleRateThrottle keeps each client's request history (a list of timestamps) and reads and rewrites it on
every request: with the cache in PostgreSQL that is five statements and a few kilobytes written per search, and two
processes that read the same history at once both write back their own (a lost count). Here a request is one atomic
count in a fixed window: one `INSERT ... ON CONFLICT` with the database cache (search/storage/db_cache.py,
`PostgresCache.hit`), an `add` and an atomic `incr` with Redis or any other backend. A fixed window lets a client
spend its rate at the end of one window and again at the start of the next (at most twice the rate in a short burst),
which is what the limits are for: runaway loops and scrapers, not exact accounting.
"""

import time

from django.conf import settings
from django.core.cache import cache
from rest_framework.throttling import ScopedRateThrottle


def tier(user) -> str:
    """Who is asking: "anon" (throttled per client address), "user" (per account) or "staff" (per account)."""
    if not (user and user.is_authenticated):
        return "anon"
    return "staff" if user.is_staff else "user"


def count_request(key: str, seconds: int) -> tuple[int, float]:
    """Count one request under `key`; returns (requests in its window so far, when the window ends, epoch seconds)."""
    hit = getattr(cache, "hit", None)
    if hit is not None:
        return hit(key, seconds)
    # The window starts at the key's first request, as with the database cache, so both count alike. (Windows aligned
    # on the clock also started a new count at every minute mark: a client's second request could open a new window.)
    # `incr` keeps the key's expiry (Redis INCR, Django's memory cache), so the count lives as long as its window.
    now = time.time()
    try:
        if not cache.add(key, 1, seconds):
            return cache.incr(key), cache.get(f"{key}:ends", now + seconds)
    except ValueError:  # expired between the two calls: a new window
        cache.set(key, 1, seconds)
    cache.set(f"{key}:ends", now + seconds, seconds)  # the window starts with this request
    return 1, now + seconds


class ScopedSettingsRateThrottle(ScopedRateThrottle):
    """ScopedRateThrottle with a rate per scope and tier, read per request from settings.SEARCH_THROTTLE_RATES.

    The rate of scope "search" for a staff user is SEARCH_THROTTLE_RATES["search.staff"], falling back to
    ["search.user"] and then ["search"]; a rate of None means no limit. DRF's own class freezes the rates at
    import, so a changed setting would need a restart.
    """

    def allow_request(self, request, view):
        self._tier = tier(request.user)
        self.scope = getattr(view, self.scope_attr, None)
        if not self.scope:
            return True
        self.rate = self.get_rate()
        self.num_requests, self.duration = self.parse_rate(self.rate)
        if self.rate is None:
            return True
        self.key = self.get_cache_key(request, view)
        if self.key is None:
            return True
        count, self._window_end = count_request(self.key, self.duration)
        return count <= self.num_requests

    def wait(self):
        return max(0.0, self._window_end - time.time())

    def get_rate(self):
        rates = settings.SEARCH_THROTTLE_RATES
        tiers = {"anon": ["anon"], "user": ["user", "anon"], "staff": ["staff", "user", "anon"]}[
            getattr(self, "_tier", "anon")]
        for name in tiers:
            key = self.scope if name == "anon" else f"{self.scope}.{name}"
            if key in rates:
                return rates[key]
        return None

    def get_cache_key(self, request, view):
        # Each tier counts on its own, so a user who logs in does not inherit the address's count.
        key = super().get_cache_key(request, view)
        return key and f"{key}:{self._tier}"
