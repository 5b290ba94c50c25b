"""The project's gunicorn.conf.py outside the compose stack: Gunicorn on the host reading
it, as the image does, runs its UvicornWorker subclass with its knobs (the other live
tests run the design documents' bare command, which does not read it)."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Callable

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.live.servers import APP_DIR, LiveServer, configured_command
from tests.support import HELLO_BODY

pytestmark = pytest.mark.live

MAX_FRAME = 2048


@pytest.mark.asyncio
async def test_the_configured_worker_serves_and_applies_its_limits(start_gunicorn: Callable[..., LiveServer]) -> None:
    server = start_gunicorn(2, configured=True, WS_MAX_MESSAGE_BYTES=str(MAX_FRAME))
    assert len(server.worker_pids()) == 2  # GUNICORN_WORKERS
    async with httpx.AsyncClient() as client:
        assert (await client.get(f"{server.http}/api/hello/")).content == HELLO_BODY

    async with connect(f"{server.ws}/ws/chat/") as ws:
        await ws.send("Hi")
        assert await asyncio.wait_for(ws.recv(), 5) == '{"message": "Echo: Hi"}'
        # The subclass passes ws_max_size to uvicorn (the plain worker allows 16 MiB):
        # one byte over the limit closes the socket with 1009, message too big.
        await ws.send("x" * (MAX_FRAME + 1))
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1009


def test_the_configuration_refuses_a_bad_variable_naming_it() -> None:
    result = subprocess.run(
        [*configured_command(0), "--check-config"],
        cwd=APP_DIR,
        env={**os.environ, "GUNICORN_KEEPALIVE": "soon"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "Environment variable GUNICORN_KEEPALIVE is invalid" in result.stdout + result.stderr
