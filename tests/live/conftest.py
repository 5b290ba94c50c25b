"""Real Gunicorn masters with UvicornWorker processes, started on the host from `app/`
with the seed's own command line (bound to a free loopback port instead of 0.0.0.0:8000,
so a running stack keeps its port), against the test Postgres and Redis."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support import OnLoopback, free_port, wait_for_http

APP_DIR = Path(__file__).resolve().parents[2] / "app"
pytestmark = pytest.mark.live


def manage(*args: str, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=APP_DIR,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


TCP_ESTABLISHED = "01"  # connection state code in /proc/net/tcp


@dataclass
class LiveServer(OnLoopback):
    process: subprocess.Popen[bytes]
    port: int

    def worker_pids(self) -> set[int]:
        """The master's child processes, read from /proc."""
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children").read_text()
        return {int(pid) for pid in children.split()}

    def worker_sockets(self) -> dict[int, list[tuple[int, int]]]:
        """Each worker's established TCP connections as (local port, remote port), read
        from the kernel's tables (/proc/net/tcp and the worker's fds): the server's own
        view, independent of anything the app says."""
        connections = {}
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == TCP_ESTABLISHED:
                local, remote = (int(address.rsplit(":", 1)[1], 16) for address in fields[1:3])
                connections[fields[9]] = (local, remote)
        held: dict[int, list[tuple[int, int]]] = {}
        for pid in self.worker_pids():
            held[pid] = []
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                try:
                    target = os.readlink(fd)
                except OSError:
                    continue
                inode = target.removeprefix("socket:[").removesuffix("]")
                if inode in connections:
                    held[pid].append(connections[inode])
        return held

    def worker_holding(self, client_port: int) -> int:
        """Which worker process holds the server end of the connection from `client_port`."""
        for pid, sockets in self.worker_sockets().items():
            if (self.port, client_port) in sockets:
                return pid
        raise AssertionError(f"no worker holds the connection from port {client_port}")

    def connections_to(self, port: int) -> dict[int, int]:
        """How many connections each worker holds to a server on `port` (e.g. Postgres)."""
        return {pid: sum(remote == port for _, remote in sockets) for pid, sockets in self.worker_sockets().items()}


def seed_command(workers: int, port: int) -> list[str]:
    gunicorn = str(Path(sys.executable).with_name("gunicorn"))
    return [
        gunicorn, "mainkode_example.asgi:application",
        "-w", str(workers), "-k", "uvicorn_worker.UvicornWorker", "--bind", f"127.0.0.1:{port}",
    ]  # fmt: skip


@pytest.fixture(scope="session")
def migrated_database() -> None:
    """The live servers use the test Postgres's own database (not pytest-django's)."""
    manage("migrate", "--noinput")


@dataclass
class LiveUser:
    username: str
    password: str

    def token(self, server: LiveServer) -> str:
        response = httpx.post(
            f"{server.http}/api/auth/token/", json={"username": self.username, "password": self.password}
        )
        assert response.status_code == 200, response.text
        return str(response.json()["token"])


@pytest.fixture(scope="session")
def live_users(migrated_database: None) -> tuple[LiveUser, LiveUser]:
    """Two users, unique to this run (the database outlives a run)."""
    users = []
    for name in ("alice", "bob"):
        user = LiveUser(f"{name}-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex)
        manage(
            "createsuperuser", "--noinput", "--username", user.username, "--email", f"{user.username}@example.com",
            env={"DJANGO_SUPERUSER_PASSWORD": user.password},
        )  # fmt: skip
        users.append(user)
    return users[0], users[1]


@pytest.fixture(scope="module")
def start_gunicorn(migrated_database: None) -> Iterator[Callable[..., LiveServer]]:
    servers: list[LiveServer] = []

    def start(workers: int, **env: str) -> LiveServer:
        port = free_port()
        process = subprocess.Popen(seed_command(workers, port), cwd=APP_DIR, env={**os.environ, **env})
        server = LiveServer(process, port)
        servers.append(server)
        wait_for_http(f"{server.http}/healthz", timeout=60)
        return server

    yield start
    for server in servers:
        server.process.send_signal(signal.SIGTERM)
    for server in servers:
        assert server.process.wait(timeout=40) == 0, "gunicorn did not shut down cleanly on SIGTERM"
