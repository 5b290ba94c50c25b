"""The app's access log: one JSON line per HTTP request and per WebSocket, with nginx's
X-Request-ID; an ASGI middleware, and the same line from a WSGI wrapper (wsgi.py), so
every server the benchmark compares pays for the same log.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, MutableMapping
from typing import Any

logger = logging.getLogger("mainkode_example.access")
WORKER_PID = os.getpid()


# ASGI messages are plain dicts; typing each event kind would add nothing here.
Message = MutableMapping[str, Any]
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def write(
    request_id: str,
    kind: str,
    method: str,
    path: str,
    status: int | None,
    *,
    duration_ms: float,
    client: str | None,
    close_code: int | None = None,
) -> None:
    """The one access line, whichever entry point served the request."""
    logger.info(
        "%s %s %s",
        method if kind == "http" else "WEBSOCKET",
        path,
        status,
        extra={
            "request_id": request_id,
            "type": kind,
            "method": method,
            "path": path,
            "status": status,
            "close_code": close_code,
            "duration_ms": duration_ms,
            "client": client,
            "pid": WORKER_PID,
        },
    )


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
            write(
                _header(scope, b"x-request-id"),
                scope["type"],
                scope.get("method", "GET"),
                scope["path"],
                outcome["status"],
                close_code=outcome.get("close_code"),
                duration_ms=round((time.monotonic() - started) * 1000, 2),
                client=client[0] if client else None,
            )


class WsgiAccessLog:
    """The same line for a WSGI server: written when the response's iterable is closed
    (the server's signal that it has been sent)."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        started = time.monotonic()
        outcome: dict[str, int | None] = {"status": None}

        def logged_start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            outcome["status"] = int(status.split(" ", 1)[0])
            return start_response(status, headers, exc_info)

        result = self.app(environ, logged_start_response)

        def close() -> None:
            try:
                inner = getattr(result, "close", None)
                if inner is not None:
                    inner()
            finally:
                write(
                    environ.get("HTTP_X_REQUEST_ID", ""),
                    "http",
                    environ.get("REQUEST_METHOD", "GET"),
                    environ.get("PATH_INFO", ""),
                    outcome["status"],
                    duration_ms=round((time.monotonic() - started) * 1000, 2),
                    client=environ.get("REMOTE_ADDR"),
                )

        return _Closing(result, close)


class _Closing:
    """A response iterable whose close() also runs `on_close` (PEP 3333: servers call it)."""

    def __init__(self, result: Iterable[bytes], on_close: Callable[[], None]) -> None:
        self.result, self.close = result, on_close

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.result)
