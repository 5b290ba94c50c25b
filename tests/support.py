"""Helpers shared by the test layers (and scripts/bench): free ports, env files for a
compose project, waiting for a URL, WebSocket clients."""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect

ROOT = Path(__file__).resolve().parents[1]
# The variables the settings refuse to start without (in production, DJANGO_ADMIN_URL too).
REQUIRED_VARIABLES = (
    "DJANGO_SECRET_KEY",
    "DJANGO_ALLOWED_HOSTS",
    "POSTGRES_HOST",
    "POSTGRES_DB",
    "POSTGRES_USER",
    "POSTGRES_PASSWORD",
    "REDIS_URL",
)
# nginx re-resolves the app every 2 s (`valid=2s`, nginx/templates): after this long it
# uses the replicas that run now, and no longer the ones that stopped.
NGINX_RESOLVE_SECONDS = 3
HELLO_BODY = b'{"message": "Hello from DRF with Uvicorn!"}'
WSCAT = "wscat"  # the npm lock's, on the test toolchain's PATH (Dockerfile: tests)


class OnLoopback:
    """Something serving HTTP and WebSockets on 127.0.0.1:`port`."""

    port: int

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}"


def wscat_says_hi(ws_base: str) -> str:
    """The design documents' example: `wscat -c <ws_base>/ws/chat/`, send Hi; what it printed.
    (wscat exits silently when its stdin ends, so stdin stays open: a pipe from sleep.)"""
    result = subprocess.run(  # noqa: S602 (fixed command line: the design documents' example)
        f"sleep 6 | {WSCAT} --connect {ws_base}/ws/chat/ --execute Hi --wait 3",
        shell=True,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def write_env_file(path: Path, overrides: dict[str, str]) -> None:
    """An env file for a compose project: .env.example with `overrides`."""
    lines = [
        line for line in (ROOT / ".env.example").read_text().splitlines() if line.split("=", 1)[0] not in overrides
    ]
    path.write_text("\n".join([*lines, *(f"{key}={value}" for key, value in overrides.items())]) + "\n")


def environment_for(env_file: Path) -> dict[str, str]:
    """Compose prefers the shell's variables to the env file's: drop the ones the file
    sets and the app tests' (tests/test.env), so a stack runs on exactly that file."""
    defined = {
        line.split("=", 1)[0]
        for path in (env_file, ROOT / "tests" / "test.env")
        for line in path.read_text().splitlines()
        if "=" in line and not line.startswith("#")
    }
    return {key: value for key, value in os.environ.items() if key not in defined}


def wait_for_http(url: str, timeout: float = 60.0) -> None:
    """Poll `url` until it answers 200, or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            response = httpx.get(url, timeout=2)
            if response.status_code == 200:
                return
            last = response.status_code
        except httpx.HTTPError as error:
            last = error
        time.sleep(0.3)
    raise TimeoutError(f"{url} did not answer 200 within {timeout}s (last: {last!r})")


async def recv_json(ws: ClientConnection, wait: float = 5.0) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), wait))
    return payload


async def open_room_clients_on_distinct_workers(
    url: str, *, want_workers: int, batch: int = 8, max_clients: int = 160
) -> tuple[list[ClientConnection], dict[ClientConnection, str]]:
    """Open sockets to one room until they are held by at least `want_workers` distinct
    server processes, as the server itself reports (`delivered_by_worker` of a probe
    message). Returns the sockets and, for each, the worker that holds it. A batch at a
    time, a moment apart: a worker still starting accepts nothing, and the one that accepted
    the last socket is the first idle again."""
    clients: list[ClientConnection] = []
    holder: dict[ClientConnection, str] = {}
    probe = 0
    while len(clients) < max_clients:
        clients += await asyncio.gather(*(connect(url) for _ in range(batch)))
        probe += 1
        await clients[0].send(json.dumps({"message": f"probe-{probe}"}))
        for ws in clients:
            frame = await recv_json(ws)
            assert frame["message"] == f"probe-{probe}"
            holder[ws] = frame["delivered_by_worker"]
        if len(set(holder.values())) >= want_workers:
            return clients, holder
        await asyncio.sleep(0.2)
    raise AssertionError(f"{max_clients} sockets all landed on {set(holder.values())}")


async def assert_everyone_receives(
    clients: Sequence[ClientConnection], sender: ClientConnection, text: str
) -> list[dict[str, Any]]:
    """`sender` posts `text` to the room; every client (sender included) gets it exactly once."""
    await sender.send(json.dumps({"message": text}))
    frames = [await recv_json(ws) for ws in clients]
    assert all(frame["message"] == text for frame in frames), frames
    return frames


# --- which code reads which environment variable -------------------------------------------


def variables_read_by_app_code() -> set[str]:
    """Names passed to mainkode_example.env's readers and gunicorn.conf.py's."""
    sources = [*sorted((ROOT / "app").rglob("*.py")), ROOT / "gunicorn.conf.py"]
    pattern = re.compile(r"\b(?:env\.\w+|_env_int|_env)\(\s*\"([A-Z][A-Z0-9_]+)\"")
    return {name for source in sources for name in pattern.findall(source.read_text())}


def secrets_read_by_app_code() -> set[str]:
    """Names passed to env.secret: each may come as NAME_FILE too."""
    source = (ROOT / "app" / "mainkode_example" / "settings.py").read_text()
    return set(re.findall(r"\benv\.secret\(\s*\"([A-Z][A-Z0-9_]+)\"", source))


def variables_read_by_nginx() -> set[str]:
    templates = sorted((ROOT / "nginx" / "templates").glob("*.template"))
    return {name for template in templates for name in re.findall(r"\$\{([A-Z][A-Z0-9_]+)\}", template.read_text())}


def nginx_defaults() -> dict[str, str]:
    return dict(re.findall(r"^default (\w+) (\S+)$", (ROOT / "nginx" / "defaults.envsh").read_text(), re.MULTILINE))


def nginx_derived() -> set[str]:
    """Variables nginx/defaults.envsh computes from others (e.g. the server names): its
    top-level assignments."""
    return set(re.findall(r"^([A-Z][A-Z0-9_]+)=", (ROOT / "nginx" / "defaults.envsh").read_text(), re.MULTILINE))


def variables_nginx_derives_from() -> set[str]:
    lines = (ROOT / "nginx" / "defaults.envsh").read_text().splitlines()
    script = "\n".join(line for line in lines if not line.lstrip().startswith("#"))
    return set(re.findall(r"\$\{?([A-Z][A-Z0-9_]+)", script)) - nginx_derived() - set(nginx_defaults())
