from django.conf import settings
from rest_framework.throttling import ScopedRateThrottle


def tier(user) -> str:
    """Who is asking: "anon" (throttled per client address), "user" (per account) or "staff" (per account)."""
    if not (user and user.is_authenticated):
        return "anon"
    return "staff" if user.is_staff else "user"


class ScopedSettingsRateThrottle(ScopedRateThrottle):
    """ScopedRateThrottle with a rate per scope and tier, read per request from settings.SEARCH_THROTTLE_RATES.

    The rate of scope "search" for a staff user is SEARCH_THROTTLE_RATES["search.staff"], falling back to
    ["search.user"] and then ["search"]; a rate of None means no limit. DRF's own class freezes the rates at
    import, so a changed setting would need a restart.
    """

    def allow_request(self, request, view):
        self._tier = tier(request.user)
        return super().allow_request(request, view)

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
