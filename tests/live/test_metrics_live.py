"""Metrics from a real Gunicorn master with two UvicornWorker processes (gunicorn.conf.py,
core/metrics.py): the master's one merged view counts what every worker did, and the
open-socket gauge follows sockets that close and a worker killed with kill -9."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import ClientConnection, connect

from tests.clients import free_port
from tests.live.servers import LiveServer

pytestmark = pytest.mark.live

ECHO_ROUTE = "ws/chat/"


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample the master serves, keyed by name and labels."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def total(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    """The sum of `name`'s samples whose labels include `labels`."""
    return sum(
        value
        for (sample, sample_labels), value in samples.items()
        if sample == name and set(labels.items()) <= set(sample_labels)
    )


def wait_for(condition: Callable[[], bool], what: str, seconds: float = 15) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


@pytest.mark.asyncio
async def test_counters_add_up_across_workers_and_the_socket_gauge_follows_closes_and_kills(
    start_gunicorn: Callable[..., LiveServer],
) -> None:
    metrics_port = free_port()
    server = start_gunicorn(2, configured=True, METRICS_PORT=str(metrics_port))
    workers = server.worker_pids()
    assert len(workers) == 2

    # Requests on many connections at once, so both workers answer some.
    async with httpx.AsyncClient(base_url=server.http, limits=httpx.Limits(max_keepalive_connections=0)) as http:
        answers = await asyncio.gather(*(http.get("/api/hello/") for _ in range(60)))
    assert [a.status_code for a in answers] == [200] * 60
    samples = await asyncio.to_thread(scrape, metrics_port)
    assert total(samples, "app_http_requests_total", route="api/hello/", method="GET", status="200") == 60
    assert total(samples, "app_http_request_duration_seconds_count", route="api/hello/") == 60
    assert total(samples, "gunicorn_workers") == 2

    sockets: list[ClientConnection] = [await connect(f"{server.ws}/ws/chat/") for _ in range(8)]
    for ws in sockets:
        await ws.send("Hi")
        assert await asyncio.wait_for(ws.recv(), 5) == '{"message": "Echo: Hi"}'
    samples = await asyncio.to_thread(scrape, metrics_port)
    assert total(samples, "app_websocket_connections", route=ECHO_ROUTE) == 8
    # Frames reach the counters within a second (core.metrics.FrameTally), sockets open or not.
    await asyncio.to_thread(
        wait_for,
        lambda: (
            [
                total(scrape(metrics_port), f"app_websocket_frames_{way}_total", route=ECHO_ROUTE)
                for way in ("received", "sent")
            ]
            == [8, 8]
        ),
        "the 8 frames each way were not counted within the wait",
    )

    # Two clients leave: the gauge drops by two, the closes are counted with their code.
    for ws in sockets[:2]:
        await ws.close()
    await asyncio.to_thread(
        wait_for,
        lambda: total(scrape(metrics_port), "app_websocket_connections", route=ECHO_ROUTE) == 6,
        "the gauge did not drop to 6 after two clients closed",
    )
    assert total(scrape(metrics_port), "app_websocket_closed_total", route=ECHO_ROUTE, code="1000") == 2

    # kill -9 the worker holding the first remaining socket: its sockets drop without a
    # close, and the gauge counts only the sockets the other worker still holds.
    holders = [server.worker_holding(ws.local_address[1]) for ws in sockets[2:]]
    victim = holders[0]
    os.kill(victim, signal.SIGKILL)
    await asyncio.to_thread(
        wait_for, lambda: len(server.worker_pids() - {victim}) == 2, "the killed worker was not replaced"
    )
    samples = await asyncio.to_thread(scrape, metrics_port)
    assert total(samples, "app_websocket_connections", route=ECHO_ROUTE) == sum(1 for pid in holders if pid != victim)
    assert total(samples, "gunicorn_worker_restarts_total") == 1
    assert total(samples, "gunicorn_workers") == 2
    # Counters keep what the dead worker counted.
    assert total(samples, "app_http_requests_total", route="api/hello/") == 60

    for ws in sockets[2:]:
        await ws.close()
    await asyncio.to_thread(
        wait_for,
        lambda: total(scrape(metrics_port), "app_websocket_connections", route=ECHO_ROUTE) == 0,
        "the gauge did not return to 0 after every client left",
    )
