"""Clients that load the stack while a fault is injected: a stream of GETs, and room
sockets that reconnect and catch up the way the chat page does."""

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


class Traffic:
    """GET requests through nginx, one after another, in a background thread, until
    stopped; records every failure (a non-200 answer or a transport error)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.sent = 0
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        with httpx.Client(timeout=15) as client:
            while not self._stop.is_set():
                self.sent += 1
                try:
                    response = client.get(self.url)
                    if response.status_code != 200:
                        self.failures.append(f"HTTP {response.status_code}")
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

    def __init__(self, http: str, slug: str, token: str, interval: float = 0.1) -> None:
        self.url = f"{http}/api/rooms/{slug}/messages/"
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
        async with httpx.AsyncClient(timeout=15, headers=self.headers) as http:
            number = 0
            while not self._stop.is_set():
                number += 1
                body = f"post {number}"
                try:
                    response = await http.post(self.url, json={"body": body})
                    if response.status_code == 201:
                        self.acknowledged[response.json()["id"]] = body
                    else:
                        self.failures.append(f"HTTP {response.status_code}")
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
