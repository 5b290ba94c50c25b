"""Logging in: `POST /api/auth/token/` (username and password -> the user's API token) and
the admin's login page, both behind one throttle per client address (AUTH_THROTTLE_RATE).

The throttle is a counter in the shared cache (Redis), counted with an atomic INCR: DRF's
own throttles read a history, then write it back, so concurrent attempts all pass the same
check (an outside probe had 15 concurrent wrong logins processed against a limit of 10).
Here each attempt takes a number, and the ones past the limit get 429 with Retry-After.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, cast

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.parsers import BaseParser
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle


class LoginThrottle(SimpleRateThrottle):
    """At most AUTH_THROTTLE_RATE login attempts per client address and window."""

    scope = "auth"
    # Set by SimpleRateThrottle.__init__ from the rate (DRF's stubs leave them out).
    num_requests: int
    duration: int

    def get_cache_key(self, request: Any, view: Any) -> str:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}

    def allow_request(self, request: Any, view: Any) -> bool:
        if self.rate is None:
            return True
        key = self.get_cache_key(request, view)
        now = self.timer()
        # The window opens with the first attempt and closes `duration` later (SET NX, with
        # that expiry); INCR keeps the expiry.
        self.cache.add(f"{key}:opened", now, self.duration)
        self.cache.add(key, 0, self.duration)
        try:
            attempt = self.cache.incr(key)
        except ValueError:  # the window closed between the two calls: this opens the next
            self.cache.add(key, 1, self.duration)
            attempt = 1
        opened = self.cache.get(f"{key}:opened", now)
        self.retry_after = max(1.0, opened + self.duration - now)
        return bool(attempt <= self.num_requests)

    def wait(self) -> float:
        return float(self.retry_after)


class ObtainTokenView(ObtainAuthToken):
    """DRF's token view, with the login throttle (DRF's own has none, which leaves
    passwords open to brute force)."""

    throttle_classes = [LoginThrottle]
    # DRF's view names its own parsers; the project's (settings.REST_FRAMEWORK) instead.
    parser_classes = cast(Sequence[type[BaseParser]], api_settings.DEFAULT_PARSER_CLASSES)


class ThrottledAdminSite(admin.AdminSite):
    """Django's admin site whose login form is behind the same throttle
    (core.apps.AdminConfig makes it the default site)."""

    def login(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        if request.method == "POST":
            throttle = LoginThrottle()
            if not throttle.allow_request(request, None):
                retry_after = math.ceil(throttle.wait())
                return HttpResponse(
                    f"Too many login attempts; retry in {retry_after} seconds.\n",
                    status=429,
                    content_type="text/plain",
                    headers={"Retry-After": str(retry_after)},
                )
        return super().login(request, extra_context)
