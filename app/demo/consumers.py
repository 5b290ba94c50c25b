"""The design documents' WebSocket examples: an echo, and a room chat whose messages are
relayed to every socket of the room through the Redis channel layer and never stored
(the stored rooms are the chat app's)."""

from __future__ import annotations

import os
import socket
from typing import Any

from django.conf import settings

from core.groups import group_send
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


class EphemeralRoomConsumer(JsonFrameConsumer):
    """`/ws/chat/<room>/`: every `{"message": ...}` goes to every socket in the room,
    whichever process or replica holds each socket; nothing is stored."""

    frame_example = '{"message": "..."}'
    group_name: str

    async def connect(self) -> None:
        self.room = self.scope["url_route"]["kwargs"]["room"]
        self.group_name = f"chat.{self.room}"
        await self.join_group(self.group_name)
        await self.accept()

    async def receive_json(self, content: dict[str, Any], **kwargs: Any) -> None:
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
