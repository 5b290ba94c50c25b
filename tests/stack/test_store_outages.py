"""Postgres or Redis going away under the running app: requests fail fast with a clear
503 (never hang), /readyz names the missing store, nothing acknowledged is lost, and the
app recovers by itself when the store is back (no app restart). Figures are printed."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
import uuid
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.clients import recv_json
from tests.sources import ROOT
from tests.stack.compose import Stack, readiness

pytestmark = pytest.mark.stack


def bring_back(stack: Stack, service: str) -> None:
    stack.compose("up", "--detach", "--wait", "--no-deps", service)


def seconds_until(check: object, within: float) -> float:
    """Poll `check()` until it is true; how long that took (fails after `within`)."""
    started = time.monotonic()
    while not check():  # type: ignore[operator]
        assert time.monotonic() - started < within, f"not recovered within {within} s"
        time.sleep(0.25)
    return time.monotonic() - started


def healthcheck(stack: Stack) -> int:
    """The exit status of the app's compose healthcheck, run in its first replica."""
    command = ("exec", "-T", "app", "python", "-m", "core.probe", "--ready-then-alive")
    return stack.compose(*command, check=False).returncode


def test_postgres_outage_fails_fast_with_503_and_recovers_by_itself(stack: Stack, token: str) -> None:
    headers = {"Authorization": f"Token {token}"}
    slug = f"outage-{uuid.uuid4().hex[:8]}"
    created = httpx.post(f"{stack.http}/api/rooms/", json={"slug": slug, "title": "Outage"}, headers=headers)
    assert created.status_code == 201
    acknowledged = httpx.post(f"{stack.http}/api/rooms/{slug}/messages/", json={"body": "before"}, headers=headers)
    assert acknowledged.status_code == 201
    stack.compose("stop", "postgres")
    try:
        started = time.monotonic()
        response = httpx.get(f"{stack.http}/api/rooms/{slug}/messages/", timeout=60)
        failed_after = time.monotonic() - started
        assert response.status_code == 503
        assert response.json() == {"detail": "The database is unavailable; retry shortly."}
        assert response.headers["retry-after"] == "5"
        assert failed_after < 10, f"took {failed_after:.1f} s to fail"
        status, body = readiness(stack)
        assert status == 503
        assert str(body["checks"]["postgres"]).startswith("error:")  # type: ignore[index]
        assert body["checks"]["redis"] == "ok"  # type: ignore[index]
    finally:
        bring_back(stack, "postgres")

    def serving() -> bool:
        return httpx.get(f"{stack.http}/api/rooms/{slug}/messages/", timeout=30).status_code == 200

    recovered_in = seconds_until(serving, within=60)
    messages = httpx.get(f"{stack.http}/api/rooms/{slug}/messages/?after=0").json()["results"]
    assert [m["id"] for m in messages] == [acknowledged.json()["id"]]  # nothing acknowledged was lost
    print(f"postgres down: 503 after {failed_after:.1f} s; served again {recovered_in:.1f} s after it was back")


def test_redis_outage_closes_room_sockets_with_1013_and_recovers_by_the_first_try(
    stack: Stack, token: str, user: tuple[str, str]
) -> None:
    """Redis stops under open sockets: room sockets close with 1013 (Try Again Later,
    what the chat page reconnects on), the echo (no channel layer) answers on, a
    handshake is a 1013 rather than a 500, a login a 503; the first handshake and login
    once Redis is back succeed (pooled connections it dropped are replaced)."""
    headers = {"Authorization": f"Token {token}"}
    slug = f"redis-{uuid.uuid4().hex[:8]}"
    assert httpx.post(f"{stack.http}/api/rooms/", json={"slug": slug, "title": "R"}, headers=headers).status_code == 201
    login = {"username": user[0], "password": user[1]}

    async def through_the_outage() -> float:
        async with (
            connect(f"{stack.ws}/ws/chat/during-redis/") as room,
            connect(f"{stack.ws}/ws/rooms/{slug}/") as stored,
            connect(f"{stack.ws}/ws/chat/") as echo,
        ):
            await asyncio.to_thread(stack.compose, "stop", "redis")
            stopped = time.monotonic()
            for ws in (room, stored):
                with pytest.raises(ConnectionClosed) as closed:
                    await asyncio.wait_for(ws.recv(), 20)
                assert closed.value.rcvd is not None, "dropped without a close frame"
                assert closed.value.rcvd.code == 1013
            closed_after = time.monotonic() - stopped
            await echo.send("Hi")
            assert await recv_json(echo) == {"message": "Echo: Hi"}
        async with connect(f"{stack.ws}/ws/chat/during-redis/") as refused:
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(refused.recv(), 20)
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == 1013
        return closed_after

    try:
        closed_after = asyncio.run(through_the_outage())
        status, body = readiness(stack)
        assert status == 503
        assert str(body["checks"]["redis"]).startswith("error:")  # type: ignore[index]
        assert body["checks"]["postgres"] == "ok"  # type: ignore[index]
        # The healthcheck: a replica that was ready stays healthy (nothing restarts or
        # reroutes it); one never ready yet (its mark removed) is not healthy.
        assert healthcheck(stack) == 0
        forget = "import os, core.probe; os.remove(core.probe.READY_ONCE_FILE)"
        stack.compose("exec", "-T", "app", "python", "-c", forget)
        assert healthcheck(stack) == 1
        assert httpx.post(f"{stack.http}/api/auth/token/", json=login, timeout=30).status_code == 503
        # A message posted now is stored and acknowledged; only its live delivery is lost,
        # and clients fetch it with ?after= once their sockets are back.
        during = httpx.post(
            f"{stack.http}/api/rooms/{slug}/messages/", json={"body": "during"}, headers=headers, timeout=60
        )
        assert during.status_code == 201, during.text
    finally:
        bring_back(stack, "redis")

    async def first_broadcast() -> list[str]:
        async with (
            connect(f"{stack.ws}/ws/chat/after-redis/") as one,
            connect(f"{stack.ws}/ws/chat/after-redis/") as two,
        ):
            await one.send(json.dumps({"message": "are you there?"}))
            return [(await recv_json(ws))["message"] for ws in (one, two)]

    assert asyncio.run(first_broadcast()) == ["are you there?"] * 2
    assert httpx.post(f"{stack.http}/api/auth/token/", json=login, timeout=30).status_code == 200
    assert readiness(stack)[0] == 200
    assert healthcheck(stack) == 0
    stored = httpx.get(f"{stack.http}/api/rooms/{slug}/messages/?after=0").json()["results"]
    assert [m["body"] for m in stored] == ["during"]
    print(
        f"redis down: room sockets closed with 1013 {closed_after:.1f} s after the stop returned, the echo"
        " answered, a handshake got 1013, a login 503; back: the first handshake and login succeeded"
    )


def script(stack: Stack, name: str, *args: str) -> str:
    result = subprocess.run(
        [str(ROOT / "scripts" / name), *args],
        env={**stack.env(), "COMPOSE": " ".join(stack.flags())},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return str(result.stdout).strip()


def room_messages(stack: Stack, slug: str) -> list[dict[str, object]]:
    response = httpx.get(f"{stack.http}/api/rooms/{slug}/messages/?after=0&page_size=200")
    assert response.status_code == 200, response.text
    return list(response.json()["results"])


def test_data_survives_down_and_up_and_comes_back_from_a_backup(stack: Stack, token: str, tmp_path: Path) -> None:
    """(Stops and recreates the whole main stack: the last test that uses it.)"""
    headers = {"Authorization": f"Token {token}"}
    slug = f"durable-{uuid.uuid4().hex[:8]}"
    assert httpx.post(f"{stack.http}/api/rooms/", json={"slug": slug, "title": "D"}, headers=headers).status_code == 201
    for i in range(25):
        posted = httpx.post(f"{stack.http}/api/rooms/{slug}/messages/", json={"body": f"m{i}"}, headers=headers)
        assert posted.status_code == 201
    before = room_messages(stack, slug)
    assert len(before) == 25

    # down, then up with the volume kept: nothing lost.
    stack.compose("down", "--timeout", "20")
    stack.compose("up", "--detach", "--wait", "--scale", "app=2", timeout=600)
    assert room_messages(stack, slug) == before

    # A backup, then the volume destroyed, then a restore: every row is back.
    dump = Path(script(stack, "backup", str(tmp_path)))
    assert dump.parent == tmp_path
    assert dump.stat().st_size > 0
    stack.compose("down", "--volumes", "--timeout", "20")
    stack.compose("up", "--detach", "--wait", "--scale", "app=2", timeout=600)
    assert httpx.get(f"{stack.http}/api/rooms/{slug}/").status_code == 404  # really empty
    script(stack, "restore", str(dump))
    assert room_messages(stack, slug) == before
    # The users and their tokens came back too.
    again = httpx.post(f"{stack.http}/api/rooms/{slug}/messages/", json={"body": "after restore"}, headers=headers)
    assert again.status_code == 201
    print(f"down/up kept {len(before)} of {len(before)} messages; backup ({dump.stat().st_size} bytes) restored all")
