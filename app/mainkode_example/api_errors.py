"""API errors beyond DRF's own: a database that cannot be reached is the server's
temporary problem, not a bug: 503 with a clear body and Retry-After, quickly (the pool
gives up after DB_POOL_TIMEOUT seconds), instead of an HTML 500."""

from __future__ import annotations

import logging
from typing import Any

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.defaults import page_not_found
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

logger = logging.getLogger(__name__)
RETRY_AFTER_SECONDS = 5


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    response = drf_exception_handler(exc, context)
    if response is None and isinstance(exc, OperationalError | InterfaceError):
        logger.warning("database unavailable: %s", exc)
        return Response(
            {"detail": "The database is unavailable; retry shortly."},
            status=503,
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    return response


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """handler404 (urls.py): an unknown URL under /api/ (e.g. a room path that is no slug)
    answers JSON like the API's own 404s; anywhere else, Django's page."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Not found."}, status=404)
    return page_not_found(request, exception)
