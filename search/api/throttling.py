from django.conf import settings
from rest_framework.throttling import ScopedRateThrottle


class ScopedSettingsRateThrottle(ScopedRateThrottle):
    """ScopedRateThrottle whose rates are read per request from settings.SEARCH_THROTTLE_RATES.

    DRF's own class freezes the rates at import, so a changed setting would need a restart.
    """

    def get_rate(self):
        return settings.SEARCH_THROTTLE_RATES.get(self.scope)
