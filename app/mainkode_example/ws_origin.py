"""Which WebSocket handshakes may proceed, by their Origin header.

Browsers always send Origin on a WebSocket handshake, and a page on a foreign site must
not open a socket that rides on our users' cookies (cross-site WebSocket hijacking): a
foreign Origin is refused (HTTP 403). Clients that are not browsers (wscat, the seed's own
example, services) send no Origin and cannot carry a victim's cookies, so a *missing*
Origin is let through. Channels' AllowedHostsOriginValidator would refuse those.

Allowed origins: every host in ALLOWED_HOSTS (any scheme and port, Channels' rules), plus
CSRF_TRUSTED_ORIGINS for a front end served from another origin.
"""

from typing import Any
from urllib.parse import ParseResult

from channels.security.websocket import OriginValidator
from django.conf import settings


class BrowserOriginValidator(OriginValidator):
    def __init__(self, application: Any) -> None:
        allowed = list(settings.ALLOWED_HOSTS) + list(settings.CSRF_TRUSTED_ORIGINS)
        if settings.DEBUG and not settings.ALLOWED_HOSTS:
            allowed = ["localhost", "127.0.0.1", "[::1]"]
        super().__init__(application, allowed)

    def valid_origin(self, parsed_origin: ParseResult | None) -> bool:
        if parsed_origin is None:
            return True
        return bool(self.validate_origin(parsed_origin))
