"""JSON nested deeper than MAX_JSON_DEPTH is refused, in request bodies (a 400 like any
other malformed JSON) and in socket frames (core/websocket.py), whatever the interpreter's
own recursion limit (docs/design.md: Security and configuration)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import IO, Any

from rest_framework import parsers
from rest_framework.exceptions import ParseError

# Arrays and objects inside each other, counting the outermost (docs/api.md: Limits).
MAX_JSON_DEPTH = 32
NESTED_TOO_DEEPLY = f"JSON parse error - nested too deeply (at most {MAX_JSON_DEPTH} levels)."


class NestedTooDeeply(ValueError):
    """A JSON document nests arrays and objects deeper than MAX_JSON_DEPTH."""


def check_depth(value: Any) -> Any:
    """`value` (parsed JSON) itself, or NestedTooDeeply; walks no deeper than the limit."""
    pending: list[tuple[Any, int]] = [(value, 1)] if isinstance(value, dict | list) else []
    while pending:
        item, depth = pending.pop()
        if depth > MAX_JSON_DEPTH:
            raise NestedTooDeeply(NESTED_TOO_DEEPLY)
        children = item.values() if isinstance(item, dict) else item
        pending.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return value


def loads(text: str | bytes) -> Any:
    """json.loads with the depth limit: json.JSONDecodeError or NestedTooDeeply."""
    try:
        value = json.loads(text)
    except RecursionError:
        raise NestedTooDeeply(NESTED_TOO_DEEPLY) from None
    return check_depth(value)


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser with the depth limit."""

    def parse(
        self, stream: IO[Any], media_type: str | None = None, parser_context: Mapping[str, Any] | None = None
    ) -> Any:
        try:
            return check_depth(super().parse(stream, media_type, parser_context))
        except (RecursionError, NestedTooDeeply):
            raise ParseError(NESTED_TOO_DEEPLY) from None
