"""`GET /api/diagnostics/sleep/?seconds=N`: a request that takes N seconds (at most 30)
without blocking the worker. Routed only with DJANGO_ENV=local: it lets the test suite
hold a request in flight while it stops a container (graceful shutdown must let it
finish). Never exposed in production."""

from __future__ import annotations

import asyncio

from django.http import HttpRequest, JsonResponse

MAX_SECONDS = 30.0


async def sleep_view(request: HttpRequest) -> JsonResponse:
    try:
        seconds = float(request.GET.get("seconds", "1"))
    except ValueError:
        return JsonResponse({"seconds": ["A number is required."]}, status=400)
    if not 0 <= seconds <= MAX_SECONDS:
        return JsonResponse({"seconds": [f"Between 0 and {MAX_SECONDS:g}."]}, status=400)
    await asyncio.sleep(seconds)
    return JsonResponse({"slept": seconds})
