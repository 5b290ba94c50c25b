"""Gunicorn configuration: every server knob of the app container, each with its reason.

Gunicorn reads this file from its working directory (the image's /app), so the design documents'
command `gunicorn mainkode_example.asgi:application -w 4 -k uvicorn_worker.UvicornWorker
--bind 0.0.0.0:8000` picks it up too; its flags override the values here.

Values an operator tunes come from the environment (documented in `.env.example`); a bad
value stops Gunicorn at start, naming the variable. This file is self-contained (it does
not import the Django project) because Gunicorn loads it before any application code.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from uvicorn_worker import UvicornWorker

# This server's workers write their metrics to a directory of its own, under the one the
# image sets (PROMETHEUS_MULTIPROC_DIR, memory) or the system's temporary one: another
# Gunicorn started in the same container (docs/operations.md) neither adds its values in
# nor wipes these. Set before prometheus-client is imported, which picks its mode then.
_metrics_base = Path(os.environ.get("PROMETHEUS_MULTIPROC_DIR") or tempfile.gettempdir())
metrics_dir = (
    _metrics_base if _metrics_base.name == f"gunicorn-{os.getpid()}" else _metrics_base / f"gunicorn-{os.getpid()}"
)  # (the first case: the arbiter reloading this file on SIGHUP)
os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)

from prometheus_client import CollectorRegistry, multiprocess, start_http_server  # noqa: E402
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily  # noqa: E402


def _env(name: str, default: str) -> str:
    """Set but empty is as good as unset (compose passes every optional knob as `${NAME:-}`)."""
    return os.environ.get(name, "").strip() or default


def _env_int(name: str, default: int, minimum: int = 0) -> int:
    raw = _env(name, "")
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SystemExit(f"Environment variable {name} is invalid: expected an integer, got {raw!r}.") from None
    if value < minimum:
        raise SystemExit(f"Environment variable {name} is invalid: expected an integer >= {minimum}, got {value}.")
    return value


def available_cpus() -> int:
    """CPUs this container may use: the CPU affinity mask, capped by a cgroup v2 quota
    (`docker run --cpus`, compose `cpus:`), which os.cpu_count() ignores."""
    count = len(os.sched_getaffinity(0))
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        if quota != "max":
            count = min(count, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, count)


# --- Socket --------------------------------------------------------------------------------
# The app's port inside its container, as the design documents' command binds it; nginx's
# upstream, the healthcheck (core.probe) and the Dockerfile's EXPOSE point here. Published
# on no host: only nginx reaches it.
bind = ["0.0.0.0:8000"]

# --- Workers -------------------------------------------------------------------------------
# One async worker per CPU: each UvicornWorker runs an event loop that serves many requests
# and sockets at once; more processes than cores only add context switches and memory
# (and Postgres connections: workers x DB_POOL_MAX_SIZE). Scale further with replicas.
workers = _env_int("GUNICORN_WORKERS", available_cpus(), minimum=1)

# Seconds a worker may go without a heartbeat before the arbiter kills it. For async
# workers this is NOT a request timeout: a slow request is fine, a blocked event loop
# (CPU-bound code in an async path) is what gets the worker killed and replaced.
timeout = _env_int("GUNICORN_TIMEOUT", 30, minimum=1)

# Seconds between SIGTERM and the arbiter's SIGKILL of workers that have not exited.
graceful_timeout = _env_int("GUNICORN_GRACEFUL_TIMEOUT", 30, minimum=2)

# Seconds the server keeps serving after SIGTERM before it starts that graceful shutdown.
# 0 under compose, where Docker's DNS drops a container only once it has exited. Swarm
# drops a task from DNS as soon as it begins to stop, and nginx re-resolves the app every
# 2 s (nginx/templates): deploy/swarm/stack.yml sets 10, so every node's nginx has let go of
# a replica (the DNS change spreads between nodes too) before it closes its listening socket.
drain_seconds = _env_int("GUNICORN_DRAIN_SECONDS", 0)


# Seconds the server stays up after its workers have exited (its port already closed)
# before it exits. Under compose, Docker's DNS drops a container only once it has exited,
# and nginx keeps the old answer up to its next query (nginx/templates: valid=2s): a
# connect to the vanished address hangs until proxy_connect_timeout (nginx's second pass
# over the replicas, locations.conf, then saves a GET, never a POST). While the process
# stays, a connect is refused at once, and nginx sets that replica aside for fail_timeout
# (10 s) and tries another. docker-compose.yml sets 3; Swarm and
# Kubernetes take a replica out of DNS before it stops (GUNICORN_DRAIN_SECONDS, preStop).
exit_hold_seconds = _env_int("GUNICORN_EXIT_HOLD_SECONDS", 0)


def on_starting(server: Any) -> None:
    """Empty the metrics directory (Metrics, below); delay the arbiter's SIGTERM handling by
    drain_seconds (its workers serve meanwhile)."""
    empty_metrics_dir()
    if drain_seconds:
        stop = server.handle_term

        def drain_then_stop() -> None:
            server.log.info("SIGTERM: serving %s s more while the proxies let go", drain_seconds)
            time.sleep(drain_seconds)
            stop()

        server.handle_term = drain_then_stop


def on_exit(server: Any) -> None:
    shutil.rmtree(metrics_dir, ignore_errors=True)
    if exit_hold_seconds:
        server.log.info("Workers gone: exiting in %s s, refusing connections meanwhile", exit_hold_seconds)
        time.sleep(exit_hold_seconds)


# Seconds an idle keep-alive connection stays open. Must be LONGER than nginx's upstream
# `keepalive_timeout` (nginx/templates: 10s), or nginx reuses a connection the worker is
# closing and the request gets a 502.
keepalive = _env_int("GUNICORN_KEEPALIVE", 75, minimum=1)

# Recycle a worker after this many HTTP requests (+ random jitter so workers do not all
# restart together), bounding slow memory growth. Sockets a recycled worker holds are
# closed with 1012 and clients reconnect; its keep-alive connections lose no request
# (DrainOnRecycleHttpToolsProtocol below). A worker that only serves WebSockets never
# reaches the count. 0 disables.
max_requests = _env_int("GUNICORN_MAX_REQUESTS", 20000)
max_requests_jitter = _env_int("GUNICORN_MAX_REQUESTS_JITTER", 2000)

# The heartbeat file is touched constantly; on an overlay or disk-backed /tmp that write
# can block and get healthy workers killed. /dev/shm is memory.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None  # noqa: S108 (heartbeat files, not data)

# Load the app in each worker after the fork (the default, stated because it matters):
# nothing may open the Postgres pool or a Redis connection before forking, or children
# share sockets and corrupt the protocol (Django ticket #36957).
preload_app = False

# --- Proxy ---------------------------------------------------------------------------------
# Addresses whose X-Forwarded-For/-Proto are believed (uvicorn rewrites the client address
# and scheme from them). Only nginx reaches the app, over compose's private networks,
# so compose sets this to those ranges; never "*" (any client could spoof its address).
forwarded_allow_ips = _env("FORWARDED_ALLOW_IPS", "127.0.0.1")

# --- Logging -------------------------------------------------------------------------------
# The access log is the app's own (core.access_log: one JSON object per request
# or socket, with nginx's X-Request-ID); uvicorn's has no room for the request id.
accesslog = None
# Gunicorn's and uvicorn's own messages: JSON lines on stderr, like the app's.
errorlog = "-"


class OneLinePerSocket(logging.Filter):
    """uvicorn and the websockets library under it log each socket's handshake, open and
    close at INFO; the app's access log already writes one line per socket, with the
    request id and close code. Their warnings and errors still pass."""

    CHATTER = frozenset(
        {'%s - "WebSocket %s" [accepted]', '%s - "WebSocket %s" 403', '%s - "WebSocket %s" %d'}
        | {"connection open", "connection closed"}
    )

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.levelno == logging.INFO and record.msg in self.CHATTER)


loglevel = _env("GUNICORN_LOG_LEVEL", "info").lower()
if loglevel not in {"debug", "info", "warning", "error", "critical"}:
    raise SystemExit(
        f"Environment variable GUNICORN_LOG_LEVEL is invalid: expected debug, info, warning, error or critical, "
        f"got {loglevel!r}."
    )
logconfig_dict = {
    "filters": {"one_line_per_socket": {"()": OneLinePerSocket}},
    "loggers": {
        "gunicorn.error": {"level": loglevel.upper(), "handlers": ["error_console"], "propagate": False},
        # uvicorn-worker sets this logger's handlers and level; the filter stays.
        "uvicorn.error": {"level": loglevel.upper(), "filters": ["one_line_per_socket"], "propagate": False},
        "gunicorn.access": {"level": "INFO", "handlers": [], "propagate": False},
    },
    "formatters": {
        "generic": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(process)d %(message)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger", "process": "pid"},
        }
    },
}

# --- Metrics -------------------------------------------------------------------------------
# Each worker writes its metrics (core/metrics.py) to files in `metrics_dir` (top of this
# file); the arbiter merges them and serves one view of the replica on METRICS_PORT, so a
# scrape sees every worker and needs none of them to answer.
# The port the merged metrics are served on: inside the container only (nginx never
# proxies it; Prometheus scrapes each replica there). 0: not served. Not 9100, which
# node_exporter takes by convention.
metrics_port = _env_int("METRICS_PORT", 9101)
worker_restarts = 0


def empty_metrics_dir() -> None:
    """Before any worker starts: values a previous run's processes left must not be added in."""
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir(parents=True)


class ArbiterCollector:
    """What only the arbiter knows: its workers."""

    def __init__(self, server: Any) -> None:
        self.server = server

    def collect(self) -> Any:
        yield GaugeMetricFamily("gunicorn_workers", "Worker processes alive now.", value=len(self.server.WORKERS))
        yield CounterMetricFamily(
            "gunicorn_worker_restarts",
            "Workers that exited while the server ran (crashed, killed, recycled) and were replaced.",
            value=worker_restarts,
        )


def when_ready(server: Any) -> None:
    """Serve the merged metrics from the arbiter (before it forks the first worker)."""
    if not metrics_port:
        return
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    registry.register(ArbiterCollector(server))
    try:
        start_http_server(metrics_port, registry=registry)
    except OSError as error:  # taken, e.g. by the container's main server: serve without
        server.log.error("Metrics not served: METRICS_PORT %s: %s", metrics_port, error)


def child_exit(server: Any, worker: Any) -> None:
    """A worker is gone, however it ended (kill -9 too): its open sockets and requests in
    flight no longer count, and unless the arbiter is stopping it is replaced."""
    global worker_restarts
    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]
    if server.LISTENERS:  # the arbiter closes its listeners first when it stops
        worker_restarts += 1


# --- Control socket ------------------------------------------------------------------------
# Gunicorn 27's runtime control socket lives under $HOME; the container's root filesystem
# is read-only and nothing here uses `gunicornc`, so it is off.
control_socket_disable = True

proc_name = "mainkode_example"


# --- The worker ------------------------------------------------------------------------------
# Largest WebSocket message accepted (bytes); a larger one closes the socket with 1009.
WS_MAX_MESSAGE_BYTES = _env_int("WS_MAX_MESSAGE_BYTES", 65536, minimum=1024)
# Seconds between WebSocket pings: keeps idle sockets alive through nginx's
# proxy_read_timeout for /ws/ (nginx/templates) and detects dead peers.
WS_PING_INTERVAL = _env_int("WS_PING_INTERVAL", 20, minimum=1)


class DrainOnRecycleHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, except when Gunicorn recycles its worker at
    max_requests: uvicorn would close an idle keep-alive connection at once, while nginx
    may be writing the next request into it; that request is lost (a 502: nginx retries a
    GET, never a POST). Here an idle connection stays open and answers one more request
    with `Connection: close`, or nginx closes it first (its upstream keepalive_timeout,
    10 s, within the shutdown's grace below). On SIGTERM uvicorn's own shutdown applies."""

    draining = False

    def shutdown(self) -> None:
        limit = self.config.limit_max_requests
        recycled = limit is not None and self.server_state.total_requests >= limit
        if recycled and (self.cycle is None or self.cycle.response_complete):
            self.draining = True
        else:
            super().shutdown()

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        if self.draining and self.cycle is not None:
            self.cycle.keep_alive = False


class LingeringCloseWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's websockets (sans-I/O) protocol, except when it refuses a frame (larger than
    WS_MAX_MESSAGE_BYTES, or malformed) while the rest of that frame is still arriving:
    uvicorn writes the close frame (1009) and closes at once, and a close with unread data
    is a reset, which nginx passes on by closing its client side the same way, discarding
    the close frame it had not yet sent (through nginx, 6 clients in 10 sending 2 MB saw
    1006 instead of 1009). Here the connection keeps reading, and drops, what still arrives,
    and closes after CLOSE_LINGER_SECONDS or when the client does (as the websockets
    library's own server waits out its closing handshake)."""

    CLOSE_LINGER_SECONDS = 2.0
    lingering = False

    def handle_parser_exception(self) -> None:
        sent = self.conn.close_sent  # websockets set it when it refused the frame
        code, reason = (sent.code, sent.reason) if sent is not None else (1002, "")
        self.queue.put_nowait({"type": "websocket.disconnect", "code": code, "reason": reason})
        self.transport.write(b"".join(self.conn.data_to_send()))
        self.close_sent = self.lingering = True
        # uvicorn closes when the app returns unless a close timer is pending: this is one.
        self.close_timer = self.loop.call_later(self.CLOSE_LINGER_SECONDS, self.transport.close)

    def data_received(self, data: bytes) -> None:
        if not self.lingering:
            super().data_received(data)


class DjangoUvicornWorker(UvicornWorker):
    """uvicorn-worker's UvicornWorker with the uvicorn options Gunicorn has no flag for."""

    CONFIG_KWARGS: dict[str, Any] = {
        "loop": "uvloop",  # libuv event loop: faster than asyncio's default
        "http": DrainOnRecycleHttpToolsProtocol,  # httptools: a C HTTP/1.1 parser, faster than h11
        # The websockets library's maintained (sans-I/O) API, closing cleanly on a refused frame.
        "ws": LingeringCloseWebSocketProtocol,
        # No permessage-deflate (browsers offer it): its zlib state costs about 45 KiB per
        # socket, more than all else a socket holds (docs/benchmarks.md, memory by owner),
        # and compressing each frame for each receiver costs CPU; this app's frames are
        # small JSON. Compressing frames that mix secrets with text others choose also
        # opens CRIME-style guessing.
        "ws_per_message_deflate": False,
        "lifespan": "off",  # Django implements no ASGI lifespan; "auto" only logs noise
        "access_log": False,  # the app writes its own (see accesslog above)
        "ws_max_size": WS_MAX_MESSAGE_BYTES,
        "ws_ping_interval": WS_PING_INTERVAL,
        "ws_ping_timeout": WS_PING_INTERVAL,
        # Gunicorn's graceful_timeout is not passed on to uvicorn: finish in-flight requests,
        # a recycled worker's idle connections (DrainOnRecycleHttpToolsProtocol) and sockets
        # (1012) a few seconds BEFORE the arbiter's SIGKILL. Keep it above nginx's upstream
        # keepalive_timeout.
        "timeout_graceful_shutdown": max(1, graceful_timeout - 5),
        "proxy_headers": True,
    }


worker_class = DjangoUvicornWorker
