"""Logging in: `POST /api/auth/token/` (username and password -> a new API token) and
the admin's login page, both behind one throttle per client address (AUTH_THROTTLE_RATE,
core.throttling): past it, 429 with Retry-After. Logging out: `POST /api/auth/logout/`
ends the token the request carries, `POST /api/auth/logout-all/` every token of its user.
"""

from __future__ import annotations

import math
from typing import Any

import redis
from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from drf_spectacular.utils import extend_schema, extend_schema_view, inline_serializer
from knox import views as knox_views
from knox.models import AuthToken
from rest_framework import serializers
from rest_framework.authtoken.serializers import AuthTokenSerializer
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api_errors import RETRY_AFTER_SECONDS
from core.authentication import TokenAuthentication
from core.throttling import LoginThrottle


class ObtainTokenView(APIView):
    """Username and password -> a new API token (django-rest-knox: stored hashed, expiring
    after API_TOKEN_TTL_HOURS), behind the login throttle."""

    authentication_classes: list[type] = []
    permission_classes = [AllowAny]
    throttle_classes = [LoginThrottle]

    @extend_schema(
        request=AuthTokenSerializer,
        responses=inline_serializer("Token", {"token": serializers.CharField(), "expiry": serializers.DateTimeField()}),
    )
    def post(self, request: Request) -> Response:
        credentials = AuthTokenSerializer(data=request.data, context={"request": request})
        credentials.is_valid(raise_exception=True)
        token, key = AuthToken.objects.create(credentials.validated_data["user"])
        return Response({"token": key, "expiry": token.expiry})


@extend_schema_view(post=extend_schema(request=None, responses={204: None}))
class LogoutView(knox_views.LogoutView):
    """django-rest-knox's: the token the request carries stops working (204)."""

    authentication_classes = [TokenAuthentication]


@extend_schema_view(post=extend_schema(request=None, responses={204: None}))
class LogoutAllView(knox_views.LogoutAllView):
    """django-rest-knox's: every token of the request's user stops working (204)."""

    authentication_classes = [TokenAuthentication]


class ThrottledAdminSite(admin.AdminSite):
    """Django's admin site whose login form is behind the same throttle
    (core.apps.AdminConfig makes it the default site)."""

    def login(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        if request.method == "POST":
            throttle = LoginThrottle()
            try:
                allowed = throttle.allow_request(request, None)
            except (redis.ConnectionError, redis.TimeoutError):  # the counters' store is down
                return HttpResponse(
                    "Logging in is unavailable; retry shortly.\n",
                    status=503,
                    content_type="text/plain",
                    headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
                )
            if not allowed:
                retry_after = math.ceil(throttle.wait())
                return HttpResponse(
                    f"Too many login attempts; retry in {retry_after} seconds.\n",
                    status=429,
                    content_type="text/plain",
                    headers={"Retry-After": str(retry_after)},
                )
        return super().login(request, extra_context)
