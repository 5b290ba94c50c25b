"""`/ws/rooms/<slug>/` through the real ASGI application, the real Redis layer and Postgres."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import User
from django.test import Client
from rest_framework.test import APIClient

from chat.models import Message, Room
from mainkode_example.asgi import application

pytestmark = [
    pytest.mark.asyncio,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("channel_layer"),
]


async def open_socket(
    path: str = "/ws/rooms/lobby/", subprotocols: Sequence[str] = (), headers: Sequence[tuple[bytes, bytes]] = ()
) -> tuple[WebsocketCommunicator, str | None]:
    ws = WebsocketCommunicator(application, path, headers=list(headers), subprotocols=list(subprotocols))
    accepted, subprotocol = await ws.connect()
    assert accepted
    return ws, subprotocol


async def test_connecting_receives_nothing_until_a_message_arrives(lobby: Room) -> None:
    ws, _ = await open_socket()
    assert await ws.receive_nothing(timeout=0.5)
    await ws.disconnect()


async def test_unknown_room_closes_with_4404() -> None:
    ws, _ = await open_socket("/ws/rooms/nowhere/")
    assert await ws.receive_output(timeout=5) == {"type": "websocket.close", "code": 4404}


async def test_token_in_the_subprotocol_authenticates_and_is_not_echoed(lobby: Room, alice_token: str) -> None:
    ws, subprotocol = await open_socket(subprotocols=["mainkode.v1", f"auth.{alice_token}"])
    assert subprotocol == "mainkode.v1"  # the token itself is never sent back
    await ws.send_json_to({"body": "over the socket"})
    frame = await ws.receive_json_from(timeout=5)
    assert (frame["author"], frame["body"], frame["room"]) == ("alice", "over the socket", "lobby")
    stored = await sync_to_async(Message.objects.get)(pk=frame["id"])
    assert stored.body == "over the socket"
    await ws.disconnect()


async def test_unknown_token_closes_with_4401(lobby: Room) -> None:
    ws, _ = await open_socket(subprotocols=["mainkode.v1", "auth." + "f" * 40])
    assert await ws.receive_output(timeout=5) == {"type": "websocket.close", "code": 4401}


async def test_session_cookie_authenticates(lobby: Room, alice: User) -> None:
    browser = Client()
    await sync_to_async(browser.force_login)(alice)
    cookie = f"sessionid={browser.cookies['sessionid'].value}".encode()
    ws, _ = await open_socket(headers=[(b"cookie", cookie)])
    await ws.send_json_to({"body": "with my session"})
    assert (await ws.receive_json_from(timeout=5))["author"] == "alice"
    await ws.disconnect()


async def test_anonymous_socket_reads_but_cannot_post(lobby: Room) -> None:
    ws, _ = await open_socket()
    await ws.send_json_to({"body": "let me in"})
    assert (await ws.receive_json_from(timeout=5))["error"] == "not_authenticated"
    assert await sync_to_async(Message.objects.count)() == 0
    await ws.disconnect()


@pytest.mark.parametrize(
    ("frame", "error"),
    [
        ("not json at all", "invalid_json"),
        ('{"message": "wrong field"}', "invalid_frame"),
        ('["body"]', "invalid_frame"),
        ('{"body": ""}', "invalid_message"),
        ('{"body": 12}', "invalid_message"),
        ('{"body": "' + "x" * 4001 + '"}', "invalid_message"),
    ],
)
async def test_bad_frame_gets_an_error_and_the_socket_stays_open(
    lobby: Room, alice_token: str, frame: str, error: str
) -> None:
    ws, _ = await open_socket(subprotocols=["mainkode.v1", f"auth.{alice_token}"])
    await ws.send_to(text_data=frame)
    assert (await ws.receive_json_from(timeout=5))["error"] == error
    await ws.send_json_to({"body": "still open"})
    assert (await ws.receive_json_from(timeout=5))["body"] == "still open"
    assert await sync_to_async(Message.objects.count)() == 1
    await ws.disconnect()


async def test_rest_post_reaches_every_socket_of_the_room_only(
    lobby: Room, alice_token: str, alice_api: APIClient
) -> None:
    members = [(await open_socket())[0] for _ in range(3)]
    await sync_to_async(Room.objects.create)(slug="other", title="Other")
    outsider, _ = await open_socket("/ws/rooms/other/")
    response = await sync_to_async(alice_api.post)("/api/rooms/lobby/messages/", {"body": "via REST"}, format="json")
    assert response.status_code == 201
    for ws in members:
        assert await ws.receive_json_from(timeout=5) == response.json()
    assert await outsider.receive_nothing(timeout=0.3)
    for ws in [*members, outsider]:
        await ws.disconnect()


async def test_socket_post_reaches_the_other_members(lobby: Room, alice_token: str, bob_token: str) -> None:
    alice_ws, _ = await open_socket(subprotocols=["mainkode.v1", f"auth.{alice_token}"])
    bob_ws, _ = await open_socket(subprotocols=["mainkode.v1", f"auth.{bob_token}"])
    await bob_ws.send_json_to({"body": "hi alice"})
    for ws in (alice_ws, bob_ws):
        frame = await ws.receive_json_from(timeout=5)
        assert (frame["author"], frame["body"]) == ("bob", "hi alice")
    for ws in (alice_ws, bob_ws):
        await ws.disconnect()


async def test_foreign_origin_is_refused_on_rooms_too(lobby: Room) -> None:
    ws = WebsocketCommunicator(application, "/ws/rooms/lobby/", headers=[(b"origin", b"https://evil.example")])
    accepted, _ = await ws.connect()
    assert not accepted
    await ws.disconnect()  # the consumer ends here, not in the loop's teardown
