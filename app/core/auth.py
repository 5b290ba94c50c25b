"""`POST /api/auth/token/`: username and password -> the user's API token."""

from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.throttling import ScopedRateThrottle


class ObtainTokenView(ObtainAuthToken):
    """DRF's token view, throttled per client address (AUTH_THROTTLE_RATE): DRF's own
    sets no throttle, which leaves passwords open to brute force."""

    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "auth"
