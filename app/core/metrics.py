"""The app's Prometheus metrics (prometheus-client): every one is named here, and the
code that moves each is here too (HTTP: a Django middleware, so both HTTP paths of asgi.py
count; WebSockets: an ASGI middleware; the channel layer: core.groups.group_send; the
Postgres pool: read after each request).

Every process writes its values to files in PROMETHEUS_MULTIPROC_DIR (prometheus-client's
multiprocess mode: set before Python starts, the image's ENV); the Gunicorn master merges
them into one view of the replica and serves it on METRICS_PORT, which nginx never
proxies (gunicorn.conf.py). Gauges count live processes only ("livesum"): a worker that
dies takes its open sockets and requests in flight with it. What each metric means and
the questions it answers: docs/operations.md (Metrics)."""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.db import connections
from django.http import HttpRequest, HttpResponseBase

# The values' files go here, in every process that moves a metric (the worker service and
# `migrate` too): the directory must exist before the first value is created.
if directory := os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.makedirs(directory, exist_ok=True)

from prometheus_client import Counter, Gauge, Histogram

# Seconds: from a cached answer to a slow export.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# Seconds a socket stays open: a page view to a day-long tab.
SOCKET_LIFETIME_BUCKETS = (1.0, 10.0, 60.0, 300.0, 1800.0, 3600.0, 14400.0, 86400.0)
# The close codes worth a series of their own; any other is "other" (clients choose
# codes 3000-4999 freely, and a label value per code would be unbounded).
CLOSE_CODES = {1000, 1001, 1005, 1006, 1008, 1009, 1011, 1012, 1013, 4403, 4404}
# The route label of a request no URL pattern matched (a 404, or answered before routing).
UNMATCHED = "<unmatched>"

HTTP_REQUESTS = Counter(
    "app_http_requests",
    "HTTP requests answered, by method, URL pattern (never the raw path) and status.",
    ["method", "route", "status"],
)
HTTP_DURATION = Histogram(
    "app_http_request_duration_seconds",
    "Time from the request reaching Django to its response, by URL pattern.",
    ["route"],
    buckets=LATENCY_BUCKETS,
)
HTTP_IN_FLIGHT = Gauge("app_http_requests_in_flight", "HTTP requests being answered now.", multiprocess_mode="livesum")

SOCKETS_OPEN = Gauge(
    "app_websocket_connections", "WebSockets open now, by route.", ["route"], multiprocess_mode="livesum"
)
SOCKETS_OPENED = Counter("app_websocket_opened", "WebSockets accepted, by route.", ["route"])
SOCKETS_CLOSED = Counter(
    "app_websocket_closed", "Accepted WebSockets that ended, by route and close code.", ["route", "code"]
)
SOCKET_DURATION = Histogram(
    "app_websocket_duration_seconds",
    "How long accepted WebSockets stayed open, by route.",
    ["route"],
    buckets=SOCKET_LIFETIME_BUCKETS,
)
FRAMES_RECEIVED = Counter("app_websocket_frames_received", "WebSocket frames from clients, by route.", ["route"])
FRAMES_SENT = Counter("app_websocket_frames_sent", "WebSocket frames to clients, by route.", ["route"])

GROUP_SENDS = Counter("app_channel_layer_group_sends", "Messages sent to a group through the channel layer.")
GROUP_SEND_FAILURES = Counter("app_channel_layer_group_send_failures", "Group sends that raised (Redis gone).")
GROUP_SEND_DURATION = Histogram(
    "app_channel_layer_group_send_duration_seconds",
    "Time a group send took (the layer's write to Redis).",
    buckets=LATENCY_BUCKETS,
)

DB_POOL_CONNECTIONS = Gauge(
    "app_db_pool_connections", "Postgres connections the pools hold.", multiprocess_mode="livesum"
)
DB_POOL_IDLE = Gauge("app_db_pool_idle", "Pooled Postgres connections not in use.", multiprocess_mode="livesum")
DB_POOL_WAITING = Gauge(
    "app_db_pool_waiting", "Requests waiting for a pooled Postgres connection now.", multiprocess_mode="livesum"
)
DB_POOL_WAITS = Counter("app_db_pool_waits", "Checkouts that had to wait for a connection.")
DB_POOL_WAIT_SECONDS = Counter("app_db_pool_wait_seconds", "Time checkouts waited for a connection, in total.")
DB_POOL_ERRORS = Counter("app_db_pool_errors", "Checkouts that failed (timed out or the connection broke).")


def route_of(request: HttpRequest) -> str:
    match = request.resolver_match
    return match.route if match is not None else UNMATCHED


def record_pool_stats() -> None:
    """The pools' current sizes, and what their checkouts waited since the last call
    (psycopg_pool's pop_stats: counters reset as they are read). Read through this
    thread's connections: a thread that used none (a request without a query) knows no
    pool and leaves the gauges as another thread last set them."""
    connections_, idle, waiting, pools = 0, 0, 0, 0
    for connection in connections.all(initialized_only=True):
        pool = getattr(connection, "pool", None)
        if pool is None:
            continue
        pools += 1
        stats = pool.pop_stats()
        connections_ += stats.get("pool_size", 0)
        idle += stats.get("pool_available", 0)
        waiting += stats.get("requests_waiting", 0)
        DB_POOL_WAITS.inc(stats.get("requests_queued", 0))
        DB_POOL_WAIT_SECONDS.inc(stats.get("requests_wait_ms", 0) / 1000)
        DB_POOL_ERRORS.inc(stats.get("requests_errors", 0) + stats.get("connections_lost", 0))
    if pools:
        DB_POOL_CONNECTIONS.set(connections_)
        DB_POOL_IDLE.set(idle)
        DB_POOL_WAITING.set(waiting)


class RequestMetricsMiddleware:
    """Counts and times each request by the URL pattern that answered it. Sync and async
    (Django's WSGI handler in threads, or its ASGI handler), so no thread hop is added."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self.__acall__(request)
        started = time.perf_counter()
        HTTP_IN_FLIGHT.inc()
        try:
            response = self.get_response(request)
        finally:
            HTTP_IN_FLIGHT.dec()
        self.record(request, response, started)
        return response

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        started = time.perf_counter()
        HTTP_IN_FLIGHT.inc()
        try:
            response: HttpResponseBase = await self.get_response(request)
        finally:
            HTTP_IN_FLIGHT.dec()
        self.record(request, response, started)
        return response

    @staticmethod
    def record(request: HttpRequest, response: HttpResponseBase, started: float) -> None:
        route = route_of(request)
        HTTP_DURATION.labels(route).observe(time.perf_counter() - started)
        HTTP_REQUESTS.labels(request.method or "", route, str(response.status_code)).inc()
        record_pool_stats()


Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]


class SocketMetricsMiddleware:
    """Counts a WebSocket's life by the route it matched (`routes`: the URL patterns the
    Channels router tries, in its order): accepted, open, frames each way, closed with
    which code, for how long."""

    def __init__(self, app: Any, routes: Sequence[Any]) -> None:
        self.app = app
        self.routes = routes

    def route(self, path: str) -> str:
        """The first pattern that matches, as written (a regex without its anchors)."""
        path = path.removeprefix("/")
        for route in self.routes:
            if route.pattern.match(path):
                return str(route.pattern).removeprefix("^").removesuffix("$") or UNMATCHED
        return UNMATCHED

    async def __call__(self, scope: Scope, receive: Callable[[], Awaitable[Message]], send: Any) -> None:
        route = self.route(scope["path"])
        received, sent = FRAMES_RECEIVED.labels(route), FRAMES_SENT.labels(route)
        state: dict[str, Any] = {"accepted": None, "code": 1006}  # no close frame seen: abnormal

        async def counted_receive() -> Message:
            message = await receive()
            if message["type"] == "websocket.receive":
                received.inc()
            elif message["type"] == "websocket.disconnect":
                state["code"] = message.get("code", 1005)
            return message

        async def counted_send(message: Message) -> None:
            await send(message)
            kind = message["type"]
            if kind == "websocket.send":
                sent.inc()
            elif kind == "websocket.accept":
                state["accepted"] = time.monotonic()
                SOCKETS_OPENED.labels(route).inc()
                SOCKETS_OPEN.labels(route).inc()
            elif kind == "websocket.close":
                state["code"] = message.get("code", 1000)

        try:
            await self.app(scope, counted_receive, counted_send)
        finally:
            if state["accepted"] is not None:
                code = state["code"] if state["code"] in CLOSE_CODES else "other"
                SOCKETS_OPEN.labels(route).dec()
                SOCKETS_CLOSED.labels(route, str(code)).inc()
                SOCKET_DURATION.labels(route).observe(time.monotonic() - state["accepted"])
