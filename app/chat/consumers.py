"""WebSocket consumers of the chat app."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar, cast

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.contrib.auth.models import AnonymousUser, User
from rest_framework.authtoken.models import Token

from chat.broadcast import message_payload, publish
from chat.frames import FrameError, parse_chat_message, parse_new_message
from chat.models import Message, Room
from chat.serializers import MessageSerializer
from mainkode_example.ws_not_found import CLOSE_NOT_FOUND

P = ParamSpec("P")
R = TypeVar("R")

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


# Close code for a socket that offered a token the server does not know.
CLOSE_INVALID_TOKEN = 4401
# The subprotocol a client offers to speak this API; with a token it also offers
# `auth.<token>`. Browsers cannot set headers on a WebSocket, and a token in the URL would
# land in access logs; the Sec-WebSocket-Protocol header lands in neither.
SUBPROTOCOL = "mainkode.v1"
TOKEN_SUBPROTOCOL_PREFIX = "auth."  # noqa: S105 (a prefix, not a secret)


def in_db_thread(func: Callable[P, R]) -> Callable[P, Awaitable[R]]:
    """Channels' database_sync_to_async (closes stale connections around the call), typed."""
    return cast(Callable[P, Awaitable[R]], database_sync_to_async(func))


@in_db_thread
def user_for_token(key: str) -> User | None:
    token = Token.objects.select_related("user").filter(key=key).first()
    return token.user if token is not None and token.user.is_active else None


@in_db_thread
def find_room(slug: str) -> Room | None:
    return Room.objects.filter(slug=slug).first()


@in_db_thread
def store_message(room: Room, author: User, body: str) -> dict[str, Any]:
    return message_payload(Message.objects.create(room=room, author=author, body=body))


class RoomConsumer(JsonFramesConsumer):
    """`/ws/rooms/<slug>/`: every message stored in the room, posted over REST or over any
    room socket, reaches every socket of the room. Authenticated users (session cookie,
    or a token in the subprotocol) post with `{"body": "..."}`."""

    room: Room | None = None

    async def connect(self) -> None:
        offered: list[str] = list(self.scope.get("subprotocols") or [])
        # Echo our subprotocol when offered: Chrome fails a handshake whose answer lacks it.
        subprotocol = SUBPROTOCOL if SUBPROTOCOL in offered else None
        token = next(
            (p.removeprefix(TOKEN_SUBPROTOCOL_PREFIX) for p in offered if p.startswith(TOKEN_SUBPROTOCOL_PREFIX)), None
        )
        if token is not None:
            user = await user_for_token(token)
            if user is None:
                # Accept first: a close code only reaches the client after the handshake.
                await self.accept(subprotocol)
                await self.close(code=CLOSE_INVALID_TOKEN)
                return
            self.scope["user"] = user
        self.room = await find_room(self.scope["url_route"]["kwargs"]["slug"])
        if self.room is None:
            await self.accept(subprotocol)
            await self.close(code=CLOSE_NOT_FOUND)
            return
        await self.channel_layer.group_add(self.room.group_name, self.channel_name)
        await self.accept(subprotocol)

    async def disconnect(self, code: int) -> None:
        if self.room is not None:
            await self.channel_layer.group_discard(self.room.group_name, self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.room is None:
            return
        try:
            body = parse_new_message(text_data)
        except FrameError as error:
            await self.send_json(error.as_reply())
            return
        user = self.scope.get("user") or AnonymousUser()
        if not isinstance(user, User) or not user.is_authenticated:
            await self.send_json(
                FrameError("not_authenticated", "Log in (session) or offer a token to post.").as_reply()
            )
            return
        serializer = MessageSerializer(data={"body": body})
        if not serializer.is_valid():
            await self.send_json({"error": "invalid_message", "detail": serializer.errors})
            return
        payload = await store_message(self.room, user, serializer.validated_data["body"])
        await publish(self.room.group_name, payload)

    async def room_message(self, event: dict[str, Any]) -> None:
        """Handler of chat.broadcast.EVENT_TYPE events."""
        await self.send_json(event["message"])
