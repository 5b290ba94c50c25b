"""The app's Prometheus metrics: every one is named here, with the code that moves it (HTTP
and WebSocket middleware, group sends, the Postgres pool, finished tasks); the task
queue's state is the worker service's (worker/queue.py). Each process writes to
PROMETHEUS_MULTIPROC_DIR; the arbiter serves them merged (server/metrics.py). Why:
docs/design.md (Metrics); what each means: docs/operations.md (Metrics).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

from django.db import connections
from django.http import HttpRequest, HttpResponseBase

# The values' files go here, in every process that moves a metric (the worker service and
# `migrate` too): the directory must exist before the first value is created.
if directory := os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.makedirs(directory, exist_ok=True)

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, multiprocess, start_http_server

from core.middleware import SyncAndAsyncMiddleware

# Seconds: from a cached answer to a slow export.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# Seconds a task runs: a message to an export of a large room.
TASK_DURATION_BUCKETS = (0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0)
# Seconds a socket stays open: a page view to a day-long tab.
SOCKET_LIFETIME_BUCKETS = (1.0, 10.0, 60.0, 300.0, 1800.0, 3600.0, 14400.0, 86400.0)
# The close codes worth a series of their own; any other is "other" (clients choose
# codes 3000-4999 freely, and a label value per code would be unbounded).
CLOSE_CODES = {1000, 1001, 1005, 1006, 1008, 1009, 1011, 1012, 1013, 4403, 4404, 4408}
# The route label of a request no URL pattern matched (a 404, or answered before routing).
UNMATCHED = "<unmatched>"

HTTP_REQUESTS = Counter(
    "app_http_requests",
    "HTTP requests answered, by method (`other` for unusual ones), URL pattern (never the raw path) and status.",
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
SOCKET_EVENTS_DROPPED = Counter(
    "app_websocket_events_dropped", "Group events dropped for sockets whose client read too slowly (closed with 4408)."
)

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

TASKS_FINISHED = Counter(
    "app_tasks_finished", "Tasks that ended, by task and outcome (successful, failed).", ["task", "status"]
)
TASK_DURATION = Histogram(
    "app_task_duration_seconds", "How long tasks ran, by task.", ["task"], buckets=TASK_DURATION_BUCKETS
)


def serve(port: int, *collectors: Any) -> None:
    """Serve this container's metrics on `port` from a thread: the values every process
    here wrote (multiprocess mode) and what `collectors` read at each scrape. Raises
    OSError if the port is taken."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:  # a process of its own (a developer's run_worker): its values are all there is
        registry = REGISTRY
    for collector in collectors:
        registry.register(collector)
    start_http_server(port, registry=registry)


def record_task_finished(sender: Any, task_result: Any, **kwargs: Any) -> None:
    """django-tasks' task_finished receiver (connected by worker.apps)."""
    task = task_result.task.module_path
    TASKS_FINISHED.labels(task, str(task_result.status.value).lower()).inc()
    if task_result.started_at and task_result.finished_at:
        TASK_DURATION.labels(task).observe((task_result.finished_at - task_result.started_at).total_seconds())


# The methods with a label value of their own; a client may send any token as a method,
# and a label value per token would be unbounded.
METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}
_labelled: dict[tuple[Any, ...], Any] = {}


def labelled(metric: Any, *values: str) -> Any:
    """metric.labels(*values), kept: prometheus-client looks the child up under a lock each
    time. The label values are bounded (URL patterns, METHODS, status codes)."""
    key = (metric, *values)
    child = _labelled.get(key)
    if child is None:
        child = _labelled[key] = metric.labels(*values)
    return child


def route_of(request: HttpRequest) -> str:
    match = request.resolver_match
    return match.route if match is not None else UNMATCHED


class PoolStats:
    """The pools' sizes and what their checkouts waited since the last reading (psycopg_pool's
    pop_stats), read at most once a second per process through this thread's connections
    (a thread that used none leaves it to another). Why: docs/design.md (Metrics)."""

    read_at = 0.0

    @classmethod
    def record(cls) -> None:
        if time.monotonic() - cls.read_at < 1.0:
            return
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
            if queued := stats.get("requests_queued", 0):
                DB_POOL_WAITS.inc(queued)
                DB_POOL_WAIT_SECONDS.inc(stats.get("requests_wait_ms", 0) / 1000)
            if errors := stats.get("requests_errors", 0) + stats.get("connections_lost", 0):
                DB_POOL_ERRORS.inc(errors)
        if pools:
            cls.read_at = time.monotonic()
            DB_POOL_CONNECTIONS.set(connections_)
            DB_POOL_IDLE.set(idle)
            DB_POOL_WAITING.set(waiting)


class RequestMetricsMiddleware(SyncAndAsyncMiddleware):
    """Counts and times each request by the URL pattern that answered it."""

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
        method = request.method if request.method in METHODS else "other"
        labelled(HTTP_DURATION, route).observe(time.perf_counter() - started)
        labelled(HTTP_REQUESTS, method, route, str(response.status_code)).inc()
        PoolStats.record()


Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]


class FrameTally:
    """WebSocket frames counted in this process, added to their counters a second after the
    first since the last time and whenever a socket opens or closes: the counters run up to
    a second behind. Why: docs/design.md (Metrics)."""

    def __init__(self) -> None:
        self.pending: dict[Any, int] = {}
        self.timer: asyncio.TimerHandle | None = None

    def add(self, counter: Any) -> None:
        self.pending[counter] = self.pending.get(counter, 0) + 1
        if self.timer is None:
            self.timer = asyncio.get_running_loop().call_later(1.0, self.flush)

    def flush(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        pending, self.pending = self.pending, {}
        for counter, frames in pending.items():
            counter.inc(frames)


FRAMES = FrameTally()


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
                FRAMES.add(received)
            elif message["type"] == "websocket.disconnect":
                state["code"] = message.get("code", 1005)
            return message

        async def counted_send(message: Message) -> None:
            await send(message)
            kind = message["type"]
            if kind == "websocket.send":
                FRAMES.add(sent)
            elif kind == "websocket.accept":
                state["accepted"] = time.monotonic()
                SOCKETS_OPENED.labels(route).inc()
                SOCKETS_OPEN.labels(route).inc()
                FRAMES.flush()
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
                FRAMES.flush()
