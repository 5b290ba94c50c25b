"""Plain HTTP through Django's WSGI handler, one request per thread of a bounded pool,
inside the ASGI worker (DJANGO_HTTP_HANDLER=wsgi, the default): the event loop goes on
serving WebSockets meanwhile. Responses are collected, then sent. Why, and why no
library's adapter: docs/design.md (The server layer).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from io import BytesIO
from tempfile import SpooledTemporaryFile
from typing import IO, Any

from asgiref.sync import sync_to_async
from asgiref.wsgi import WsgiToAsgiInstance

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
Response = tuple[int, list[tuple[bytes, bytes]], bytes]
BAD_REQUEST: Response = (400, [(b"content-type", b"application/json")], b'{"detail": "Too many duplicate headers."}')


class ThreadedWsgiApp:
    def __init__(self, wsgi_app: WsgiApp, threads: int) -> None:
        self.wsgi_app = wsgi_app
        executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="django-http")
        self.respond_in_pool = sync_to_async(self.respond, thread_sensitive=False, executor=executor)

    async def __call__(self, scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        if not message.get("more_body"):  # the whole body at once (a GET: none), in memory
            status, headers, content = await self.respond_in_pool(scope, BytesIO(message.get("body", b"")))
        else:
            with SpooledTemporaryFile(max_size=65536) as body:  # a large one: to disk past 64 KiB
                body.write(message.get("body", b""))
                while message.get("more_body"):  # nginx has buffered the body already: this is quick
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        return
                    body.write(message.get("body", b""))
                body.seek(0)
                status, headers, content = await self.respond_in_pool(scope, body)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": content})

    def respond(self, scope: dict[str, Any], body: IO[bytes]) -> Response:
        adapter = WsgiToAsgiInstance(self.wsgi_app)  # type: ignore[no-untyped-call]
        adapter.scope = scope  # build_environ reads the headers from it
        try:
            environ = adapter.build_environ(scope, body)  # type: ignore[no-untyped-call]
        except ValueError:  # asgiref's duplicate-header limit
            return BAD_REQUEST
        started: dict[str, Any] = {}

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
            started["status"] = int(status.split(" ", 1)[0])
            started["headers"] = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers]

        result = self.wsgi_app(environ, start_response)
        try:
            content = b"".join(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()  # Django's request_finished: the DB connection goes back to the pool
        return started["status"], started["headers"], content
