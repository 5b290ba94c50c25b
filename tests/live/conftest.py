"""Real Gunicorn masters with UvicornWorker processes, started on the host from `app/`
with the seed's own command line (bound to a free loopback port instead of 0.0.0.0:8000,
so a running stack keeps its port)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import free_port, wait_for_http

APP_DIR = Path(__file__).resolve().parents[2] / "app"
pytestmark = pytest.mark.live


@dataclass
class LiveServer:
    process: subprocess.Popen[bytes]
    port: int

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def worker_pids(self) -> set[int]:
        """The master's child processes, read from /proc."""
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children").read_text()
        return {int(pid) for pid in children.split()}


def seed_command(workers: int, port: int) -> list[str]:
    gunicorn = str(Path(sys.executable).with_name("gunicorn"))
    return [
        gunicorn,
        "mainkode_example.asgi:application",
        "-w",
        str(workers),
        "-k",
        "uvicorn_worker.UvicornWorker",
        "--bind",
        f"127.0.0.1:{port}",
    ]


@pytest.fixture(scope="module")
def start_gunicorn() -> Iterator[Callable[[int], LiveServer]]:
    servers: list[LiveServer] = []

    def start(workers: int) -> LiveServer:
        port = free_port()
        process = subprocess.Popen(seed_command(workers, port), cwd=APP_DIR, env=dict(os.environ))
        server = LiveServer(process, port)
        servers.append(server)
        wait_for_http(f"{server.http}/healthz", timeout=60)
        return server

    yield start
    for server in servers:
        server.process.send_signal(signal.SIGTERM)
    for server in servers:
        assert server.process.wait(timeout=40) == 0, "gunicorn did not shut down cleanly on SIGTERM"
