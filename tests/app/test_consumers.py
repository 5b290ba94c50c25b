"""WebSocket consumers through the real ASGI application (Origin policy, auth middleware,
routing) on the real Redis channel layer."""

from __future__ import annotations

import asyncio
import json
from collections.abc import MutableMapping, Sequence
from typing import Any

import pytest
from channels.testing import WebsocketCommunicator

from core.groups import group_send
from mainkode_example.asgi import application

pytestmark = [pytest.mark.asyncio, pytest.mark.usefixtures("channel_layer")]


def communicator(path: str, headers: Sequence[tuple[bytes, bytes]] = ()) -> WebsocketCommunicator:
    return WebsocketCommunicator(application, path, headers=list(headers))


async def connected(path: str, headers: Sequence[tuple[bytes, bytes]] = ()) -> WebsocketCommunicator:
    ws = communicator(path, headers)
    accepted, _ = await ws.connect()
    assert accepted, f"{path} refused the handshake"
    return ws


# --- /ws/chat/: the design documents' echo -------------------------------------------------------------


@pytest.mark.parametrize("frame", ["Hi", '{"message": "Hi"}'])
async def test_echo_answers_the_documented_reply(frame: str) -> None:
    ws = await connected("/ws/chat/")
    await ws.send_to(text_data=frame)
    assert await ws.receive_from(timeout=5) == '{"message": "Echo: Hi"}'
    await ws.disconnect()


@pytest.mark.parametrize(
    ("frame", "error"),
    [
        ('{"text": "no message field"}', "invalid_frame"),
        ('{"message": 42}', "invalid_frame"),
        ('{"message": "   "}', "invalid_frame"),
        (json.dumps({"message": "x" * 4001}), "message_too_long"),
    ],
)
async def test_echo_answers_a_bad_frame_with_an_error_and_stays_open(frame: str, error: str) -> None:
    ws = await connected("/ws/chat/")
    await ws.send_to(text_data=frame)
    assert (await ws.receive_json_from(timeout=5))["error"] == error
    await ws.send_to(text_data="still here?")
    assert await ws.receive_json_from(timeout=5) == {"message": "Echo: still here?"}
    await ws.disconnect()


async def test_echo_refuses_binary_frames_and_stays_open() -> None:
    ws = await connected("/ws/chat/")
    await ws.send_to(bytes_data=b"\x00\x01")
    assert (await ws.receive_json_from(timeout=5))["error"] == "binary_not_supported"
    await ws.send_to(text_data="Hi")
    assert await ws.receive_json_from(timeout=5) == {"message": "Echo: Hi"}
    await ws.disconnect()


# --- Origin policy --------------------------------------------------------------------------


async def test_foreign_origin_is_refused() -> None:
    ws = communicator("/ws/chat/", [(b"origin", b"https://evil.example")])
    accepted, _ = await ws.connect()
    assert not accepted
    await ws.disconnect()  # the consumer ends here, not in the loop's teardown


@pytest.mark.parametrize(
    ("origin", "host", "scheme"),
    [(b"http://localhost:8000", b"localhost:8000", "ws"), (b"https://127.0.0.1", b"127.0.0.1", "wss")],
)
async def test_own_origin_is_accepted(origin: bytes, host: bytes, scheme: str) -> None:
    ws = communicator("/ws/chat/", [(b"origin", origin), (b"host", host)])
    ws.scope["scheme"] = scheme  # what uvicorn sets from nginx's X-Forwarded-Proto
    accepted, _ = await ws.connect()
    assert accepted
    await ws.disconnect()


@pytest.mark.parametrize(
    ("origin", "host", "scheme"),
    [
        (b"http://127.0.0.1:1", b"127.0.0.1:8000", "ws"),  # another port of an allowed host
        (b"http://localhost:8000", b"localhost:8000", "wss"),  # plain-HTTP page, HTTPS site
        (b"http://evil.example", b"evil.example", "ws"),  # a Host that is not allowed
    ],
)
async def test_an_origin_is_the_site_own_only_with_its_scheme_host_and_port(
    origin: bytes, host: bytes, scheme: str
) -> None:
    ws = communicator("/ws/chat/", [(b"origin", origin), (b"host", host)])
    ws.scope["scheme"] = scheme
    accepted, _ = await ws.connect()
    assert not accepted
    # The client goes away, as a browser does: the consumer ends (and stops listening on
    # the channel layer) within the test, not in the event loop's teardown, where its
    # pending Redis read could outlive the cancellation (a hang seen in CI).
    await ws.disconnect()


async def test_missing_origin_is_accepted_for_non_browser_clients() -> None:
    ws = await connected("/ws/chat/")
    await ws.disconnect()


async def test_unknown_path_closes_with_4404() -> None:
    ws = await connected("/ws/nowhere/")
    assert await ws.receive_output(timeout=5) == {"type": "websocket.close", "code": 4404}
    await ws.disconnect()  # the consumer ends here, not in the loop's teardown


# --- /ws/chat/<room>/: group chat over the Redis layer ----------------------------------------


async def test_room_message_reaches_every_member_and_no_other_room() -> None:
    alice, bob = await connected("/ws/chat/lobby/"), await connected("/ws/chat/lobby/")
    outsider = await connected("/ws/chat/elsewhere/")
    await alice.send_json_to({"message": "hello room"})
    for member in (alice, bob):
        frame = await member.receive_json_from(timeout=5)
        assert frame["message"] == "hello room"
        assert frame["room"] == "lobby"
        assert frame["sent_by_worker"] == frame["delivered_by_worker"]  # one process here
    assert await outsider.receive_nothing(timeout=0.3)
    for ws in (alice, bob, outsider):
        await ws.disconnect()


async def test_room_frame_that_is_not_json_gets_an_error_and_the_socket_stays_open() -> None:
    ws = await connected("/ws/chat/lobby/")
    await ws.send_to(text_data="plain text is not a frame here")
    assert (await ws.receive_json_from(timeout=5))["error"] == "invalid_json"
    await ws.send_json_to({"message": "after the error"})
    assert (await ws.receive_json_from(timeout=5))["message"] == "after the error"
    await ws.disconnect()


async def members_in_redis(channel_layer: Any, group: str) -> int:
    async with channel_layer.connection(channel_layer.consistent_hash(group)) as redis:
        return int(await redis.zcard(channel_layer._group_key(group)))


async def test_a_process_is_one_member_of_a_group_however_many_of_its_sockets_join(channel_layer: Any) -> None:
    """core.groups: a room message is one Redis message per process, not per socket."""
    sockets = [await connected("/ws/chat/lobby/") for _ in range(5)]
    assert await members_in_redis(channel_layer, "chat.lobby") == 1
    await sockets[0].send_json_to({"message": "to all five"})
    for ws in sockets:
        assert (await ws.receive_json_from(timeout=5))["message"] == "to all five"
    for ws in sockets[1:]:
        await ws.disconnect()
    assert await members_in_redis(channel_layer, "chat.lobby") == 1, "a member is still here"
    await sockets[0].send_json_to({"message": "only the first now"})
    assert (await sockets[0].receive_json_from(timeout=5))["message"] == "only the first now"
    await sockets[0].disconnect()
    assert await members_in_redis(channel_layer, "chat.lobby") == 0, "the last one out left the group"


async def test_a_room_emptied_while_others_join_keeps_its_new_members(channel_layer: Any) -> None:
    """A leave's group_discard and a join's group_add of the same group never cross: the
    room empties (the process leaves the group) while new sockets arrive (it joins again),
    and the newcomers must receive."""
    members = [await connected("/ws/chat/churn/") for _ in range(3)]
    for wave in range(8):
        leaving, (members) = members, []
        arrivals = [connected("/ws/chat/churn/") for _ in range(3)]
        *_, members = await asyncio.gather(*(ws.disconnect() for ws in leaving), asyncio.gather(*arrivals))
        await members[0].send_json_to({"message": f"wave {wave}"})
        for ws in members:
            assert (await ws.receive_json_from(timeout=5))["message"] == f"wave {wave}"
    assert await members_in_redis(channel_layer, "chat.churn") == 1
    for ws in members:
        await ws.disconnect()


async def test_invalid_room_name_is_not_routed_to_a_room() -> None:
    ws = await connected("/ws/chat/not%20valid!/")
    assert await ws.receive_output(timeout=5) == {"type": "websocket.close", "code": 4404}


async def test_channel_layer_reads_outlast_its_blocking_pop(channel_layer: object) -> None:
    # redis-py 8's default 5 s socket timeout equals channels_redis' 5 s BZPOPMIN: the read
    # would race the reply and kill idle consumers (django/channels_redis#422).
    pool = channel_layer.create_pool(0)  # type: ignore[attr-defined]
    assert pool.connection_kwargs["socket_timeout"] > channel_layer.brpop_timeout  # type: ignore[attr-defined]
    await pool.aclose()


async def test_idle_room_socket_still_gets_messages_after_several_blocking_pops() -> None:
    listener, speaker = await connected("/ws/chat/quiet/"), await connected("/ws/chat/quiet/")
    # Idle for longer than two BZPOPMIN rounds (5 s each): the consumer must survive them.
    assert await listener.receive_nothing(timeout=11, interval=0.5)
    await speaker.send_json_to({"message": "after the silence"})
    assert (await listener.receive_json_from(timeout=5))["message"] == "after the silence"
    for ws in (listener, speaker):
        await ws.disconnect()


# --- a socket outlives the channel layer's group expiry ---------------------------------------


@pytest.fixture
def short_group_expiry(settings: Any) -> None:
    """channels_redis forgets a group member after `group_expiry` (a day by default):
    2 seconds here, so a test can outlive it."""
    layers = {"default": {**settings.CHANNEL_LAYERS["default"]}}
    layers["default"]["CONFIG"] = {**layers["default"]["CONFIG"], "group_expiry": 2}
    settings.CHANNEL_LAYERS = layers


@pytest.mark.usefixtures("short_group_expiry")
async def test_a_room_socket_still_receives_after_the_group_expiry() -> None:
    alice, bob = await connected("/ws/chat/long-lived/"), await connected("/ws/chat/long-lived/")
    await asyncio.sleep(4)  # twice the expiry: without renewal both would have left the group
    await alice.send_to(text_data=json.dumps({"message": "still there?"}))
    for ws in (alice, bob):
        assert (await ws.receive_json_from(timeout=5))["message"] == "still there?"
    for ws in (alice, bob):
        await ws.disconnect()


@pytest.fixture
def channel_layer_down(channel_layer: Any, settings: Any) -> None:
    """The channel layer pointed at a Redis that is not there (the discard port), after
    the real one's fixture (which empties it) is set up."""
    layers = {"default": {**settings.CHANNEL_LAYERS["default"]}}
    host = {**layers["default"]["CONFIG"]["hosts"][0], "address": "redis://127.0.0.1:9/0"}
    layers["default"]["CONFIG"] = {**layers["default"]["CONFIG"], "hosts": [host]}
    settings.CHANNEL_LAYERS = layers


@pytest.mark.usefixtures("channel_layer_down")
async def test_without_redis_a_room_socket_closes_with_1013_and_the_echo_answers() -> None:
    """Try Again Later, a code clients reconnect on, where the handshake was a 500."""
    ws = communicator("/ws/chat/lobby/")
    accepted, _ = await ws.connect(timeout=10)
    assert accepted
    assert await ws.receive_output(timeout=10) == {"type": "websocket.close", "code": 1013}
    await ws.disconnect()
    echo = await connected("/ws/chat/")  # it uses no channel layer
    await echo.send_to(text_data="Hi")
    assert await echo.receive_from(timeout=5) == '{"message": "Echo: Hi"}'
    await echo.disconnect()


async def test_a_socket_whose_client_is_gone_ends_and_its_process_leaves_the_group(channel_layer: Any) -> None:
    """An ASGI server raises OSError when a message goes to a client already gone (the
    ASGI spec). A room event meeting such a socket ends its consumer quietly, and the hub
    forgets its inbox: the process's membership goes with its last socket."""
    incoming: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    incoming.put_nowait({"type": "websocket.connect"})
    accepted = asyncio.Event()

    async def send(message: MutableMapping[str, Any]) -> None:
        if message["type"] != "websocket.accept":
            raise OSError("the client is gone")
        accepted.set()

    scope = {"type": "websocket", "path": "/ws/chat/gone/", "raw_path": b"/ws/chat/gone/", "query_string": b""}
    consumer = asyncio.create_task(application({**scope, "headers": [], "subprotocols": []}, incoming.get, send))
    await asyncio.wait_for(accepted.wait(), 5)
    assert await members_in_redis(channel_layer, "chat.gone") == 1
    await group_send("chat.gone", {"type": "relay.message", "message": "hello?", "room": "gone", "sent_by_worker": "t"})
    await asyncio.wait_for(consumer, 5)  # ended, without an exception
    assert await members_in_redis(channel_layer, "chat.gone") == 0
