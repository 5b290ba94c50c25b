"""The app's access log: one JSON object per HTTP request and per WebSocket connection,
carrying nginx's X-Request-ID, so one request can be followed through nginx's log and
the app's. An ASGI middleware around the whole application (uvicorn's own access log is
off: its line format has no room for the request id)."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

logger = logging.getLogger("mainkode_example.access")
WORKER_PID = os.getpid()


# ASGI messages are plain dicts; typing each event kind would add nothing here.
Message = MutableMapping[str, Any]
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope.get("headers", []):
        if key == name:
            return bytes(value).decode("latin-1")
    return ""


class AccessLogMiddleware:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        started = time.monotonic()
        outcome: dict[str, Any] = {"status": None}

        async def logged_send(event: Message) -> None:
            kind = event["type"]
            if kind == "http.response.start":
                outcome["status"] = event["status"]
            elif kind == "websocket.accept":
                outcome["status"] = 101
            elif kind == "websocket.close":
                if outcome["status"] is None:
                    outcome["status"] = 403  # closed before accept: the handshake was refused
                outcome["close_code"] = event.get("code", 1000)
            await send(event)

        try:
            await self.app(scope, receive, logged_send)
        finally:
            client = scope.get("client")
            logger.info(
                "%s %s %s",
                scope.get("method", "WEBSOCKET"),
                scope["path"],
                outcome["status"],
                extra={
                    "request_id": _header(scope, b"x-request-id"),
                    "type": scope["type"],
                    "method": scope.get("method", "GET"),
                    "path": scope["path"],
                    "status": outcome["status"],
                    "close_code": outcome.get("close_code"),
                    "duration_ms": round((time.monotonic() - started) * 1000, 2),
                    "client": client[0] if client else None,
                    "pid": WORKER_PID,
                },
            )
