"""The application end to end through nginx: rooms and messages over REST and sockets,
the page and its static files, and two real browser pages talking to each other."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from tests.clients import recv_json
from tests.stack.clients import SUBPROTOCOL
from tests.stack.compose import Stack, create_room

pytestmark = pytest.mark.stack
TESTS = Path(__file__).resolve().parents[1]


@pytest.mark.asyncio
async def test_rest_and_socket_posts_reach_every_socket_through_nginx(stack: Stack, token: str) -> None:
    slug = create_room(stack, token)
    url = f"{stack.ws}/ws/rooms/{slug}/"
    readers = [await connect(url, subprotocols=[SUBPROTOCOL]) for _ in range(12)]
    writer = await connect(url, subprotocols=[SUBPROTOCOL, Subprotocol(f"auth.{token}")])
    try:
        assert writer.subprotocol == SUBPROTOCOL
        async with httpx.AsyncClient(base_url=stack.http, headers={"Authorization": f"Token {token}"}) as http:
            response = await http.post(f"/api/rooms/{slug}/messages/", json={"body": "via REST"})
        assert response.status_code == 201
        await writer.send(json.dumps({"body": "via socket"}))
        for ws in [*readers, writer]:
            first, second = await recv_json(ws), await recv_json(ws)
            assert first == response.json()
            assert second["body"] == "via socket"
    finally:
        for ws in [*readers, writer]:
            await ws.close()


@pytest.mark.asyncio
async def test_token_offered_in_the_subprotocol_stays_out_of_nginx_logs(stack: Stack, token: str) -> None:
    slug = create_room(stack, token)
    async with connect(f"{stack.ws}/ws/rooms/{slug}/", subprotocols=[SUBPROTOCOL, Subprotocol(f"auth.{token}")]):
        pass
    await asyncio.sleep(0.5)
    logs = stack.compose("logs", "--no-color", "nginx").stdout
    assert f"/ws/rooms/{slug}/" in logs
    assert token not in logs


@pytest.mark.asyncio
async def test_unknown_room_socket_closes_with_4404_through_nginx(stack: Stack) -> None:
    async with connect(f"{stack.ws}/ws/rooms/no-such-room/") as ws:
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4404


def test_page_and_hashed_static_files_come_from_nginx(stack: Stack) -> None:
    page = httpx.get(f"{stack.http}/")
    assert page.status_code == 200
    script = re.search(r'src="(/static/chat/chat\.[0-9a-f]{12}\.js)"', page.text)
    assert script, "the page must load the hashed script name"
    asset = httpx.get(f"{stack.http}{script.group(1)}")
    assert asset.status_code == 200
    assert "immutable" in asset.headers["cache-control"]
    assert "reconnect" in asset.text


def test_api_docs_and_schema_through_nginx(stack: Stack) -> None:
    docs = httpx.get(f"{stack.http}/api/docs/")
    assert docs.status_code == 200
    swagger_js = re.search(r'src="(/static/drf_spectacular_sidecar/swagger-ui-dist/[^"]+\.js)"', docs.text)
    assert swagger_js
    assert httpx.get(f"{stack.http}{swagger_js.group(1)}").status_code == 200
    schema = httpx.get(f"{stack.http}/api/schema/", headers={"Accept": "application/vnd.oai.openapi+json"})
    assert "/api/rooms/{slug}/messages/" in schema.json()["paths"]


def test_two_browser_pages_chat_live_and_catch_up_after_a_drop(
    stack: Stack, user: tuple[str, str], token: str, tmp_path: Path
) -> None:
    slug = create_room(stack, token)
    result = subprocess.run(
        ["node", str(TESTS / "browser" / "two_pages.mjs"), stack.http, slug, user[0], user[1], str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "page-b.png").stat().st_size > 0
