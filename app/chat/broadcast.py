"""Delivery of new messages to every socket in their room, through the channel layer.

One function for both writers (the REST view and the room consumer), so a message looks
the same whichever way it was posted.
"""

from __future__ import annotations

from typing import Any

from channels.layers import get_channel_layer

from chat.models import Message
from chat.serializers import MessageSerializer

# The consumer method that receives the event (`room.message` -> `room_message`).
EVENT_TYPE = "room.message"


def message_payload(message: Message) -> dict[str, Any]:
    data: dict[str, Any] = dict(MessageSerializer(message).data)
    return data


async def publish(group_name: str, payload: dict[str, Any]) -> None:
    """Send one stored message to the room's group.

    Awaited on the worker's event loop, it uses the channel layer's per-loop connection
    pool: no new Redis connection per message. (From a sync DRF view under ASGI,
    asgiref's async_to_sync runs this on that same loop.)"""
    await get_channel_layer().group_send(group_name, {"type": EVENT_TYPE, "message": payload})
