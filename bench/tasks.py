"""Scenario 6: background tasks. The latency of `/api/hello/` and of a WebSocket echo while
large room exports run in the worker service, against the same exports run inside the
requests that ask for them (TASKS_INLINE=true, what the design documents warn against);
and the worker's pickup latency and throughput."""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from dataclasses import dataclass

import httpx
from websockets.asyncio.client import connect

from bench.sockets import percentile

# Exports a user may have unfinished at once (chat/exports.py: MAX_UNFINISHED_PER_USER).
PER_USER = 3


@dataclass
class Latency:
    hello_p50_ms: float
    hello_p99_ms: float
    echo_p50_ms: float
    echo_p99_ms: float
    samples: int


async def probe(http: str, ws: str, stop: asyncio.Event) -> Latency:
    """One GET of /api/hello/ and one echo on /ws/chat/ after another, 20 ms apart, until
    `stop` is set: what a user of the site sees meanwhile."""
    hello: list[float] = []
    echo: list[float] = []

    async def gets() -> None:
        async with httpx.AsyncClient(timeout=60) as client:
            while not stop.is_set():
                started = time.perf_counter()
                response = await client.get(f"{http}/api/hello/")
                response.raise_for_status()
                hello.append((time.perf_counter() - started) * 1000)
                await asyncio.sleep(0.02)

    async def echoes() -> None:
        async with connect(f"{ws}/ws/chat/", open_timeout=60) as socket:
            while not stop.is_set():
                started = time.perf_counter()
                await socket.send("Hi")
                assert json.loads(await asyncio.wait_for(socket.recv(), 60)) == {"message": "Echo: Hi"}
                echo.append((time.perf_counter() - started) * 1000)
                await asyncio.sleep(0.02)

    await asyncio.gather(gets(), echoes())
    return Latency(
        hello_p50_ms=statistics.median(hello),
        hello_p99_ms=percentile(hello, 0.99),
        echo_p50_ms=statistics.median(echo),
        echo_p99_ms=percentile(echo, 0.99),
        samples=len(hello) + len(echo),
    )


async def export_all(http: str, asks: list[tuple[str, str]]) -> list[str]:
    """One export per (token, room slug), all asked at once; waits until every one has
    succeeded (polling its status URL) and returns their ids. Each pair must be new: a
    user's second request for an unchanged room reuses its export."""

    async def one(client: httpx.AsyncClient, token: str, slug: str) -> str:
        headers = {"Authorization": f"Token {token}"}
        asked = await client.post(f"{http}/api/rooms/{slug}/exports/", headers=headers)
        assert asked.status_code == 202, asked.text
        while True:
            status = (await client.get(f"{http}{asked.headers['Location']}", headers=headers)).json()
            if status["status"] == "succeeded":
                return str(status["id"])
            assert status["status"] != "failed", status
            await asyncio.sleep(0.1)

    async with httpx.AsyncClient(timeout=600) as client:
        return list(await asyncio.gather(*(one(client, token, slug) for token, slug in asks)))


async def under_exports(http: str, ws: str, slug: str, tokens: list[str], idle_seconds: float) -> dict[str, object]:
    """The probe alone for `idle_seconds`, then while one export per token runs."""
    stop = asyncio.Event()
    idle_probe = asyncio.create_task(probe(http, ws, stop))
    await asyncio.sleep(idle_seconds)
    stop.set()
    idle = await idle_probe
    stop = asyncio.Event()
    busy_probe = asyncio.create_task(probe(http, ws, stop))
    await asyncio.sleep(0.5)
    started = time.monotonic()
    ids = await export_all(http, [(token, slug) for token in tokens])
    took = time.monotonic() - started
    stop.set()
    busy = await busy_probe
    return {"idle": idle, "busy": busy, "exports": len(ids), "exports_seconds": took, "ids": ids}


async def sequential_pickups(http: str, slugs: list[str], token: str) -> list[str]:
    """An export of each room one after another, each asked once the worker is idle again."""
    return [(await export_all(http, [(token, slug)]))[0] for slug in slugs]
