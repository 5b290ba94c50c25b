"""The API's JSON parser: DRF's, except that a body nested deeper than Python's recursion
limit is a 400 like any other malformed JSON (DRF's lets the RecursionError through: an
anonymous 200 kB body of brackets was a 500 with a traceback)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import IO, Any

from rest_framework import parsers
from rest_framework.exceptions import ParseError

NESTED_TOO_DEEPLY = "JSON parse error - nested too deeply."


class JSONParser(parsers.JSONParser):
    def parse(
        self, stream: IO[Any], media_type: str | None = None, parser_context: Mapping[str, Any] | None = None
    ) -> Any:
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError(NESTED_TOO_DEEPLY) from None
