"""Optional error tracking (docs/operations.md: Error tracking): with SENTRY_DSN set,
unhandled exceptions and ERROR log records go to Sentry, tagged with nginx's request id;
without it the SDK is never initialised. Why: docs/design.md (Metrics).
"""

from __future__ import annotations

import logging
from typing import Any

import sentry_sdk
from django.conf import settings
from django.http import HttpRequest
from sentry_sdk.integrations.django import DjangoIntegration
from sentry_sdk.integrations.logging import LoggingIntegration

from core.middleware import SyncAndAsyncMiddleware


def init() -> bool:
    """Start the SDK if SENTRY_DSN is set (mainkode_example/settings.py); whether it did."""
    if not settings.SENTRY_DSN:
        return False
    sentry_sdk.init(
        dsn=settings.SENTRY_DSN,
        environment=settings.SENTRY_ENVIRONMENT,
        release=settings.SENTRY_RELEASE or None,
        sample_rate=settings.SENTRY_SAMPLE_RATE,
        traces_sample_rate=settings.SENTRY_TRACES_SAMPLE_RATE,
        integrations=[DjangoIntegration(), LoggingIntegration(level=logging.INFO, event_level=logging.ERROR)],
    )
    return True


class RequestIdTagMiddleware(SyncAndAsyncMiddleware):
    """Tags the request's events with its X-Request-ID (set by nginx), as `request_id`.
    In MIDDLEWARE only while SENTRY_DSN is set (settings.py)."""

    def __call__(self, request: HttpRequest) -> Any:
        if request_id := request.headers.get("X-Request-ID"):
            # The isolation scope: the SDK gives each request its own.
            sentry_sdk.set_tag("request_id", request_id)
        # Sync: the response; async: the coroutine the handler awaits.
        return self.get_response(request)
