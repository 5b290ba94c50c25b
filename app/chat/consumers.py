"""`/ws/rooms/<slug>/`: the live side of a stored room (chat.models.Room)."""

from __future__ import annotations

import math
from typing import Any

from django.contrib.auth.models import AnonymousUser, User

from chat.broadcast import message_payload, publish
from chat.exports import user_group
from chat.models import Message, Room
from chat.serializers import MessageSerializer
from core.throttling import AtomicRateThrottle
from core.websocket import CLOSE_NOT_FOUND, FrameError, JsonFrameConsumer, in_db_thread


class SocketPostThrottle(AtomicRateThrottle):
    """Posts over sockets per user (CHAT_SOCKET_POST_RATE), over all of the user's sockets:
    REST posts meet nginx's per-address rate, socket frames pass nginx unmetered."""

    scope = "chat_socket_post"


@in_db_thread
def find_room(slug: str) -> Room | None:
    return Room.objects.filter(slug=slug).first()


@in_db_thread
def store_message(room: Room, author: User, body: str) -> dict[str, Any]:
    """The stored message, or FrameError when its author posts faster than allowed."""
    throttle = SocketPostThrottle()
    if not throttle.allow(str(author.pk)):
        raise FrameError("rate_limited", f"Too many posts; retry in {math.ceil(throttle.wait())} s.")
    return message_payload(Message.objects.create(room=room, author=author, body=body))


class StoredRoomConsumer(JsonFrameConsumer):
    """Every message stored in the room (over REST or any room socket) reaches every socket
    of the room. Logged-in users post `{"body": "..."}` (at most CHAT_SOCKET_POST_RATE) and
    receive `{"export": {...}}` when their export is finished. An unknown room closes with
    4404, an unknown token with 4401 (docs/api.md)."""

    frame_example = '{"body": "..."}'
    room: Room | None = None

    async def connect(self) -> None:
        if not await self.log_in_by_subprotocol():
            return
        self.room = await find_room(self.scope["url_route"]["kwargs"]["slug"])
        if self.room is None:
            await self.close_with(CLOSE_NOT_FOUND)
            return
        await self.join_group(self.room.group_name)
        user = self.scope.get("user")
        if isinstance(user, User) and user.is_authenticated:
            # The user's own events (an export finished: chat/exports.py).
            await self.join_group(user_group(user.pk))
        await self.accept()

    async def receive_json(self, content: dict[str, Any], **kwargs: Any) -> None:
        if self.room is None:
            return
        if "body" not in content:
            raise FrameError("invalid_frame", f"Frame must be a JSON object like {self.frame_example}.")
        user = self.scope.get("user") or AnonymousUser()
        if not isinstance(user, User) or not user.is_authenticated:
            raise FrameError("not_authenticated", "Log in (session) or offer a token to post.")
        serializer = MessageSerializer(data={"body": content["body"]})
        if not serializer.is_valid():
            await self.send_json({"error": "invalid_message", "detail": serializer.errors})
            return
        payload = await store_message(self.room, user, serializer.validated_data["body"])
        await publish(self.room.group_name, payload)

    async def room_message(self, event: dict[str, Any]) -> None:
        """Handler of chat.broadcast.EVENT_TYPE events: the message's JSON, encoded once."""
        await self.send(text_data=event["text"])

    async def export_finished(self, event: dict[str, Any]) -> None:
        """Handler of chat.exports.EVENT_TYPE events: `{"export": {...}}`, as its status URL."""
        await self.send_json({"export": event["export"]})
