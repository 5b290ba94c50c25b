"""The arbiter's side of the app's metrics: this server's own directory of values (set
before prometheus-client is imported, which reads it then), merged and served on one port."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

# This server's own directory under the image's PROMETHEUS_MULTIPROC_DIR (or the temporary
# one): a second Gunicorn in the container neither adds nor wipes its values. Set once per
# process (a reload of the configuration, SIGHUP, finds this module imported).
DIRECTORY = Path(os.environ.get("PROMETHEUS_MULTIPROC_DIR") or tempfile.gettempdir()) / f"gunicorn-{os.getpid()}"
os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(DIRECTORY)

from prometheus_client import CollectorRegistry, multiprocess, start_http_server  # noqa: E402
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily  # noqa: E402


def empty_directory() -> None:
    """Before any worker starts: values a previous run's processes left must not count."""
    shutil.rmtree(DIRECTORY, ignore_errors=True)
    DIRECTORY.mkdir(parents=True)


def remove_directory() -> None:
    shutil.rmtree(DIRECTORY, ignore_errors=True)


class ArbiterCollector:
    """What only the arbiter knows: its workers."""

    def __init__(self, server: Any) -> None:
        self.server = server
        self.restarts = 0

    def collect(self) -> Any:
        yield GaugeMetricFamily("gunicorn_workers", "Worker processes alive now.", value=len(self.server.WORKERS))
        yield CounterMetricFamily(
            "gunicorn_worker_restarts",
            "Workers that exited while the server ran (crashed, killed, recycled) and were replaced.",
            value=self.restarts,
        )


# The arbiter's one collector (this module outlives a configuration reload, SIGHUP).
collector: ArbiterCollector | None = None


def worker_exited(server: Any, pid: int) -> None:
    """Its open sockets and requests in flight no longer count; unless the arbiter is
    stopping (its listeners closed first), it is replaced."""
    multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
    if collector is not None and server.LISTENERS:
        collector.restarts += 1


def serve(port: int, server: Any) -> None:
    """Serve the workers' merged values and the arbiter's own on `port` (0: not served)."""
    global collector
    collector = ArbiterCollector(server)
    if not port:
        return
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    registry.register(collector)
    try:
        start_http_server(port, registry=registry)
    except OSError as error:  # taken, e.g. by the container's main server: serve without
        server.log.error("Metrics not served: METRICS_PORT %s: %s", port, error)
