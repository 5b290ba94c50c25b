"""WebSocket policy shared by every socket route: which handshakes proceed (Origin), how a
client logs in (SUBPROTOCOL plus `auth.<token>`; the answer never echoes the token), what
a bad frame gets (an error frame; the socket stays open), and the close codes. Why each:
docs/design.md (WebSockets and the channel layer).
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

from channels.auth import AuthMiddleware
from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncJsonWebsocketConsumer, AsyncWebsocketConsumer
from channels.security.websocket import WebsocketDenier
from channels.sessions import CookieMiddleware, InstanceSessionWrapper, SessionMiddleware
from django.contrib.auth.models import User
from django.core.exceptions import DisallowedHost
from django.core.handlers.wsgi import WSGIRequest
from django.http import HttpResponse
from django.middleware.csrf import CsrfViewMiddleware
from rest_framework.exceptions import AuthenticationFailed

from core import parsers
from core.authentication import TokenAuthentication
from core.groups import CHANNEL_LAYER_ERRORS, GroupHub, Inbox, hub, new_inbox

logger = logging.getLogger(__name__)

# Application close codes (4000-4999 are free for applications), after HTTP's statuses.
CLOSE_INVALID_TOKEN = 4401
CLOSE_NOT_FOUND = 4404
# Its client read too slowly: its inbox filled up (core.groups.Inbox). After 408, Request
# Timeout; the client reconnects and fetches what it missed.
CLOSE_TOO_SLOW = 4408
# RFC 6455's registry: Try Again Later, a temporary condition. The socket's channel layer
# (Redis) failed; the client reconnects after a pause and fetches what it missed.
CLOSE_TRY_AGAIN_LATER = 1013

# An alias CHANNEL_LAYERS does not define: Channels gives a consumer naming it no channel
# layer of its own. Every socket here has none: group events come through its process's
# GroupHub (core.groups).
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


class ReadOnlySessionMiddleware(SessionMiddleware):
    """Channels' SessionMiddleware without its wrapper around `send`, which saves a
    changed session when an HTTP response starts but reads the session on every message a
    socket sends: about a tenth of the app's CPU per delivered frame of a room broadcast
    (the fan-out profile in docs/benchmarks.md). No socket here changes the session: a
    login is an HTTP request."""

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        wrapper = InstanceSessionWrapper(scope, send)
        await wrapper.resolve_session()
        return await self.inner(wrapper.scope, receive, send)


def SocketAuthMiddlewareStack(inner: Any) -> Any:
    """Channels' AuthMiddlewareStack (cookies, session, user), with the session read-only."""
    return CookieMiddleware(ReadOnlySessionMiddleware(AuthMiddleware(inner)))


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
    does a FrameError raised by `receive_json`. Group events (`join_group`) arrive in the
    socket's inbox from its process's GroupHub, not on a channel of its own."""

    # What a valid frame looks like, for the error messages.
    frame_example = "{}"
    # False for a socket that never joins a group: it waits on its client alone.
    joins_groups = True
    # The subprotocol `accept()` answers with, when the client offered it.
    subprotocol: str | None = None
    joined: tuple[str, ...] = ()
    group_hub: GroupHub | None = None
    inbox: Inbox
    accepted = False
    channel_layer_alias = NO_CHANNEL_LAYER

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Channels' AsyncConsumer.__call__, reading one inbox (group events and the client's
        messages) and closing with CLOSE_TRY_AGAIN_LATER when the channel layer fails. Why:
        docs/design.md (WebSockets and the channel layer)."""
        self.scope, self.channel_layer, self.base_send = scope, None, send
        self.inbox = new_inbox()
        forwarder = asyncio.create_task(self.forward(receive)) if self.joins_groups else None
        next_message = self.inbox.get if forwarder else receive
        try:
            while True:
                await self.dispatch(await next_message())
                if self.inbox.overflowed:
                    await self.close(code=CLOSE_TOO_SLOW)
                    break
        except StopConsumer:
            pass
        except OSError:  # a send to a client already gone (the ASGI spec: an OSError); it is over
            pass
        except CHANNEL_LAYER_ERRORS as error:
            logger.warning("Channel layer unavailable, socket closed with %d: %s", CLOSE_TRY_AGAIN_LATER, error)
            with contextlib.suppress(OSError):  # the client may be gone already
                if not self.accepted:
                    await send({"type": "websocket.accept", "subprotocol": self.subprotocol})
                await send({"type": "websocket.close", "code": CLOSE_TRY_AGAIN_LATER})
        finally:
            if forwarder is not None:
                forwarder.cancel()
            await self.leave_groups()  # whatever ended the socket, the hub forgets its inbox

    async def forward(self, receive: Any) -> None:
        """The client's messages into the inbox, in order, up to its disconnect."""
        try:
            while (message := await receive())["type"] != "websocket.disconnect":
                await self.inbox.put(message)
        except Exception:
            logger.exception("Reading a socket's client failed")
            message = {"type": "websocket.disconnect", "code": 1011}
        await self.inbox.put(message)

    async def join_group(self, group: str) -> None:
        """Receive `group`'s events (core.groups.group_send) for as long as the socket is
        open; the process's hub joins the layer's group and keeps the membership alive."""
        if not self.joins_groups:
            raise TypeError(f"{type(self).__name__} says it joins no group (joins_groups)")
        if self.group_hub is None:
            self.group_hub = hub()
        await self.group_hub.join(group, self.inbox)
        self.joined = (*self.joined, group)

    async def leave_groups(self) -> None:
        if self.group_hub is not None:
            for group in self.joined:
                await self.group_hub.leave(group, self.inbox)
        self.joined = ()

    async def disconnect(self, code: int) -> None:
        await self.leave_groups()

    async def channel_layer_failed(self, event: dict[str, Any]) -> None:
        """The hub lost the layer (core.groups): the socket would go silent, so it closes
        and its client reconnects after a pause."""
        await self.close(code=CLOSE_TRY_AGAIN_LATER)

    async def dispatch(self, message: dict[str, Any]) -> None:
        """Channels' dispatch without its `aclose_old_connections()` per event: that is a
        hop to a thread for every event of every socket, and nothing here needs it (every
        database access goes through `in_db_thread`, which closes stale connections
        itself)."""
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

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
            content = parsers.loads(text_data)
        except json.JSONDecodeError:
            raise FrameError("invalid_json", f"Frame is not JSON; send {self.frame_example}.") from None
        except parsers.NestedTooDeeply:
            raise FrameError(
                "invalid_json", f"Frame is nested too deeply (at most {parsers.MAX_JSON_DEPTH} levels)."
            ) from None
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
    """The WebSocket equivalent of a 404: the routing's last, catch-all route (it needs no
    channel layer)."""

    channel_layer_alias = NO_CHANNEL_LAYER

    async def connect(self) -> None:
        await self.accept()
        await self.close(code=CLOSE_NOT_FOUND)
