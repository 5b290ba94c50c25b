"""The threaded WSGI path that asgi.py uses for plain HTTP (DJANGO_HTTP_HANDLER=wsgi)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any
from wsgiref.util import setup_testing_defaults

import pytest
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application

from core.http_threads import ThreadedWsgiApp
from mainkode_example.wsgi import application as wsgi_entry_point  # imported here: it sets Django up
from tests.clients import HELLO_BODY


async def call(app: ThreadedWsgiApp, path: str, headers: list[tuple[bytes, bytes]] | None = None) -> list[Any]:
    route, _, query = path.partition("?")
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": route,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(b"host", b"localhost"), *(headers or [])],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
    }
    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


@pytest.mark.asyncio
async def test_a_request_runs_in_a_pool_thread_and_finishes_like_under_wsgi() -> None:
    app = ThreadedWsgiApp(get_wsgi_application(), threads=2)
    finished_in: list[str] = []

    def on_finished(**kwargs: Any) -> None:
        finished_in.append(threading.current_thread().name)

    request_finished.connect(on_finished)
    try:
        start, body = await call(app, "/api/hello/")
    finally:
        request_finished.disconnect(on_finished)
    assert start["status"] == 200
    assert body["body"] == HELLO_BODY
    # close() was called: Django's request_finished (which hands the DB connection back)
    # fired, in the pool's thread, not on the event loop's.
    assert len(finished_in) == 1
    assert finished_in[0].startswith("django-http")


@pytest.mark.asyncio
async def test_slow_requests_share_the_pool_up_to_its_size_and_no_further() -> None:
    app = ThreadedWsgiApp(get_wsgi_application(), threads=3)
    threads: set[str] = set()

    def on_started(**kwargs: Any) -> None:
        threads.add(threading.current_thread().name)

    request_started.connect(on_started)
    try:  # 6 requests that each hold their thread 0.3 s (an async view, run on this loop)
        results = await asyncio.gather(*(call(app, "/api/diagnostics/sleep/?seconds=0.3") for _ in range(6)))
    finally:
        request_started.disconnect(on_started)
    assert all(start["status"] == 200 for start, _ in results)
    assert len(threads) == 3  # overlapping requests used every thread, and no more


@pytest.mark.asyncio
async def test_too_many_duplicate_headers_get_a_400_not_a_crash() -> None:
    app = ThreadedWsgiApp(get_wsgi_application(), threads=1)
    start, body = await call(app, "/api/hello/", [(b"x-dup", b"1")] * 101)
    assert start["status"] == 400
    assert b"duplicate headers" in body["body"]


def test_the_wsgi_entry_point_writes_the_same_access_line(caplog: pytest.LogCaptureFixture) -> None:
    """Every server the benchmark compares pays for the same log: wsgi.py writes the line
    asgi.py writes, when the server closes the response."""
    environ: dict[str, Any] = {"PATH_INFO": "/api/hello/", "HTTP_X_REQUEST_ID": "req-42", "REMOTE_ADDR": "10.0.0.9"}
    setup_testing_defaults(environ)
    environ["HTTP_HOST"] = "localhost"
    statuses: list[str] = []
    with caplog.at_level("INFO", logger="mainkode_example.access"):
        result = wsgi_entry_point(environ, lambda status, headers, exc_info=None: statuses.append(status))
        body = b"".join(result)
        assert not caplog.records, "the line waits for the server to close the response"
        result.close()  # type: ignore[attr-defined]
    assert statuses == ["200 OK"]
    assert body == HELLO_BODY
    [line] = caplog.records
    assert (line.request_id, line.method, line.path, line.status, line.client) == (  # type: ignore[attr-defined]
        "req-42",
        "GET",
        "/api/hello/",
        200,
        "10.0.0.9",
    )


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "chunks", [[b""], [b"all at once"], [b"in ", b"three ", b"parts"], [b"x" * 70000, b"y" * 70000]]
)
async def test_the_body_reaches_the_wsgi_app_whole_however_it_arrives(chunks: list[bytes]) -> None:
    """In memory when it comes in one message, spooled (to disk past 64 KiB) when in several."""

    def echo_body(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return [environ["wsgi.input"].read()]

    messages = [
        {"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1} for i, chunk in enumerate(chunks)
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "http_version": "1.1", "method": "POST", "path": "/", "query_string": b"", "headers": []}
    await ThreadedWsgiApp(echo_body, threads=1)(scope, receive, send)
    assert sent[0]["status"] == 200
    assert sent[1]["body"] == b"".join(chunks)
