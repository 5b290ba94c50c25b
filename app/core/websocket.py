"""WebSocket policy shared by every socket route: which handshakes may proceed (an Origin
that is not the site's own is refused, a missing one let through), how a client logs in (a token in the
subprotocol), what a bad frame gets back (an error frame; the socket stays open), and the
application close codes. Why each: docs/design.md (WebSockets and the channel layer).

A client logs in by
offering SUBPROTOCOL plus `auth.<token>`; the server answers SUBPROTOCOL, never the token.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, cast

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer, AsyncWebsocketConsumer
from channels.security.websocket import WebsocketDenier
from django.contrib.auth.models import User
from django.core.exceptions import DisallowedHost
from django.core.handlers.wsgi import WSGIRequest
from django.http import HttpResponse
from django.middleware.csrf import CsrfViewMiddleware
from knox.auth import TokenAuthentication
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rest_framework.exceptions import AuthenticationFailed

logger = logging.getLogger(__name__)

# Application close codes (4000-4999 are free for applications), after HTTP's statuses.
CLOSE_INVALID_TOKEN = 4401
CLOSE_NOT_FOUND = 4404
# RFC 6455's registry: Try Again Later, a temporary condition. The socket's channel layer
# (Redis) failed; the client reconnects after a pause and fetches what it missed.
CLOSE_TRY_AGAIN_LATER = 1013
CHANNEL_LAYER_ERRORS = (RedisConnectionError, RedisTimeoutError)

# An alias CHANNEL_LAYERS does not define: Channels gives a consumer naming it no channel
# layer, so a socket nothing is ever sent to does not listen on Redis (nor fail with it).
NO_CHANNEL_LAYER = "none"

SUBPROTOCOL = "mainkode.v1"
TOKEN_SUBPROTOCOL_PREFIX = "auth."  # noqa: S105 (a prefix, not a secret)


def in_db_thread[**P, R](func: Callable[P, R]) -> Callable[P, Awaitable[R]]:
    """Channels' database_sync_to_async (closes stale connections around the call), typed."""
    return cast(Callable[P, Awaitable[R]], database_sync_to_async(func))


@in_db_thread
def user_for_token(key: str) -> User | None:
    """The active user of an unexpired API token (what REST's Authorization header checks)."""
    try:
        user, _ = TokenAuthentication().authenticate_credentials(key.encode())
    except AuthenticationFailed:
        return None
    return cast(User, user)


class BrowserOriginValidator:
    """The Origin policy, around the whole WebSocket application (asgi.py). An Origin must
    be the site's own (scheme, host and port: the handshake's scheme and Host, the Host one
    of ALLOWED_HOSTS) or one of CSRF_TRUSTED_ORIGINS, decided by Django's own CSRF origin
    check, so sockets and forms agree."""

    def __init__(self, application: Any) -> None:
        self.application = application
        self.csrf = CsrfViewMiddleware(lambda request: HttpResponse())

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        headers = dict(scope.get("headers") or [])
        origin = headers.get(b"origin")
        if origin is None or self.allowed(scope, origin.decode("latin-1"), headers.get(b"host")):
            return await self.application(scope, receive, send)
        return await WebsocketDenier()(scope, receive, send)

    def allowed(self, scope: dict[str, Any], origin: str, host: bytes | None) -> bool:
        environ = {
            "REQUEST_METHOD": "GET",
            "wsgi.input": io.BytesIO(),
            "wsgi.url_scheme": "https" if scope.get("scheme") in ("wss", "https") else "http",
            "HTTP_ORIGIN": origin,
            # No Host, no site origin: Django's get_host() falls back to an empty name.
            "HTTP_HOST": host.decode("latin-1") if host else "",
        }
        try:
            # Django's CsrfViewMiddleware._origin_verified: the same rules as a form post.
            return bool(self.csrf._origin_verified(WSGIRequest(environ)))  # type: ignore[attr-defined]
        except DisallowedHost:  # a Host that is not one of ALLOWED_HOSTS
            return False


@dataclass(frozen=True)
class FrameError(Exception):
    """A frame the server refuses; the socket stays open and the client gets `as_reply()`."""

    code: str
    detail: str

    def as_reply(self) -> dict[str, str]:
        return {"error": self.code, "detail": self.detail}


class JsonFrameConsumer(AsyncJsonWebsocketConsumer):
    """Channels' JSON consumer, for frames that are JSON objects. A frame that is not one
    gets an error frame (FrameError) instead of an exception that drops the socket, and so
    does a FrameError raised by `receive_json`."""

    # What a valid frame looks like, for the error messages.
    frame_example = "{}"
    # The subprotocol `accept()` answers with, when the client offered it.
    subprotocol: str | None = None
    joined: tuple[str, ...] = ()
    refresher: asyncio.Task[None] | None = None
    accepted = False

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Channels' consumer, except that a channel-layer failure (Redis gone: a read,
        a group_add in the handshake, a group_send) closes the socket with
        CLOSE_TRY_AGAIN_LATER, where it would drop it without a close frame (or answer
        the handshake with a 500)."""
        try:
            await super().__call__(scope, receive, send)
        except CHANNEL_LAYER_ERRORS as error:
            logger.warning("Channel layer unavailable, socket closed with %d: %s", CLOSE_TRY_AGAIN_LATER, error)
            with contextlib.suppress(OSError):  # the client may be gone already
                if not self.accepted:
                    await send({"type": "websocket.accept", "subprotocol": self.subprotocol})
                await send({"type": "websocket.close", "code": CLOSE_TRY_AGAIN_LATER})

    async def join_group(self, group: str) -> None:
        """Join a channel-layer group for as long as the socket is open. channels_redis
        forgets a member after its `group_expiry` (a day) even while the socket is open,
        and the socket then silently stops receiving: the membership is renewed at half
        that interval until the socket closes."""
        await self.channel_layer.group_add(group, self.channel_name)
        self.joined = (*self.joined, group)
        expiry = getattr(self.channel_layer, "group_expiry", None)  # the pubsub layer has none
        if expiry and self.refresher is None:
            self.refresher = asyncio.create_task(self.renew_groups(expiry / 2))

    async def renew_groups(self, interval: float) -> None:
        try:
            while True:
                await asyncio.sleep(interval)
                for group in self.joined:
                    await self.channel_layer.group_add(group, self.channel_name)
        except CHANNEL_LAYER_ERRORS:
            # Unrenewed, a membership lapses and the socket goes silent: the client
            # reconnects and joins anew instead.
            await self.close(code=CLOSE_TRY_AGAIN_LATER)

    async def leave_groups(self) -> None:
        if self.refresher is not None:
            self.refresher.cancel()
        for group in self.joined:
            # With Redis gone, the membership stays behind until the group's expiry; what
            # is sent to it meanwhile expires unread (CHANNEL_LAYER_EXPIRY).
            with contextlib.suppress(*CHANNEL_LAYER_ERRORS):
                await self.channel_layer.group_discard(group, self.channel_name)
        self.joined = ()

    async def disconnect(self, code: int) -> None:
        await self.leave_groups()

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs: Any) -> None:
        try:
            await self.receive_json(self.decode_frame(text_data), **kwargs)
        except FrameError as error:
            await self.send_json(error.as_reply())

    def decode_frame(self, text_data: str | None) -> dict[str, Any]:
        """The JSON object a text frame holds, or the FrameError that says what is wrong."""
        if text_data is None:
            raise FrameError("binary_not_supported", "Send text frames holding JSON.")
        try:
            content = json.loads(text_data)
        except json.JSONDecodeError:
            raise FrameError("invalid_json", f"Frame is not JSON; send {self.frame_example}.") from None
        except RecursionError:  # json's answer to brackets nested past the recursion limit
            raise FrameError("invalid_json", f"Frame is nested too deeply; send {self.frame_example}.") from None
        if not isinstance(content, dict):
            raise FrameError("invalid_frame", f"Frame must be a JSON object like {self.frame_example}.")
        return content

    async def accept(self, subprotocol: str | None = None, headers: Any = None) -> None:
        self.accepted = True
        await super().accept(subprotocol or self.subprotocol, headers)

    async def close_with(self, code: int) -> None:
        """Refuse the socket with an application close code. Accepted first: a close code
        only reaches the client after the handshake (before it, the client sees HTTP 403)."""
        await self.accept()
        await self.close(code=code)

    async def log_in_by_subprotocol(self) -> bool:
        """Answer SUBPROTOCOL when offered, and log in the user of an offered
        `auth.<token>`. False (the socket already closed with 4401) for an unknown token."""
        offered: list[str] = list(self.scope.get("subprotocols") or [])
        # Chrome fails a handshake whose answer lacks the subprotocol it offered.
        self.subprotocol = SUBPROTOCOL if SUBPROTOCOL in offered else None
        token = next(
            (p.removeprefix(TOKEN_SUBPROTOCOL_PREFIX) for p in offered if p.startswith(TOKEN_SUBPROTOCOL_PREFIX)), None
        )
        if token is None:
            return True
        user = await user_for_token(token)
        if user is None:
            await self.close_with(CLOSE_INVALID_TOKEN)
            return False
        self.scope["user"] = user
        return True


class NotFoundConsumer(AsyncWebsocketConsumer):
    """The WebSocket equivalent of a 404: the routing's last, catch-all route."""

    channel_layer_alias = NO_CHANNEL_LAYER

    async def connect(self) -> None:
        await self.accept()
        await self.close(code=CLOSE_NOT_FOUND)
