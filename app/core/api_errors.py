"""API errors beyond DRF's own (a store out of reach: 503 with Retry-After; an unknown
/api/ URL: a JSON 404) and the error answers every operation lists in the OpenAPI
schema. Why: docs/design.md (Security and configuration).
"""

from __future__ import annotations

import logging
from typing import Any

import redis
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.defaults import page_not_found
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

logger = logging.getLogger(__name__)
RETRY_AFTER_SECONDS = 5


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """REST_FRAMEWORK["EXCEPTION_HANDLER"]."""
    response = drf_exception_handler(exc, context)
    if response is None and isinstance(exc, OperationalError | InterfaceError):
        logger.warning("database unavailable: %s", exc)
        return unavailable("The database is unavailable; retry shortly.")
    if response is None and isinstance(exc, redis.ConnectionError | redis.TimeoutError):
        logger.warning("redis unavailable: %s", exc)
        return unavailable("A store the request needs is unavailable; retry shortly.")
    return response


def unavailable(detail: str) -> Response:
    return Response({"detail": detail}, status=503, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """handler404 (mainkode_example.urls): JSON under /api/, Django's page elsewhere."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Not found."}, status=404)
    return page_not_found(request, exception)


# --- The error answers in the schema ------------------------------------------------------
DETAIL = {"$ref": "#/components/schemas/ErrorDetail"}
SCHEMAS: dict[str, Any] = {
    "ErrorDetail": {
        "type": "object",
        "properties": {"detail": {"type": "string"}},
        "required": ["detail"],
    },
    "FieldErrors": {
        "type": "object",
        "description": "Each invalid field (or `detail`, or `non_field_errors`) with its messages.",
        "additionalProperties": True,
    },
}
WRITES = {"post", "put", "patch", "delete"}


def error(description: str, schema: dict[str, Any] = DETAIL) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def errors_of(path: str, method: str, operation: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = {
        # TokenAuthentication refuses an unknown token on any operation, reads included.
        "401": error("Missing (on writes) or invalid credentials."),
        "429": error("Too many requests (nginx's per-address limit, or the login throttle)."),
        "503": error("The database is unavailable; retry after `Retry-After` seconds."),
    }
    if operation.get("parameters") or operation.get("requestBody"):
        found["400"] = error(
            "Malformed JSON or invalid fields or query parameters.", {"$ref": "#/components/schemas/FieldErrors"}
        )
    if "{" in path or any(p.get("name") in {"cursor", "page"} for p in operation.get("parameters", [])):
        found["404"] = error("No such object, or an invalid page or cursor.")
    if method in WRITES:
        found["403"] = error("A session-authenticated write without a valid CSRF token.")
    if operation.get("requestBody"):
        found["413"] = error("The body is larger than nginx's client_max_body_size.")
    return found


def document_error_responses(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """SPECTACULAR_SETTINGS["POSTPROCESSING_HOOKS"] entry."""
    result.setdefault("components", {}).setdefault("schemas", {}).update(SCHEMAS)
    for path, operations in result.get("paths", {}).items():
        for method, operation in operations.items():
            for status, response in errors_of(path, method, operation).items():
                operation["responses"].setdefault(status, response)
    return result
