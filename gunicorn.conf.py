"""Gunicorn's configuration: the server's knobs, each with a one-line reason. Read from the
working directory (the image's /app), so the design documents' command uses it too, its
flags winning. A bad value stops Gunicorn naming the variable (.env.example documents
each); the classes and hooks: app/server/; why: docs/design.md (The server layer)."""

import os

from server import env, log_filters
from server.hooks import Hooks
from server.worker import worker_class as configured_worker

# --- Socket --------------------------------------------------------------------------------
# The app's port in its container, as the design documents bind it; only nginx reaches it.
bind = ["0.0.0.0:8000"]

# --- Workers -------------------------------------------------------------------------------
# One async worker per CPU the container may use; scale further with replicas.
workers = env.integer("GUNICORN_WORKERS", env.available_cpus(), minimum=1)

# Seconds without a heartbeat before the arbiter kills a worker (a blocked event loop,
# not a slow request).
timeout = env.integer("GUNICORN_TIMEOUT", 30, minimum=1)

# Recycle a worker after this many HTTP requests (plus jitter), bounding slow memory
# growth; 0 disables.
max_requests = env.integer("GUNICORN_MAX_REQUESTS", 20000)
max_requests_jitter = env.integer("GUNICORN_MAX_REQUESTS_JITTER", 2000)

# Heartbeat files in memory: a blocking write on disk gets healthy workers killed.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None  # noqa: S108 (heartbeat files, not data)

# Load the app in each worker after the fork: no pool or connection may cross a fork.
preload_app = False

# --- Shutdown (the chain and its arithmetic: docs/design.md, Shutdown timings) -------------
# Seconds between SIGTERM and the arbiter's SIGKILL of workers still running.
graceful_timeout = env.integer("GUNICORN_GRACEFUL_TIMEOUT", 30, minimum=2)
# Seconds the server keeps serving after SIGTERM before that shutdown starts (Swarm: 10).
drain_seconds = env.integer("GUNICORN_DRAIN_SECONDS", 0)
# Seconds the server stays after its workers have exited, refusing connections (compose: 3).
exit_hold_seconds = env.integer("GUNICORN_EXIT_HOLD_SECONDS", 0)
# Seconds an idle keep-alive connection stays open: longer than nginx's upstream keepalive.
keepalive = env.integer("GUNICORN_KEEPALIVE", 75, minimum=1)

# --- Proxy ---------------------------------------------------------------------------------
# Addresses whose X-Forwarded-For/-Proto are believed: nginx's alone, never "*".
forwarded_allow_ips = env.text("FORWARDED_ALLOW_IPS", "127.0.0.1")

# --- Logging -------------------------------------------------------------------------------
# No access log of Gunicorn's: the app writes one JSON line per request or socket.
accesslog = None
errorlog = "-"
loglevel = env.log_level("GUNICORN_LOG_LEVEL", "info")
logconfig_dict = log_filters.config(loglevel)

# --- Metrics -------------------------------------------------------------------------------
# The workers' merged metrics, served by the arbiter inside the container (0: not served;
# not 9100, node_exporter's by convention).
metrics_port = env.integer("METRICS_PORT", 9101)

hooks = Hooks(drain_seconds=drain_seconds, exit_hold_seconds=exit_hold_seconds, metrics_port=metrics_port)
on_starting = hooks.on_starting
when_ready = hooks.when_ready
child_exit = hooks.child_exit
on_exit = hooks.on_exit
worker_int = hooks.worker_int

# Gunicorn's runtime control socket would live under $HOME; the root filesystem is read-only.
control_socket_disable = True
proc_name = "mainkode_example"

# --- The worker ----------------------------------------------------------------------------
# Largest WebSocket message accepted (bytes); a larger one closes the socket with 1009.
WS_MAX_MESSAGE_BYTES = env.integer("WS_MAX_MESSAGE_BYTES", 65536, minimum=1024)
# Seconds between WebSocket pings: within nginx's idle timeout for /ws/, and finds dead peers.
WS_PING_INTERVAL = env.integer("WS_PING_INTERVAL", 20, minimum=1)

worker_class = configured_worker(
    ws_max_size=WS_MAX_MESSAGE_BYTES,
    ws_ping_interval=WS_PING_INTERVAL,
    ws_ping_timeout=WS_PING_INTERVAL,
    # uvicorn's own deadline for in-flight work, a few seconds before the arbiter's SIGKILL.
    timeout_graceful_shutdown=max(1, graceful_timeout - 5),
)
