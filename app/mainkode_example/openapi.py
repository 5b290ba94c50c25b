"""The error answers every API operation can give, added to the OpenAPI schema.

drf-spectacular documents what a view returns on success; the errors come from layers it
does not see (DRF's authentication and parsers, pagination, nginx's limits, the database
outage handler), so clients and schema fuzzers (schemathesis, in the stack tests) would
otherwise meet undocumented status codes. A postprocessing hook adds them in one place.
"""

from __future__ import annotations

from typing import Any

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
    """POSTPROCESSING_HOOKS entry: SPECTACULAR_SETTINGS in settings.py."""
    result.setdefault("components", {}).setdefault("schemas", {}).update(SCHEMAS)
    for path, operations in result.get("paths", {}).items():
        for method, operation in operations.items():
            for status, response in errors_of(path, method, operation).items():
                operation["responses"].setdefault(status, response)
    return result
