"""End to end through nginx's published port: the design documents' HTTP and WebSocket examples as
a user types them, the room broadcast across app replicas and worker processes, and the
design documents' gunicorn command inside the app image."""

from __future__ import annotations

import json
import subprocess
import time
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from tests.clients import (
    HELLO_BODY,
    assert_everyone_receives,
    open_room_clients_on_distinct_workers,
    recv_json,
    wscat_says_hi,
)
from tests.stack.compose import PROJECT, Stack

pytestmark = pytest.mark.stack


def test_curl_example_through_nginx(stack: Stack) -> None:
    response = httpx.get(f"{stack.http}/api/hello/")
    assert response.status_code == 200
    assert response.content == HELLO_BODY
    # It came through nginx: nginx's Server header and the request id nginx generates.
    assert response.headers["server"] == "nginx"
    assert len(response.headers["x-request-id"]) == 32


def test_wscat_example_through_nginx(stack: Stack) -> None:
    assert wscat_says_hi(stack.ws) == '{"message": "Echo: Hi"}'


@pytest.mark.asyncio
async def test_json_frame_gets_the_same_echo(stack: Stack) -> None:
    async with connect(f"{stack.ws}/ws/chat/") as ws:
        await ws.send(json.dumps({"message": "Hi"}))
        assert await ws.recv() == '{"message": "Echo: Hi"}'


@pytest.mark.asyncio
async def test_room_broadcast_crosses_replicas_and_worker_processes(stack: Stack) -> None:
    clients, holder = await open_room_clients_on_distinct_workers(f"{stack.ws}/ws/chat/e2e-room/", want_workers=3)
    try:
        replicas = {worker.split(":")[0] for worker in holder.values()}
        assert len(replicas) == 2, f"sockets reached only {replicas}"
        for worker in sorted(set(holder.values())):
            sender = next(ws for ws in clients if holder[ws] == worker)
            frames = await assert_everyone_receives(clients, sender, f"from {worker}")
            assert {frame["delivered_by_worker"] for frame in frames} == set(holder.values())
        for ws in clients:
            with pytest.raises(TimeoutError):
                await recv_json(ws, wait=0.2)
    finally:
        for ws in clients:
            await ws.close()


def test_only_nginx_publishes_a_host_port_and_prometheus_on_loopback(stack: Stack) -> None:
    published: dict[str, set[tuple[str, int]]] = {}
    for container in stack.containers():
        publishers: list[dict[str, Any]] = container.get("Publishers") or []  # type: ignore[assignment]
        ports = {(p["URL"], p["PublishedPort"]) for p in publishers if p.get("PublishedPort")}
        if ports:
            published.setdefault(str(container["Service"]), set()).update(ports)
    prometheus_port = int(stack.env_value("PROMETHEUS_PORT"))
    assert published == {"nginx": {("127.0.0.1", stack.port)}, "prometheus": {("127.0.0.1", prometheus_port)}}


def test_every_service_is_healthy_or_done(stack: Stack) -> None:
    states = {(str(c["Service"]), str(c["State"]), str(c.get("Health", ""))) for c in stack.containers()}
    for service, state, health in states:
        if service == "migrate":
            assert state == "exited"
        else:
            assert (state, health) == ("running", "healthy"), (service, state, health)


PROBE = """
import json, os, urllib.request
body = urllib.request.urlopen("http://127.0.0.1:8000/api/hello/", timeout=3).read().decode()
others = [p for p in os.listdir("/proc") if p.isdigit() and p != str(os.getpid())]
procs = [p for p in others if b"gunicorn" in open(f"/proc/{p}/cmdline", "rb").read()]
print(json.dumps({"body": body, "gunicorn_processes": len(procs)}))
"""


def test_documented_gunicorn_command_runs_inside_the_app_image(stack: Stack) -> None:
    name = f"{PROJECT}-documented-command"
    command = "gunicorn mainkode_example.asgi:application -w 4 -k uvicorn_worker.UvicornWorker --bind 0.0.0.0:8000"
    stack.compose("run", "--detach", "--no-deps", "--name", name, "app", *command.split())
    try:
        deadline, last = time.monotonic() + 60, ""
        while time.monotonic() < deadline:
            probe = subprocess.run(
                ["docker", "exec", name, "python", "-c", PROBE], capture_output=True, text=True, check=False
            )
            last = probe.stdout + probe.stderr
            if probe.returncode == 0:
                seen = json.loads(probe.stdout)
                if seen["gunicorn_processes"] == 5:  # the master and its 4 workers
                    break
            time.sleep(1)
        else:
            raise AssertionError(f"the design documents' command did not serve with 4 workers: {last}")
        assert seen["body"].encode() == HELLO_BODY
    finally:
        subprocess.run(["docker", "rm", "--force", name], capture_output=True, check=False)
