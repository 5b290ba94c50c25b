"""Channel-layer groups joined once per worker process, not once per socket: a process's
sockets join through its `GroupHub`, whose one channel is the process's only member of
each group; every sender goes through `group_send` (or `group_send_sync`) here, which
names the group inside the event. Why hand-written: docs/design.md (WebSockets and the
channel layer).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import weakref
from dataclasses import dataclass, field
from typing import Any

from channels import DEFAULT_CHANNEL_LAYER
from channels.layers import channel_layers, get_channel_layer
from django.conf import settings
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from core import metrics

logger = logging.getLogger(__name__)

CHANNEL_LAYER_ERRORS = (RedisConnectionError, RedisTimeoutError)
# The key naming the group inside a group event (not a handler's business).
GROUP_KEY = "__group__"
# What every member's inbox gets when the hub lost the layer.
CHANNEL_LAYER_FAILED: dict[str, Any] = {"type": "channel_layer.failed"}


class Inbox(asyncio.Queue[dict[str, Any]]):
    """A socket's events, in order. `overflowed`: it was full once (its client reads too
    slowly); it gets no group event after that, and its consumer closes the socket."""

    overflowed = False


def new_inbox() -> Inbox:
    """A socket's inbox: at most as many events wait in it as the layer lets wait for one
    channel (CHANNEL_LAYER_CAPACITY); the pubsub layer has no such bound."""
    return Inbox(maxsize=getattr(get_channel_layer(), "capacity", 1000))


def group_event(group: str, message: dict[str, Any]) -> dict[str, Any]:
    return {**message, GROUP_KEY: group}


async def group_send(group: str, message: dict[str, Any]) -> None:
    """From async code: send `message` (its "type" names the consumers' handler) to every
    socket in `group`, in every process and replica."""
    layer = get_channel_layer()
    if layer is None:
        raise RuntimeError("no channel layer configured (CHANNEL_LAYERS)")
    await _send(layer, group, message)


def group_send_sync(group: str, message: dict[str, Any], timeout: float = 30) -> None:
    """From sync code outside the web server's loop (tasks): as `group_send`, through the
    process's one channel-layer thread."""
    loop, layer = ChannelLayerThread.loop_and_layer()
    asyncio.run_coroutine_threadsafe(_send(layer, group, message), loop).result(timeout)


async def _send(layer: Any, group: str, message: dict[str, Any]) -> None:
    if not settings.METRICS_ENABLED:
        await layer.group_send(group, group_event(group, message))
        return
    metrics.GROUP_SENDS.inc()
    with metrics.GROUP_SEND_FAILURES.count_exceptions(), metrics.GROUP_SEND_DURATION.time():
        await layer.group_send(group, group_event(group, message))


class ChannelLayerThread:
    """One event loop in a thread, with a channel layer of its own, for the sends from sync
    code: async_to_sync would start a loop, and a Redis connection, per send (why:
    docs/design.md, Background tasks)."""

    _lock = threading.Lock()
    _started: tuple[asyncio.AbstractEventLoop, Any] | None = None

    @classmethod
    def loop_and_layer(cls) -> tuple[asyncio.AbstractEventLoop, Any]:
        with cls._lock:
            if cls._started is None:
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="channel-layer", daemon=True).start()
                cls._started = (loop, channel_layers.make_backend(DEFAULT_CHANNEL_LAYER))
            return cls._started


@dataclass
class LocalGroup:
    members: set[Inbox] = field(default_factory=set)
    # Joins and leaves in progress: the entry stays while any is.
    busy: int = 0
    # Whether the hub's channel is a member in the layer; changed under `lock` only, so
    # a group_discard and the next group_add of the same group never cross.
    in_layer: bool = False
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class GroupHub:
    def __init__(self, layer: Any) -> None:
        self.layer = layer
        self.groups: dict[str, LocalGroup] = {}
        self.channel: str | None = None
        self.tasks: list[asyncio.Task[None]] = []
        self.starting = asyncio.Lock()

    async def join(self, group: str, inbox: Inbox) -> None:
        """Deliver `group`'s events to `inbox` from now on. Returns once the process is a
        member in the layer: a message sent after that reaches the inbox."""
        channel = await self.start()
        local = self.groups.setdefault(group, LocalGroup())
        local.busy += 1
        try:
            async with local.lock:
                if not local.in_layer:
                    await self.layer.group_add(group, channel)
                    local.in_layer = True
                local.members.add(inbox)
        finally:
            local.busy -= 1
            self.forget_if_unused(group, local)

    async def leave(self, group: str, inbox: Inbox) -> None:
        local = self.groups.get(group)
        if local is None:
            return
        local.members.discard(inbox)
        local.busy += 1
        try:
            async with local.lock:
                if not local.members and local.in_layer:
                    local.in_layer = False
                    # With Redis gone the membership stays behind until the group's expiry;
                    # the events sent to it meanwhile find no member here.
                    with contextlib.suppress(*CHANNEL_LAYER_ERRORS):
                        await self.layer.group_discard(group, self.channel)
        finally:
            local.busy -= 1
            self.forget_if_unused(group, local)

    def forget_if_unused(self, group: str, local: LocalGroup) -> None:
        if not local.members and not local.busy and not local.in_layer and self.groups.get(group) is local:
            del self.groups[group]

    async def start(self) -> str:
        """The hub's channel, with its reader (and renewer) running."""
        async with self.starting:
            if self.channel is None:
                self.channel = await self.layer.new_channel()
                self.tasks = [asyncio.create_task(self.read(self.channel))]
                expiry = getattr(self.layer, "group_expiry", None)  # the pubsub layer has none
                if expiry:
                    self.tasks.append(asyncio.create_task(self.renew(self.channel, expiry / 2)))
            return self.channel

    async def read(self, channel: str) -> None:
        try:
            while True:
                event = await self.layer.receive(channel)
                local = self.groups.get(event.get(GROUP_KEY, ""))
                for inbox in list(local.members) if local else ():
                    deliver(inbox, event)
        except CHANNEL_LAYER_ERRORS as error:
            self.failed(error)

    async def renew(self, channel: str, interval: float) -> None:
        try:
            while True:
                await asyncio.sleep(interval)
                for group, local in list(self.groups.items()):
                    if local.in_layer:
                        await self.layer.group_add(group, channel)
        except CHANNEL_LAYER_ERRORS as error:
            # Unrenewed, a membership lapses and its sockets go silent: they close instead,
            # and their clients reconnect and join anew.
            self.failed(error)

    def failed(self, error: Exception) -> None:
        """The layer failed under the hub: every member is told, and the next join starts
        a new channel (the old one's memberships expire in Redis)."""
        logger.warning("Channel layer unavailable to the group hub: %s", error)
        current = asyncio.current_task()
        for task in self.tasks:
            if task is not current:
                task.cancel()
        members = {inbox for local in self.groups.values() for inbox in local.members}
        self.groups, self.channel, self.tasks = {}, None, []
        for inbox in members:
            deliver(inbox, CHANNEL_LAYER_FAILED)


def deliver(inbox: Inbox, event: dict[str, Any]) -> None:
    """`event` into the inbox; once it was full, dropped and counted (one log line per
    socket: a reader that never reads must not fill the log)."""
    if not inbox.overflowed:
        try:
            inbox.put_nowait(event)
            return
        except asyncio.QueueFull:
            inbox.overflowed = True
            logger.warning("A socket's inbox is full (its client reads too slowly): it gets no more events, and closes")
    metrics.SOCKET_EVENTS_DROPPED.inc()


_hubs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, GroupHub] = weakref.WeakKeyDictionary()


def hub() -> GroupHub:
    """This event loop's hub for the default channel layer (a new one when the layer was
    replaced, as tests do when they change CHANNEL_LAYERS)."""
    loop = asyncio.get_running_loop()
    layer = get_channel_layer()
    found = _hubs.get(loop)
    if found is None or found.layer is not layer:
        found = _hubs[loop] = GroupHub(layer)
    return found
