"""The design documents' command against a real Gunicorn with UvicornWorker processes on
the host: 4 workers serving HTTP, 2 serving the echo socket, and 2 whose sockets share
room messages through Redis."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import httpx
import pytest
from websockets.asyncio.client import connect

from tests.clients import HELLO_BODY, assert_everyone_receives, open_room_clients_on_distinct_workers, recv_json
from tests.live.servers import LiveServer, redis_client

pytestmark = pytest.mark.live


def test_documented_command_four_workers_serve_hello(start_gunicorn: Callable[[int], LiveServer]) -> None:
    server = start_gunicorn(4)
    assert len(server.worker_pids()) == 4
    with httpx.Client(base_url=server.http) as client:
        for _ in range(20):
            response = client.get("/api/hello/")
            assert response.status_code == 200
            assert response.content == HELLO_BODY


@pytest.mark.asyncio
async def test_documented_command_two_workers_echo(start_gunicorn: Callable[[int], LiveServer]) -> None:
    server = start_gunicorn(2)
    assert len(server.worker_pids()) == 2
    for _ in range(6):  # several connections: whichever worker takes each, the answer holds
        async with connect(f"{server.ws}/ws/chat/") as ws:
            await ws.send("Hi")
            assert await asyncio.wait_for(ws.recv(), 5) == '{"message": "Echo: Hi"}'


@pytest.mark.asyncio
async def test_room_messages_cross_worker_processes(start_gunicorn: Callable[[int], LiveServer]) -> None:
    server = start_gunicorn(2)
    clients, holder = await open_room_clients_on_distinct_workers(f"{server.ws}/ws/chat/cross-process/", want_workers=2)
    try:
        # The holders the server reports are the master's own worker processes.
        reported_pids = {int(worker.rsplit(":", 1)[1]) for worker in holder.values()}
        assert reported_pids == server.worker_pids()

        # A sender on each worker: every socket, on either worker, gets its message once.
        for worker in sorted(set(holder.values())):
            sender = next(ws for ws in clients if holder[ws] == worker)
            frames = await assert_everyone_receives(clients, sender, f"from {worker}")
            assert {frame["sent_by_worker"] for frame in frames} == {worker}
            assert {frame["delivered_by_worker"] for frame in frames} == set(holder.values())
        for ws in clients:  # nothing extra queued: exactly once
            with pytest.raises(TimeoutError):
                await recv_json(ws, wait=0.2)
    finally:
        for ws in clients:
            await ws.close()


@pytest.mark.asyncio
async def test_clients_vanishing_mid_stream_stall_no_one_and_leave_no_member(
    start_gunicorn: Callable[[int], LiveServer],
) -> None:
    """core.groups: each worker process is one member of a room's group, and hands every
    event to each of its sockets. While a stream of messages runs, half the clients drop
    without a close frame: the others get every message, in order, and once everyone has
    gone the group has no member left in Redis (no worker keeps a dead socket's inbox)."""
    server = start_gunicorn(2)
    room = "vanishing"
    clients, _ = await open_room_clients_on_distinct_workers(f"{server.ws}/ws/chat/{room}/", want_workers=2)
    redis = redis_client()
    members = f"asgi:group:chat.{room}"  # channels_redis' key of the group
    try:
        assert redis.zcard(members) == 2, "one member per worker process"
        staying, vanishing = clients[::2], clients[1::2]
        for i in range(40):
            await staying[0].send(json.dumps({"message": f"m{i}"}))
            if i == 10:
                for ws in vanishing:
                    ws.transport.abort()  # a reset, no close frame
        for ws in staying:
            got = [(await recv_json(ws))["message"] for _ in range(40)]
            assert got == [f"m{i}" for i in range(40)]
        for ws in staying:
            await ws.close()
        for _ in range(100):  # the last leave is on its way from each worker
            if not redis.zcard(members):
                break
            await asyncio.sleep(0.1)
        assert redis.zcard(members) == 0, "a worker still holds the room"
    finally:
        redis.close()
        for ws in clients:
            await ws.close()
