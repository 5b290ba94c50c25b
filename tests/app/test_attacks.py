"""What an outside probe tried against the app, answered as it must be: brute force on both
logins (also concurrently), JSON nested past the recursion limit over REST and over every
socket route, socket posts faster than REST allows, frame floods on the design documents'
rooms, and API tokens that never expired and were stored in clear."""

from __future__ import annotations

import json
import logging
import threading
from datetime import timedelta
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import User
from django.test import Client, RequestFactory
from knox.models import AuthToken
from rest_framework.test import APIClient

from chat.models import Message, Room
from core.parsers import MAX_JSON_DEPTH
from core.throttling import LoginThrottle
from demo.consumers import AddressFrameThrottle, SocketFrameThrottle
from mainkode_example.asgi import application

NESTED = "[" * 100_000 + "]" * 100_000  # 200 kB: past Python's recursion limit
NESTED_FRAME = "[" * 30_000 + "]" * 30_000  # 60 kB: under the 64 KiB frame limit


def nested(key: str, levels: int) -> str:
    """`{key: [[...]]}`: arrays inside an object, `levels` deep in all."""
    return f'{{"{key}": {"[" * (levels - 1)}{"]" * (levels - 1)}}}'


# --- brute force -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_admin_login_throttles_brute_force_like_the_token_endpoint(alice: User) -> None:
    alice.is_staff = True
    alice.save()
    browser = Client()
    form = "/admin/login/?next=/admin/"
    statuses = [browser.post(form, {"username": "alice", "password": f"guess-{i}"}).status_code for i in range(12)]
    assert statuses[:10] == [200] * 10  # the form again, with an error
    assert statuses[10:] == [429, 429]
    # Even the right password is refused while throttled, and the answer says when to retry.
    right = browser.post(form, {"username": "alice", "password": "alice-password"})
    assert right.status_code == 429
    assert 1 <= int(right["Retry-After"]) <= 60


@pytest.mark.django_db(transaction=True)
def test_the_login_limit_holds_under_concurrent_attempts() -> None:
    """15 attempts at once from one address: exactly 10 pass (DRF's history throttle let
    them all through: each read the same history before any wrote it)."""
    attempts = 15
    start = threading.Barrier(attempts)
    allowed: list[bool] = []

    request = RequestFactory().post("/api/auth/token/", REMOTE_ADDR="203.0.113.7")

    def attempt() -> None:
        throttle = LoginThrottle()
        start.wait()
        allowed.append(throttle.allow_request(request, None))

    threads = [threading.Thread(target=attempt) for _ in range(attempts)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(allowed) == attempts
    assert allowed.count(True) == 10


# --- a token that is not UTF-8 ---------------------------------------------------------------------


@pytest.mark.django_db
def test_a_token_that_is_not_utf8_is_a_401_logged_below_warning(
    api: APIClient, caplog: pytest.LogCaptureFixture
) -> None:
    """Bytes that are not UTF-8 in `Authorization: Token ...` (an outside probe's): the token
    library decoded them unguarded, a 500 with an ERROR traceback."""
    with caplog.at_level(logging.DEBUG):
        response = api.get("/api/rooms/", HTTP_AUTHORIZATION="Token \xff\xfe\xfd")  # latin-1, as headers arrive
    assert response.status_code == 401
    assert response.json() == {"detail": "Invalid token."}
    assert [record.getMessage() for record in caplog.records if record.levelno > logging.INFO] == []


@pytest.mark.django_db
def test_answers_to_credentials_are_never_stored_by_a_cache(alice_api: APIClient, api: APIClient, lobby: Room) -> None:
    """An outside probe saw authenticated API answers without `Cache-Control: no-store`."""
    private = alice_api.get("/api/rooms/lobby/messages/")
    assert private.status_code == 200
    assert "no-store" in private["Cache-Control"]
    public = api.get("/api/rooms/lobby/messages/")
    assert public.status_code == 200
    assert not public.has_header("Cache-Control")


# --- JSON nested too deeply ------------------------------------------------------------------------


@pytest.mark.django_db
def test_nested_json_to_the_anonymous_token_endpoint_is_a_400(api: APIClient) -> None:
    response = api.post("/api/auth/token/", NESTED, content_type="application/json")
    assert response.status_code == 400
    assert "nested too deeply" in response.json()["detail"]


@pytest.mark.django_db
def test_nested_json_to_the_messages_endpoint_is_a_400(alice_api: APIClient, lobby: Room) -> None:
    response = alice_api.post("/api/rooms/lobby/messages/", NESTED, content_type="application/json")
    assert response.status_code == 400
    assert lobby.messages.count() == 0


@pytest.mark.django_db
def test_json_at_the_depth_limit_is_parsed_and_one_level_more_is_a_400(alice_api: APIClient, lobby: Room) -> None:
    """The limit is ours (core/parsers.py), not the interpreter's recursion limit."""
    url = "/api/rooms/lobby/messages/"
    at_limit = alice_api.post(url, nested("body", MAX_JSON_DEPTH), content_type="application/json")
    assert at_limit.status_code == 400
    assert "body" in at_limit.json(), at_limit.json()  # parsed: the serializer's answer
    past = alice_api.post(url, nested("body", MAX_JSON_DEPTH + 1), content_type="application/json")
    assert past.status_code == 400
    assert past.json()["detail"] == f"JSON parse error - nested too deeply (at most {MAX_JSON_DEPTH} levels)."
    assert lobby.messages.count() == 0


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("channel_layer")
async def test_a_frame_at_the_depth_limit_is_parsed_and_one_level_more_is_refused() -> None:
    ws = WebsocketCommunicator(application, "/ws/chat/lobby/")
    accepted, _ = await ws.connect()
    assert accepted
    await ws.send_to(text_data=nested("message", MAX_JSON_DEPTH))
    assert (await ws.receive_json_from(timeout=5))["error"] == "invalid_frame"  # parsed: not a text message
    await ws.send_to(text_data=nested("message", MAX_JSON_DEPTH + 1))
    reply = await ws.receive_json_from(timeout=5)
    detail = f"Frame is nested too deeply (at most {MAX_JSON_DEPTH} levels)."
    assert reply == {"error": "invalid_json", "detail": detail}
    await ws.disconnect()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("channel_layer")
@pytest.mark.parametrize(
    ("path", "still_open", "answer"),
    [
        ("/ws/chat/", {"message": "still here"}, {"message": "Echo: still here"}),
        ("/ws/chat/lobby/", {"message": "still here"}, {"message": "still here", "room": "lobby"}),
        ("/ws/rooms/lobby/", {"body": "still here"}, {"error": "not_authenticated"}),
    ],
)
async def test_a_nested_frame_gets_an_error_frame_and_the_socket_stays_open(
    path: str, still_open: dict[str, str], answer: dict[str, str], lobby: Room, caplog: pytest.LogCaptureFixture
) -> None:
    ws = WebsocketCommunicator(application, path)
    accepted, _ = await ws.connect()
    assert accepted
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            await ws.send_to(text_data=NESTED_FRAME)
            reply = await ws.receive_json_from(timeout=5)
            assert reply["error"] in {"invalid_json", "message_too_long"}
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]
    # Still open, and still answering.
    await ws.send_to(text_data=json.dumps(still_open))
    reply = await ws.receive_json_from(timeout=5)
    assert {key: reply[key] for key in answer} == answer
    await ws.disconnect()


# --- posting over a socket faster than REST allows ---------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("channel_layer")
async def test_socket_posts_are_rate_limited_per_user_with_an_error_frame(lobby: Room, alice_token: str) -> None:
    """60 posts as fast as one socket sends them: at most CHAT_SOCKET_POST_RATE (20 a
    second) per window are stored; every other one gets a `rate_limited` error frame.
    (Unlimited, one logged-in socket stored 3,000 messages in 0.1 s.)"""
    ws = WebsocketCommunicator(application, "/ws/rooms/lobby/", subprotocols=["mainkode.v1", f"auth.{alice_token}"])
    accepted, _ = await ws.connect()
    assert accepted
    sent = 60
    for i in range(sent):
        await ws.send_json_to({"body": f"flood {i}"})
    replies = [await ws.receive_json_from(timeout=10) for _ in range(sent)]
    stored = [reply for reply in replies if "id" in reply]
    refused = [reply for reply in replies if reply.get("error") == "rate_limited"]
    assert len(stored) + len(refused) == sent
    assert refused, "nothing was refused"
    assert len(stored) <= 40  # 20 per one-second window; the burst may straddle two
    assert await Message.objects.filter(room=lobby).acount() == len(stored)
    await ws.disconnect()


async def room_socket(address: str) -> WebsocketCommunicator:
    ws = WebsocketCommunicator(application, "/ws/chat/flooded/")
    ws.scope["client"] = (address, 40000)
    assert (await ws.connect())[0]
    return ws


async def heard(ws: WebsocketCommunicator) -> list[dict[str, Any]]:
    """Every frame the socket has been sent so far."""
    frames = []
    while not await ws.receive_nothing(timeout=0.3):
        frames.append(await ws.receive_json_from())
    return frames


async def refusals(ws: WebsocketCommunicator, name: str, frames: int) -> list[str]:
    """Send `frames` messages; the error frames they got."""
    for n in range(frames):
        await ws.send_json_to({"message": f"{name} {n}"})
    return [frame["detail"] for frame in await heard(ws) if frame.get("error") == "rate_limited"]


@pytest.mark.asyncio
@pytest.mark.django_db
@pytest.mark.usefixtures("channel_layer")
async def test_the_design_documents_rooms_limit_frames_per_socket_and_per_address(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The third probe's M2: one socket sent 572 frames/s of 4 kB to /ws/chat/<room>/, each
    fanned out to the room. Past its socket's rate, or its address's (over all its sockets),
    a frame gets a `rate_limited` error frame and reaches no one."""
    monkeypatch.setattr(SocketFrameThrottle, "THROTTLE_RATES", {"chat_room_frame": "5/minute"})
    monkeypatch.setattr(AddressFrameThrottle, "THROTTLE_RATES", {"chat_room_address_frame": "8/minute"})
    first, second, listener = [await room_socket(address) for address in ("10.0.0.1", "10.0.0.1", "10.0.0.2")]
    assert len(await refusals(first, "first", 7)) == 2  # its socket's 5 pass
    refused = await refusals(second, "second", 5)  # its own 5 would pass; its address has 3 left
    assert len(refused) == 2
    assert "retry in" in refused[0]
    passed = [f"first {n}" for n in range(5)] + [f"second {n}" for n in range(3)]
    assert [frame["message"] for frame in await heard(listener)] == passed
    assert await refusals(listener, "listener", 1) == []  # another address: its own allowance
    for ws in (first, second, listener):
        await ws.disconnect()


# --- API tokens ----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_logging_out_ends_the_token_and_logging_out_everywhere_ends_them_all(api: APIClient, alice: User) -> None:
    """An outside probe: the page's "Log out" left its token valid for 10 hours."""

    def login() -> str:
        response = api.post("/api/auth/token/", {"username": "alice", "password": "alice-password"}, format="json")
        assert response.status_code == 200
        return str(response.json()["token"])

    def rooms_with(token: str) -> int:
        return APIClient().get("/api/rooms/", HTTP_AUTHORIZATION=f"Token {token}").status_code

    first, second, third = login(), login(), login()
    assert APIClient().post("/api/auth/logout/", HTTP_AUTHORIZATION=f"Token {first}").status_code == 204
    assert (rooms_with(first), rooms_with(second)) == (401, 200)
    assert APIClient().post("/api/auth/logout-all/", HTTP_AUTHORIZATION=f"Token {second}").status_code == 204
    assert (rooms_with(second), rooms_with(third)) == (401, 401)
    assert APIClient().post("/api/auth/logout/").status_code == 401  # no token: nothing to end


@pytest.mark.django_db
def test_api_tokens_are_stored_hashed_and_expire(api: APIClient, alice: User) -> None:
    response = api.post("/api/auth/token/", {"username": "alice", "password": "alice-password"}, format="json")
    assert response.status_code == 200
    token = response.json()["token"]
    assert response.json()["expiry"]
    # The database holds a digest and a short lookup prefix, never the token itself.
    stored = AuthToken.objects.get(user=alice)
    assert token not in {stored.digest, stored.token_key}
    assert len(stored.token_key) < len(token)
    assert stored.expiry is not None
    assert api.get("/api/rooms/", HTTP_AUTHORIZATION=f"Token {token}").status_code == 200


@pytest.mark.django_db
def test_an_expired_token_is_refused(api: APIClient, alice: User) -> None:
    _, expired = AuthToken.objects.create(alice, expiry=timedelta(seconds=-1))
    assert api.get("/api/rooms/", HTTP_AUTHORIZATION=f"Token {expired}").status_code == 401


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("channel_layer")
async def test_an_expired_token_in_the_subprotocol_closes_with_4401(lobby: Room, alice: User) -> None:
    _, expired = await sync_to_async(AuthToken.objects.create)(alice, expiry=timedelta(seconds=-1))
    ws = WebsocketCommunicator(application, "/ws/rooms/lobby/", subprotocols=["mainkode.v1", f"auth.{expired}"])
    accepted, _ = await ws.connect()
    assert accepted
    assert await ws.receive_output(timeout=5) == {"type": "websocket.close", "code": 4401}
    await ws.disconnect()  # the consumer ends here, not in the loop's teardown


# --- logging in while Redis is down --------------------------------------------------------------

UNREACHABLE_REDIS = "redis://127.0.0.1:9/0"  # the discard port: nothing answers


@pytest.fixture
def redis_down(settings: Any) -> None:
    """The cache (where the login counters live) pointed at a Redis that is not there."""
    settings.CACHES = {
        "default": {
            **settings.CACHES["default"],
            "LOCATION": UNREACHABLE_REDIS,
            "OPTIONS": {"socket_timeout": 1, "socket_connect_timeout": 1},
        }
    }


@pytest.mark.django_db
@pytest.mark.usefixtures("redis_down")
def test_a_login_while_redis_is_down_is_a_503_that_says_when_to_retry(api: APIClient, alice: User) -> None:
    """Refused, not let through unthrottled, and not a 500."""
    response = api.post("/api/auth/token/", {"username": "alice", "password": "alice-password"}, format="json")
    assert response.status_code == 503
    assert int(response["Retry-After"]) > 0
    assert "unavailable" in response.json()["detail"]
    admin_login = Client().post("/admin/login/", {"username": "alice", "password": "alice-password"})
    assert admin_login.status_code == 503
    assert int(admin_login["Retry-After"]) > 0
