"""Delivery of new messages to every socket in their room, through the channel layer.

One function for both writers (the REST view and the room consumer), so a message looks
the same whichever way it was posted.
"""

from __future__ import annotations

import json
from typing import Any

from chat.models import Message
from chat.serializers import MessageSerializer
from core.groups import group_send

# The consumer method that receives the event (`room.message` -> `room_message`).
EVENT_TYPE = "room.message"


def message_payload(message: Message) -> dict[str, Any]:
    data: dict[str, Any] = dict(MessageSerializer(message).data)
    return data


async def publish(group_name: str, payload: dict[str, Any]) -> None:
    """Send one stored message to the room's group, as the JSON text every socket gets
    (encoded once here, not once per socket).

    Awaited on the worker's event loop, it uses the channel layer's per-loop connection
    pool: no new Redis connection per message. (From a sync DRF view under ASGI,
    asgiref's async_to_sync runs this on that same loop.)"""
    await group_send(group_name, {"type": EVENT_TYPE, "text": json.dumps(payload)})
