"""Real Gunicorn masters with UvicornWorker processes, started on the host from `app/`
with the design documents' own command line (bound to a free loopback port instead of
0.0.0.0:8000, so a running stack keeps its port), and what the live tests read of them.
Helpers of the live tests (the fixtures are in conftest.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx
import redis

from tests.clients import OnLoopback

APP_DIR = Path(__file__).resolve().parents[2] / "app"


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


GUNICORN = str(Path(sys.executable).with_name("gunicorn"))
# The project's server configuration (the one the image runs): the UvicornWorker subclass
# and every knob. The design documents' command, run from app/, does not read it.
GUNICORN_CONF = APP_DIR.parent / "gunicorn.conf.py"


def documented_command(workers: int, port: int) -> list[str]:
    """The design documents' command as it is, from app/: Gunicorn's defaults plus its
    flags, with uvicorn-worker's plain UvicornWorker (no gunicorn.conf.py is read)."""
    return [
        GUNICORN,
        "mainkode_example.asgi:application",
        "-w",
        str(workers),
        "-k",
        "uvicorn_worker.UvicornWorker",
        "--bind",
        f"127.0.0.1:{port}",
    ]


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


def configured_command(port: int) -> list[str]:
    """What the image runs (`gunicorn mainkode_example.asgi:application` reading
    gunicorn.conf.py), bound to a loopback port instead of the container's 0.0.0.0:8000."""
    return [
        GUNICORN,
        "--config",
        str(GUNICORN_CONF),
        "mainkode_example.asgi:application",
        "--bind",
        f"127.0.0.1:{port}",
    ]


def redis_client() -> redis.Redis:
    """The test Redis the live servers use (REDIS_URL, REDIS_PASSWORD), for what they left in it."""
    return redis.Redis.from_url(os.environ["REDIS_URL"], password=os.environ.get("REDIS_PASSWORD") or None)
