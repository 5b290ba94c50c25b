"""Gunicorn's server hooks: the metrics directory and endpoint, the drain before a stop,
the hold after it, and reloading in development."""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from typing import Any

from server import metrics


@dataclass
class Hooks:
    """Each method is a Gunicorn hook of the same name (gunicorn.conf.py assigns them).
    The timings' chain: docs/design.md (Shutdown timings)."""

    drain_seconds: int
    exit_hold_seconds: int
    metrics_port: int

    def on_starting(self, server: Any) -> None:
        """Empty the metrics directory; delay the arbiter's SIGTERM handling by
        drain_seconds, while its workers keep serving."""
        metrics.empty_directory()
        if self.drain_seconds:
            stop, seconds = server.handle_term, self.drain_seconds

            def drain_then_stop() -> None:
                server.log.info("SIGTERM: serving %s s more while the proxies let go", seconds)
                time.sleep(seconds)
                stop()

            server.handle_term = drain_then_stop

    def when_ready(self, server: Any) -> None:
        """Serve the merged metrics from the arbiter, before it forks the first worker."""
        metrics.serve(self.metrics_port, server)

    def child_exit(self, server: Any, worker: Any) -> None:
        metrics.worker_exited(server, worker.pid)

    def on_exit(self, server: Any) -> None:
        """Workers gone, port closed: stay exit_hold_seconds more, refusing connections."""
        metrics.remove_directory()
        if self.exit_hold_seconds:
            server.log.info("Workers gone: exiting in %s s, refusing connections meanwhile", self.exit_hold_seconds)
            time.sleep(self.exit_hold_seconds)

    def worker_int(self, worker: Any) -> None:
        """Gunicorn's reloader calls this after a code change (`alive` then false): stop the
        worker as SIGTERM does, and the arbiter starts a new one. uvicorn-worker has no
        reload of its own (benoitc/gunicorn#2339)."""
        if worker.cfg.reload and not worker.alive:
            os.kill(os.getpid(), signal.SIGTERM)
