"""System checks of the runtime the service needs (`manage.py check`, run before migrate and
by the tests)."""

from __future__ import annotations

import sys
from typing import Any

from django.core.checks import CheckMessage, Warning, register

# asyncio.wait_for swallows a cancellation on older Pythons: docs/design.md (Images).
MINIMUM_PYTHON = (3, 12)


@register()
def python_version_check(
    app_configs: Any = None, version: tuple[int, ...] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    version = version or sys.version_info[:3]
    if version[:2] >= MINIMUM_PYTHON:
        return []
    running = ".".join(str(part) for part in version[:3])
    return [
        Warning(
            f"Python {running}: a WebSocket consumer may outlive its closed socket.",
            hint="Run Python 3.12 or newer (the image has 3.13); asyncio.wait_for before 3.12 can "
            "swallow the cancellation that ends a consumer (CPython issue #86296).",
            id="core.W001",
        )
    ]
