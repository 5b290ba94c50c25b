"""Stored rooms under a real Gunicorn with 2 UvicornWorker processes: REST and socket
posts reach every socket, on both workers, exactly once and in order; Postgres and Redis
connections stay bounded under load."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

from tests.live.servers import LiveServer, LiveUser, redis_client

pytestmark = [pytest.mark.live, pytest.mark.asyncio]
SUBPROTOCOL = Subprotocol("mainkode.v1")
CLIENTS = 40
POSTS = 20
# These servers run the design documents' command line, hence Gunicorn's default 2 s keepalive:
# a client reusing a connection the server is just closing fails with "Server
# disconnected" (a client-side race, not what these tests measure), so no reuse.
NO_REUSE = httpx.Limits(max_keepalive_connections=0)


async def create_room(server: LiveServer, token: str) -> str:
    slug = f"live-{uuid.uuid4().hex[:10]}"
    async with httpx.AsyncClient(
        base_url=server.http, headers={"Authorization": f"Token {token}"}, limits=NO_REUSE
    ) as http:
        response = await http.post("/api/rooms/", json={"slug": slug, "title": "Live"})
        assert response.status_code == 201, response.text
    return slug


class Collector:
    """Reads every frame a socket receives, in the background."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.frames: list[dict[str, Any]] = []
        self.arrived = asyncio.Event()
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        async for raw in self.ws:
            self.frames.append(json.loads(raw))
            self.arrived.set()

    async def wait_for(self, count: int, within: float = 20.0) -> None:
        async with asyncio.timeout(within):
            while len(self.frames) < count:
                self.arrived.clear()
                await self.arrived.wait()


async def test_every_socket_on_every_worker_gets_every_message_once_in_order(
    start_gunicorn: Callable[..., LiveServer], live_users: tuple[LiveUser, LiveUser]
) -> None:
    server = start_gunicorn(2)
    alice, bob = live_users
    alice_token, bob_token = alice.token(server), bob.token(server)
    slug = await create_room(server, alice_token)
    url = f"{server.ws}/ws/rooms/{slug}/"

    readers = [await connect(url, subprotocols=[SUBPROTOCOL]) for _ in range(CLIENTS)]
    bob_ws = await connect(url, subprotocols=[SUBPROTOCOL, Subprotocol(f"auth.{bob_token}")])
    sockets = [*readers, bob_ws]
    try:
        # The kernel's view: which worker process holds each connection.
        holders = {id(ws): server.worker_holding(ws.local_address[1]) for ws in sockets}
        assert set(holders.values()) == server.worker_pids(), "sockets did not spread over both workers"

        collectors = [Collector(ws) for ws in sockets]
        bob_collector = collectors[-1]
        expected: list[int] = []
        async with httpx.AsyncClient(
            base_url=server.http, headers={"Authorization": f"Token {alice_token}"}, limits=NO_REUSE
        ) as http:
            for i in range(POSTS):
                if i % 2 == 0:  # REST, by alice
                    response = await http.post(f"/api/rooms/{slug}/messages/", json={"body": f"rest {i}"})
                    assert response.status_code == 201, response.text
                    expected.append(response.json()["id"])
                else:  # the socket, by bob: done when his own socket hears it back
                    await bob_ws.send(json.dumps({"body": f"socket {i}"}))
                    await bob_collector.wait_for(i + 1)
                    frame = bob_collector.frames[i]
                    assert frame["body"] == f"socket {i}", frame
                    expected.append(frame["id"])

        for collector in collectors:
            await collector.wait_for(POSTS)
        await asyncio.sleep(0.5)  # room for a duplicate to show up
        for collector in collectors:
            assert [frame["id"] for frame in collector.frames] == expected  # all, once, in order
        first = collectors[0].frames
        assert {frame["author"] for frame in first} == {alice.username, bob.username}
        assert all(set(frame) >= {"id", "room", "author", "body", "created_at"} for frame in first)

        # And they are stored: the catch-up a reconnecting client would make returns them.
        async with httpx.AsyncClient(base_url=server.http, limits=NO_REUSE) as http:
            page = (await http.get(f"/api/rooms/{slug}/messages/?after=0")).json()
        assert [m["id"] for m in page["results"]] == expected
    finally:
        for ws in sockets:
            await ws.close()


async def test_rest_posts_reuse_the_workers_redis_connections(
    start_gunicorn: Callable[..., LiveServer], live_users: tuple[LiveUser, LiveUser]
) -> None:
    server = start_gunicorn(2)
    token = live_users[0].token(server)
    slug = await create_room(server, token)
    async with httpx.AsyncClient(
        base_url=server.http, headers={"Authorization": f"Token {token}"}, limits=NO_REUSE
    ) as http:

        async def post_many(count: int) -> None:
            for i in range(count):
                response = await http.post(f"/api/rooms/{slug}/messages/", json={"body": f"m{i}"})
                assert response.status_code == 201

        await post_many(10)  # warm up: each worker opens its channel-layer pool
        before = len(redis_client().client_list())
        await post_many(60)
        after = len(redis_client().client_list())
    # A new connection per request would add 60.
    assert after - before <= 2, (before, after)


async def test_postgres_connections_stay_within_workers_times_pool_max(
    start_gunicorn: Callable[..., LiveServer], live_users: tuple[LiveUser, LiveUser]
) -> None:
    workers, pool_max = 2, 2
    # A long pool timeout: under 600 requests on 2 cores a request may queue for a free
    # connection for a while; this test is about the bound, not about latency.
    server = start_gunicorn(workers, DB_POOL_MAX_SIZE=str(pool_max), DB_POOL_MIN_SIZE="0", DB_POOL_TIMEOUT="60")
    token = live_users[0].token(server)
    slug = await create_room(server, token)
    postgres_port = int(os.environ["POSTGRES_PORT"])
    peak_per_worker: dict[int, int] = dict.fromkeys(server.worker_pids(), 0)
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.005):
            for pid, count in server.connections_to(postgres_port).items():
                peak_per_worker[pid] = max(peak_per_worker[pid], count)

    sampler = asyncio.create_task(asyncio.to_thread(sample))
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=0)  # see NO_REUSE
    try:
        async with httpx.AsyncClient(base_url=server.http, limits=limits, timeout=90) as http:
            for _ in range(3):  # 3 waves of 200 concurrent DB-backed requests
                responses = await asyncio.gather(*(http.get(f"/api/rooms/{slug}/messages/") for _ in range(200)))
                assert [r.status_code for r in responses] == [200] * 200
    finally:
        done.set()  # always: the sampler thread must end, or the event loop cannot close
        await sampler
    # Every worker used the database, none beyond its pool: the replica stays within the bound.
    assert all(1 <= peak <= pool_max for peak in peak_per_worker.values()), peak_per_worker
    assert sum(peak_per_worker.values()) <= workers * pool_max
