"""Clients of a running server, shared by the test layers and the benchmark: free ports,
waiting for a URL, WebSocket clients, the design documents' examples."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import time
from collections.abc import Sequence
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect

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
