"""Scenario 3 (fan-out latency to N receivers) and 4 (idle sockets held)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import resource
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

SUBPROTOCOL = Subprotocol("mainkode.v1")


def percentile(values: list[float], share: float) -> float:
    """The value below which `share` of `values` lie (nearest rank); NaN for none."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


def raise_open_files_limit() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def open_many(url: str, count: int, batch: int = 200, **kwargs: Any) -> tuple[list[ClientConnection], str]:
    """Open up to `count` sockets, `batch` at a time; stop at the first failing batch
    and say why."""
    opened: list[ClientConnection] = []
    while len(opened) < count:
        size = min(batch, count - len(opened))
        results = await asyncio.gather(
            *(connect(url, open_timeout=30, ping_interval=None, **kwargs) for _ in range(size)),
            return_exceptions=True,
        )
        opened += [r for r in results if isinstance(r, ClientConnection)]
        failures = [r for r in results if not isinstance(r, ClientConnection)]
        if failures:
            return opened, repr(failures[0])
    return opened, ""


# --- fan-out ---------------------------------------------------------------------------------


RECEIVERS = Path(__file__).with_name("receivers.mjs")


async def start_receivers(url: str, count: int) -> asyncio.subprocess.Process:
    """A Node process holding `count` receivers (receivers.mjs, which finds `ws` in
    tests/node_modules), once they are open."""
    child = await asyncio.create_subprocess_exec(
        "node",
        str(RECEIVERS),
        url,
        str(count),
        SUBPROTOCOL,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        limit=2**28,  # the report is one line of every arrival
    )
    assert child.stdout is not None
    ready = json.loads(await asyncio.wait_for(child.stdout.readline(), 300))
    if ready["error"]:
        child.kill()
        raise RuntimeError(f"fan-out: a receiver process opened {ready['opened']} sockets, then: {ready['error']}")
    return child


async def arrivals(child: asyncio.subprocess.Process) -> list[tuple[str, float]]:
    """Close the receivers; every (body, arrival time in s) they recorded."""
    assert child.stdin is not None
    assert child.stdout is not None
    child.stdin.close()
    report = json.loads(await asyncio.wait_for(child.stdout.readline(), 120))
    await child.wait()
    return [(body, at / 1000) for body, at in report["got"]]


@dataclass
class FanoutResult:
    receivers: int
    messages: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    lost: int
    duplicated: int
    app_cpu_us_per_frame: float  # CPU time of the app's worker processes / frames delivered


async def fanout(
    http: str,
    ws: str,
    slug: str,
    token: str,
    *,
    receivers: int,
    messages: int,
    via: str,
    app_cpu_seconds: Callable[[], float],
    processes: int = 2,
) -> FanoutResult:
    """One sender posts `messages` (via "rest" or "socket"), one every 0.25 s; receivers in
    `processes` Node client processes record when each arrives. `app_cpu_seconds` is read
    once every receiver is connected and again after the last message's stragglers: the
    app's CPU over the broadcasts alone."""
    url = f"{ws}/ws/rooms/{slug}/"
    shares = [receivers // processes + (i < receivers % processes) for i in range(processes)]
    children: list[asyncio.subprocess.Process] = []
    gathered: list[list[tuple[str, float]]] = []
    try:
        for share in shares:
            children.append(await start_receivers(url, share))
        sent_at: dict[str, float] = {}
        cpu_before = app_cpu_seconds()
        headers = {"Authorization": f"Token {token}"}
        sender_ws = await connect(url, subprotocols=[SUBPROTOCOL, Subprotocol(f"auth.{token}")])
        async with httpx.AsyncClient(base_url=http, headers=headers, timeout=30) as client:
            for i in range(messages):
                body = f"{via}-{i}-{time.monotonic_ns()}"
                sent_at[body] = time.time()
                if via == "rest":
                    response = await client.post(f"/api/rooms/{slug}/messages/", json={"body": body})
                    response.raise_for_status()
                else:
                    await sender_ws.send(json.dumps({"body": body}))
                await asyncio.sleep(0.25)
        await asyncio.sleep(3)  # the last message's stragglers
        app_cpu = app_cpu_seconds() - cpu_before
        await sender_ws.close()
    finally:
        for child in children:
            gathered.append(await arrivals(child))
    latencies: list[float] = []
    seen: dict[str, int] = {}
    for got in gathered:
        for body, at in got:
            if body in sent_at:
                seen[body] = seen.get(body, 0) + 1
                latencies.append((at - sent_at[body]) * 1000)
    deliveries = len(latencies)
    latencies.sort()
    expected = receivers * messages
    duplicated = sum(max(0, n - receivers) for n in seen.values())
    return FanoutResult(
        receivers=receivers,
        messages=messages,
        p50_ms=statistics.median(latencies) if latencies else float("nan"),
        p99_ms=percentile(latencies, 0.99),
        max_ms=latencies[-1] if latencies else float("nan"),
        lost=max(0, expected - (deliveries - duplicated)),
        duplicated=duplicated,
        app_cpu_us_per_frame=app_cpu * 1e6 / deliveries if deliveries else float("nan"),
    )


# --- capacity --------------------------------------------------------------------------------


@dataclass
class CapacityResult:
    target: int
    opened: int
    alive_after_10s: int
    stopped_by: str
    open_seconds: float
    room_message_delivered: bool


async def hold_idle_sockets(ws: str, target: int, per_room: int = 100) -> tuple[CapacityResult, list[ClientConnection]]:
    """Open `target` idle sockets (rooms of `per_room`) through nginx; the caller measures
    memory while they are held, then closes them."""
    raise_open_files_limit()
    sockets: list[ClientConnection] = []
    stopped_by = ""
    started = time.monotonic()
    for room in range(0, target, per_room):
        batch, stopped_by = await open_many(f"{ws}/ws/chat/idle-{room // per_room}/", min(per_room, target - room))
        sockets += batch
        if stopped_by:
            break
    open_seconds = time.monotonic() - started
    await asyncio.sleep(10)
    alive = sum(1 for s in sockets if s.close_code is None)
    if alive < len(sockets) and not stopped_by:
        closed = next(s for s in sockets if s.close_code is not None)
        stopped_by = f"{len(sockets) - alive} closed while held, e.g. {closed.close_code} {closed.close_reason!r}"
    delivered = False
    first_room = [s for s in sockets[:per_room] if s.close_code is None]
    if len(first_room) >= 2:  # a message still crosses the first room between two of its sockets
        await first_room[0].send(json.dumps({"message": "still here?"}))
        with contextlib.suppress(TimeoutError):
            for _ in range(2):
                frame = json.loads(await asyncio.wait_for(first_room[1].recv(), 10))
                if frame.get("message") == "still here?":
                    delivered = True
                    break
    return CapacityResult(target, len(sockets), alive, stopped_by, open_seconds, delivered), sockets


async def close_all(sockets: list[ClientConnection]) -> None:
    for start in range(0, len(sockets), 500):
        await asyncio.gather(*(s.close() for s in sockets[start : start + 500]), return_exceptions=True)
