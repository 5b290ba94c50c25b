"""Parsing of incoming chat WebSocket frames: one place decides what a valid frame is and
what error a client gets back for an invalid one."""

from __future__ import annotations

import json
from dataclasses import dataclass

from django.conf import settings


@dataclass(frozen=True)
class FrameError(Exception):
    """A frame the server refuses; the socket stays open and the client gets `as_reply()`."""

    code: str
    detail: str

    def as_reply(self) -> dict[str, str]:
        return {"error": self.code, "detail": self.detail}


def parse_chat_message(text: str | None, *, allow_plain_text: bool) -> str:
    """The message carried by a frame `{"message": "..."}`.

    With `allow_plain_text` (the seed's echo endpoint, typed into wscat), a frame that is
    not a JSON object is itself the message.
    """
    try:
        payload = _json_object(text, example='{"message": "..."}')
    except FrameError as error:
        if allow_plain_text and text is not None and error.code in ("invalid_json", "invalid_frame"):
            return _checked(text)
        raise
    message = payload.get("message")
    if not isinstance(message, str):
        raise FrameError("invalid_frame", 'Field "message" is required and must be a string.')
    return _checked(message)


def _json_object(text: str | None, *, example: str) -> dict[str, object]:
    """The JSON object a text frame holds, or the FrameError that says what is wrong."""
    if text is None:
        raise FrameError("binary_not_supported", "Send text frames holding JSON.")
    try:
        payload = json.loads(text)
    except json.JSONDecodeError:
        raise FrameError("invalid_json", f"Frame is not JSON; send {example}.") from None
    if not isinstance(payload, dict):
        raise FrameError("invalid_frame", f"Frame must be a JSON object like {example}.")
    return payload


def _checked(message: str) -> str:
    limit = settings.CHAT_MESSAGE_MAX_LENGTH
    if not message.strip():
        raise FrameError("invalid_frame", "Message must not be blank.")
    if len(message) > limit:
        raise FrameError("message_too_long", f"Message must be at most {limit} characters.")
    return message


def parse_new_message(text: str | None) -> object:
    """The `body` of a `{"body": "..."}` frame (validated further by MessageSerializer)."""
    payload = _json_object(text, example='{"body": "..."}')
    if "body" not in payload:
        raise FrameError("invalid_frame", 'Frame must be a JSON object like {"body": "..."}.')
    return payload["body"]
