"""The design documents' WebSocket examples: an echo, and a room chat whose messages are
relayed to every socket of the room through the Redis channel layer and never stored
(the stored rooms are the chat app's)."""

from __future__ import annotations

import math
import os
import socket
import time
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings

from core.groups import group_send
from core.throttling import AtomicRateThrottle
from core.websocket import FrameError, JsonFrameConsumer

# Which server process holds a socket: the container's host name tells replicas apart,
# the pid tells Gunicorn's worker processes apart.
WORKER_ID = f"{socket.gethostname()}:{os.getpid()}"


def checked_message(content: dict[str, Any]) -> str:
    message = content.get("message")
    if not isinstance(message, str):
        raise FrameError("invalid_frame", 'Field "message" is required and must be a string.')
    limit = settings.CHAT_MESSAGE_MAX_LENGTH
    if not message.strip():
        raise FrameError("invalid_frame", "Message must not be blank.")
    if len(message) > limit:
        raise FrameError("message_too_long", f"Message must be at most {limit} characters.")
    return message


class EchoConsumer(JsonFrameConsumer):
    """`/ws/chat/`: `Hi` (or `{"message": "Hi"}`) -> `{"message": "Echo: Hi"}`."""

    frame_example = '{"message": "..."}'
    joins_groups = False  # answers its own socket only

    def decode_frame(self, text_data: str | None) -> dict[str, Any]:
        try:
            return super().decode_frame(text_data)
        except FrameError:
            if text_data is None:
                raise
            return {"message": text_data}  # plain text, as typed into wscat, is the message

    async def receive_json(self, content: dict[str, Any], **kwargs: Any) -> None:
        await self.send_json({"message": f"Echo: {checked_message(content)}"})


class SocketFrameThrottle(AtomicRateThrottle):
    """Frames per socket (CHAT_ROOM_FRAME_RATE), counted in the socket's own process."""

    scope = "chat_room_frame"


class AddressFrameThrottle(AtomicRateThrottle):
    """Frames per client address over all its sockets (CHAT_ROOM_ADDRESS_FRAME_RATE), in Redis."""

    scope = "chat_room_address_frame"


class EphemeralRoomConsumer(JsonFrameConsumer):
    """`/ws/chat/<room>/`: every `{"message": ...}` goes to every socket in the room,
    whichever process or replica holds each socket; nothing is stored. A frame past the
    socket's or its address's rate gets an error frame and goes nowhere."""

    frame_example = '{"message": "..."}'
    group_name: str

    async def connect(self) -> None:
        self.room = self.scope["url_route"]["kwargs"]["room"]
        self.group_name = f"chat.{self.room}"
        self.socket_rate = SocketFrameThrottle()
        self.window_opened, self.window_frames = time.monotonic(), 0
        await self.join_group(self.group_name)
        await self.accept()

    async def check_rate(self) -> None:
        """FrameError past either rate. The socket's own count first: a socket over it
        costs no Redis round trip."""
        now = time.monotonic()
        if now - self.window_opened >= self.socket_rate.duration:
            self.window_opened, self.window_frames = now, 0
        self.window_frames += 1
        retry = self.window_opened + self.socket_rate.duration - now
        if self.window_frames <= self.socket_rate.num_requests:
            address = AddressFrameThrottle()
            client = self.scope.get("client") or ("unknown", 0)
            if await sync_to_async(address.allow)(f"address-{client[0]}"):
                return
            retry = address.wait()
        raise FrameError("rate_limited", f"Too many messages; retry in {math.ceil(retry)} s.")

    async def receive_json(self, content: dict[str, Any], **kwargs: Any) -> None:
        await self.check_rate()
        await group_send(
            self.group_name,
            {
                "type": "relay.message",
                "message": checked_message(content),
                "room": self.room,
                "sent_by_worker": WORKER_ID,
            },
        )

    async def relay_message(self, event: dict[str, Any]) -> None:
        """Handler of the group's `relay.message` events."""
        await self.send_json(
            {
                "message": event["message"],
                "room": event["room"],
                "sent_by_worker": event["sent_by_worker"],
                "delivered_by_worker": WORKER_ID,
            }
        )
