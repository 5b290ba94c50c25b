"""WebSocket consumers of the chat app."""

from __future__ import annotations

import json
import os
import socket
from typing import Any

from channels.generic.websocket import AsyncWebsocketConsumer

from chat.frames import FrameError, parse_chat_message

# Which server process holds a socket: the container's host name tells replicas apart,
# the pid tells Gunicorn's worker processes apart.
WORKER_ID = f"{socket.gethostname()}:{os.getpid()}"


class JsonFramesConsumer(AsyncWebsocketConsumer):
    async def send_json(self, payload: dict[str, Any]) -> None:
        await self.send(text_data=json.dumps(payload))


class EchoConsumer(JsonFramesConsumer):
    """The seed's example: `Hi` (or `{"message": "Hi"}`) -> `{"message": "Echo: Hi"}`."""

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        try:
            message = parse_chat_message(text_data, allow_plain_text=True)
        except FrameError as error:
            await self.send_json(error.as_reply())
            return
        await self.send_json({"message": f"Echo: {message}"})


class RoomChatConsumer(JsonFramesConsumer):
    """`/ws/chat/<room>/`: every `{"message": ...}` goes to every socket in the room,
    through the Redis channel layer, whichever process or replica holds each socket."""

    group_name: str

    async def connect(self) -> None:
        room = self.scope["url_route"]["kwargs"]["room"]
        self.room = room
        self.group_name = f"chat.{room}"
        await self.channel_layer.group_add(self.group_name, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        if hasattr(self, "group_name"):
            await self.channel_layer.group_discard(self.group_name, self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        try:
            message = parse_chat_message(text_data, allow_plain_text=False)
        except FrameError as error:
            await self.send_json(error.as_reply())
            return
        await self.channel_layer.group_send(
            self.group_name,
            {"type": "chat.message", "message": message, "room": self.room, "sent_by_worker": WORKER_ID},
        )

    async def chat_message(self, event: dict[str, Any]) -> None:
        await self.send_json(
            {
                "message": event["message"],
                "room": event["room"],
                "sent_by_worker": event["sent_by_worker"],
                "delivered_by_worker": WORKER_ID,
            }
        )
