"""Logging in: `POST /api/auth/token/` (username and password -> the user's API token) and
the admin's login page, both behind one throttle per client address (AUTH_THROTTLE_RATE,
core.throttling): past it, 429 with Retry-After.
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

from core.throttling import LoginThrottle


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
