"""The monitoring profile against a real Prometheus (prometheus/, on the timings of
tests/stack/monitoring.compose.yml): it finds every app replica through Docker's DNS and
scrapes the worker, and nginx, Postgres and Redis through their exporters; the counts it
holds match the traffic sent; a rule fires when its condition is forced and clears after."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from tests.stack.compose import Stack

pytestmark = pytest.mark.stack

HELLO = 'app_http_requests_total{method="GET",route="api/hello/",status="200"}'


def prometheus(stack: Stack) -> str:
    port = next(
        line.split("=", 1)[1] for line in stack.env_file.read_text().splitlines() if line.startswith("PROMETHEUS_PORT=")
    )
    return f"http://127.0.0.1:{port}"


def query(stack: Stack, promql: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{prometheus(stack)}/api/v1/query", params={"query": promql}, timeout=10)
    assert response.status_code == 200, response.text
    return list(response.json()["data"]["result"])


def scalar(stack: Stack, promql: str) -> float | None:
    result = query(stack, promql)
    return float(result[0]["value"][1]) if result else None


def wait_until(check: Callable[[], Any], within: float, what: str) -> Any:
    """Poll `check` until it returns something true; fail naming `what` and its last value."""
    deadline = time.monotonic() + within
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what}: not within {within} s (last: {value!r})"
        time.sleep(0.5)


def alert_states(stack: Stack, name: str) -> list[str]:
    alerts = httpx.get(f"{prometheus(stack)}/api/v1/alerts", timeout=10).json()["data"]["alerts"]
    return [alert["state"] for alert in alerts if alert["labels"]["alertname"] == name]


def test_prometheus_scrapes_every_replica_the_worker_and_the_exporters(stack: Stack) -> None:
    replicas = stack.compose("ps", "--quiet", "app").stdout.split()
    assert len(replicas) == 2

    def targets_up() -> dict[str, int] | None:
        up: dict[str, int] = {}
        for series in query(stack, "up == 1"):
            up[series["metric"]["job"]] = up.get(series["metric"]["job"], 0) + 1
        wanted = {"app": 2, "worker": 1, "nginx": 1, "postgres": 1, "redis": 1, "prometheus": 1}
        return up if up == wanted else None

    wait_until(targets_up, 60, "every target up (app twice: one per replica)")
    # Each exporter reaches what it watches, and the app's replicas report their workers.
    for metric in ("nginx_up", "pg_up", "redis_up"):
        assert scalar(stack, metric) == 1, metric
    assert [float(series["value"][1]) for series in query(stack, "gunicorn_workers")] == [2.0, 2.0]
    assert scalar(stack, "app_tasks_queued") == 0


def test_the_counts_in_prometheus_match_the_traffic_sent(stack: Stack) -> None:
    time.sleep(3)  # every earlier request scraped (each second)
    before = scalar(stack, f"sum({HELLO})") or 0.0
    nginx_before = scalar(stack, "nginx_http_requests_total") or 0.0
    with httpx.Client(base_url=stack.http) as http:
        for _ in range(50):
            assert http.get("/api/hello/").status_code == 200
            time.sleep(0.06)  # within nginx's rate per address (NGINX_API_RATE)
    wait_until(lambda: scalar(stack, f"sum({HELLO})") == before + 50, 30, "50 more GETs counted over the replicas")
    assert (scalar(stack, "nginx_http_requests_total") or 0.0) >= nginx_before + 50

    async def hold_sockets() -> None:
        sockets = [await connect(f"{stack.ws}/ws/chat/") for _ in range(6)]
        try:
            await asyncio.to_thread(
                wait_until,
                lambda: scalar(stack, 'sum(app_websocket_connections{route="ws/chat/"})') == 6,
                30,
                "6 sockets open",
            )
        finally:
            for socket in sockets:
                await socket.close()

    asyncio.run(hold_sockets())
    wait_until(
        lambda: scalar(stack, 'sum(app_websocket_connections{route="ws/chat/"})') == 0,
        30,
        "no socket open after they closed",
    )


def test_the_app_down_rule_fires_while_every_replica_is_stopped_and_clears_after(stack: Stack) -> None:
    # Quiet first (on a fresh Prometheus, before its first scrape of the app, it fires).
    wait_until(lambda: alert_states(stack, "AppDown") == [], 60, "AppDown quiet while the app runs")
    stack.compose("stop", "app")
    try:
        wait_until(lambda: alert_states(stack, "AppDown") == ["firing"], 60, "AppDown firing")
    finally:
        stack.compose("up", "--detach", "--wait", "--no-deps", "--scale", "app=2", "app")
    wait_until(lambda: alert_states(stack, "AppDown") == [], 60, "AppDown cleared")
    assert httpx.get(f"{stack.http}/api/hello/").json() == {"message": "Hello from DRF with Uvicorn!"}
