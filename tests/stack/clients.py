"""Clients that load the stack while a fault is injected: a stream of GETs, and room
sockets that reconnect and catch up the way the chat page does.

Given several entry points (the nodes of a swarm, each with its nginx), the HTTP clients
act as the load balancer in front of them does: a connection refused by one goes to the
next (it never reached nginx, so even a POST is safe to resend); any other failure counts."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time

import httpx
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Subprotocol

SUBPROTOCOL = Subprotocol("mainkode.v1")


class EntryPoints:
    """Base URLs taken in turn; `send` moves on to the next one when a connection is refused."""

    def __init__(self, bases: str | list[str]) -> None:
        self.bases = [bases] if isinstance(bases, str) else bases
        self._next = 0

    @property
    def limits(self) -> httpx.Limits:
        """A connection per request across several entry points, as a load balancer in
        front of them opens: a stopped entry point then refuses, never drops a reused one."""
        return httpx.Limits(max_keepalive_connections=0) if len(self.bases) > 1 else httpx.Limits()

    def urls(self, path: str) -> list[str]:
        start, self._next = self._next, (self._next + 1) % len(self.bases)
        return [self.bases[(start + i) % len(self.bases)] + path for i in range(len(self.bases))]


def described(response: httpx.Response) -> str:
    """A failed answer for a failure message: status, where from, and its body's start
    (nginx's own 503 and the app's differ there)."""
    return f"HTTP {response.status_code} from {response.url.host}: {response.text[:100]!r}"


def send(client: httpx.Client, method: str, urls: list[str], **kwargs: object) -> httpx.Response:
    for url in urls[:-1]:
        try:
            return client.request(method, url, **kwargs)  # type: ignore[arg-type]
        except httpx.ConnectError:
            continue
    return client.request(method, urls[-1], **kwargs)  # type: ignore[arg-type]


async def send_async(client: httpx.AsyncClient, method: str, urls: list[str], **kwargs: object) -> httpx.Response:
    for url in urls[:-1]:
        try:
            return await client.request(method, url, **kwargs)  # type: ignore[arg-type]
        except httpx.ConnectError:
            continue
    return await client.request(method, urls[-1], **kwargs)  # type: ignore[arg-type]


class Traffic:
    """GET requests through nginx, one after another, in a background thread, until
    stopped; records every failure (a non-200 answer or a transport error). `base` is a
    base URL or several (then `path` is requested from each in turn)."""

    def __init__(self, base: str | list[str], path: str = "") -> None:
        self.entry = EntryPoints(base)
        self.path = path
        self.sent = 0
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        with httpx.Client(timeout=15, limits=self.entry.limits) as client:
            while not self._stop.is_set():
                self.sent += 1
                try:
                    response = send(client, "GET", self.entry.urls(self.path))
                    if response.status_code != 200:
                        self.failures.append(described(response))
                except httpx.HTTPError as error:
                    self.failures.append(repr(error))
                time.sleep(0.02)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


class CatchingUpReader:
    """A reader of one room that behaves like static/chat/chat.js: when its socket drops
    it reconnects (after a short backoff) and, once the socket is open again, fetches
    `?after=<highest id seen>` so nothing posted while it was away is missed. Messages
    are keyed by id, so one that arrives both ways counts once."""

    def __init__(self, http: str, ws: str, slug: str) -> None:
        self.messages_url = f"{http}/api/rooms/{slug}/messages/"
        self.socket_url = f"{ws}/ws/rooms/{slug}/"
        self.seen: dict[int, str] = {}
        self.caught_up: set[int] = set()  # ids that reached this reader only through ?after=
        self.close_codes: list[int | None] = []
        self.opened = asyncio.Event()
        self.changed = asyncio.Event()  # set whenever a message is first seen
        self._task: asyncio.Task[None] | None = None

    @property
    def reconnects(self) -> int:
        return len(self.close_codes)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _catch_up(self, http: httpx.AsyncClient) -> None:
        url: str | None = f"{self.messages_url}?after={max(self.seen, default=0)}"
        while url:
            response = await http.get(url)
            response.raise_for_status()
            page = response.json()
            for message in page["results"]:
                if message["id"] not in self.seen:
                    self.caught_up.add(message["id"])
                    self.seen[message["id"]] = message["body"]
                    self.changed.set()
            url = page["next"]

    async def _run(self) -> None:
        async with httpx.AsyncClient(timeout=15) as http:
            while True:
                try:
                    async with connect(self.socket_url, subprotocols=[SUBPROTOCOL], open_timeout=10) as socket:
                        await self._catch_up(http)
                        self.opened.set()
                        async for frame in socket:
                            message = json.loads(frame)
                            self.seen[message["id"]] = message["body"]
                            self.changed.set()
                        self.close_codes.append(socket.close_code)
                except (ConnectionClosed, InvalidStatus, OSError, TimeoutError, httpx.HTTPError) as error:
                    code = getattr(getattr(error, "rcvd", None), "code", None)
                    self.close_codes.append(code)
                await asyncio.sleep(0.2)


class Poster:
    """Posts numbered messages to a room over REST at a steady pace until stopped; keeps
    the id of each one acknowledged with 201."""

    def __init__(self, http: str | list[str], slug: str, token: str, interval: float = 0.1) -> None:
        self.entry = EntryPoints(http)
        self.path = f"/api/rooms/{slug}/messages/"
        self.headers = {"Authorization": f"Token {token}"}
        self.interval = interval
        self.acknowledged: dict[int, str] = {}
        self.failures: list[str] = []
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        self._stop.set()
        assert self._task is not None
        await self._task

    async def _run(self) -> None:
        async with httpx.AsyncClient(timeout=15, headers=self.headers, limits=self.entry.limits) as http:
            number = 0
            while not self._stop.is_set():
                number += 1
                body = f"post {number}"
                try:
                    response = await send_async(http, "POST", self.entry.urls(self.path), json={"body": body})
                    if response.status_code == 201:
                        self.acknowledged[response.json()["id"]] = body
                    else:
                        self.failures.append(described(response))
                except httpx.HTTPError as error:
                    self.failures.append(repr(error))
                await asyncio.sleep(self.interval)


async def wait_until_everyone_has(readers: list[CatchingUpReader], ids: set[int]) -> None:
    """Return once every reader has seen `ids`, or after 20 s (the caller asserts)."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(20):
            for reader in readers:
                while not ids <= reader.seen.keys():
                    reader.changed.clear()
                    await reader.changed.wait()
