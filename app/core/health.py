"""Health endpoints, answered before the Host check: `/healthz` (liveness, a middleware
placed first: no database, no Redis) and `/readyz` (readiness: Postgres, Redis and no
unapplied migration; 503 naming what fails).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as redis
from asgiref.sync import async_to_sync, sync_to_async
from django.conf import settings
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.http import HttpRequest, HttpResponse, JsonResponse

from core.middleware import SyncAndAsyncMiddleware

logger = logging.getLogger(__name__)

LIVENESS_PATH = "/healthz"
READINESS_PATH = "/readyz"
# Seconds each dependency gets to answer a readiness probe.
CHECK_TIMEOUT = 3.0

_migrations_known_applied = False


def _check_postgres() -> None:
    """One round trip, then the migration plan (cached once empty: applied migrations do
    not un-apply themselves while the process runs)."""
    global _migrations_known_applied
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        if not _migrations_known_applied:
            executor = MigrationExecutor(connection)
            plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
            if plan:
                raise RuntimeError(f"{len(plan)} unapplied migration(s)")
            _migrations_known_applied = True
    finally:
        # Hand the connection back to the pool now; this runs outside a request cycle.
        connection.close()


async def _check_redis() -> None:
    # The same server and credentials the channel layer uses (settings.CHANNEL_LAYERS).
    client = redis.Redis.from_url(
        settings.REDIS_URL, password=settings.REDIS_PASSWORD or None, socket_connect_timeout=CHECK_TIMEOUT
    )
    try:
        await client.ping()
    finally:
        await client.aclose()


async def readiness() -> tuple[bool, dict[str, str]]:
    checks: dict[str, Callable[[], Awaitable[None]]] = {
        "postgres": sync_to_async(_check_postgres, thread_sensitive=False),
        "redis": _check_redis,
    }
    results: dict[str, str] = {}

    async def run(name: str, check: Callable[[], Awaitable[None]]) -> None:
        try:
            await asyncio.wait_for(check(), CHECK_TIMEOUT)
            results[name] = "ok"
        except Exception as exc:  # any failure is "not ready", with the reason
            reason = "timeout" if isinstance(exc, TimeoutError) else f"{type(exc).__name__}: {exc}".strip()
            logger.warning("readiness check %s failed: %s", name, reason)
            results[name] = f"error: {reason}"[:300]

    await asyncio.gather(*(run(name, check) for name, check in checks.items()))
    return all(value == "ok" for value in results.values()), dict(sorted(results.items()))


class LivenessMiddleware(SyncAndAsyncMiddleware):
    """Answers the two probe paths before any other middleware runs."""

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self.__acall__(request)
        if request.path == LIVENESS_PATH:
            return JsonResponse({"status": "ok"})
        if request.path == READINESS_PATH:
            # In a pool thread of core.http_threads this runs on the worker's event loop.
            return readiness_response(*async_to_sync(readiness)())
        return self.get_response(request)

    async def __acall__(self, request: HttpRequest) -> HttpResponse:
        if request.path == LIVENESS_PATH:
            return JsonResponse({"status": "ok"})
        if request.path == READINESS_PATH:
            return readiness_response(*await readiness())
        response: HttpResponse = await self.get_response(request)
        return response


def readiness_response(ready: bool, checks: dict[str, str]) -> JsonResponse:
    return JsonResponse({"status": "ok" if ready else "unavailable", "checks": checks}, status=200 if ready else 503)
