"""The project's gunicorn.conf.py outside the compose stack: Gunicorn on the host reading
it, as the image does, runs its UvicornWorker subclass with its knobs (the other live
tests run the design documents' bare command, which does not read it)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as connect_sync

from tests.clients import HELLO_BODY, free_port, wait_for_http
from tests.live.servers import APP_DIR, LiveServer, configured_command

pytestmark = pytest.mark.live

MAX_FRAME = 2048


@pytest.mark.asyncio
async def test_the_configured_worker_serves_and_applies_its_limits(start_gunicorn: Callable[..., LiveServer]) -> None:
    server = start_gunicorn(2, configured=True, WS_MAX_MESSAGE_BYTES=str(MAX_FRAME))
    assert len(server.worker_pids()) == 2  # GUNICORN_WORKERS
    async with httpx.AsyncClient() as client:
        assert (await client.get(f"{server.http}/api/hello/")).content == HELLO_BODY

    async with connect(f"{server.ws}/ws/chat/") as ws:
        # The client offers permessage-deflate, as browsers do; the server declines it
        # (its zlib state per socket: docs/design.md).
        assert ws.request is not None
        assert ws.response is not None
        assert "permessage-deflate" in ws.request.headers["Sec-WebSocket-Extensions"]
        assert "Sec-WebSocket-Extensions" not in ws.response.headers
        await ws.send("Hi")
        assert await asyncio.wait_for(ws.recv(), 5) == '{"message": "Echo: Hi"}'
        # The subclass passes ws_max_size to uvicorn (the plain worker allows 16 MiB):
        # one byte over the limit closes the socket with 1009, message too big.
        await ws.send("x" * (MAX_FRAME + 1))
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1009


def test_after_sigterm_the_server_serves_for_the_drain_seconds_then_stops(
    start_gunicorn: Callable[..., LiveServer],
) -> None:
    server = start_gunicorn(1, configured=True, GUNICORN_DRAIN_SECONDS="3")
    server.process.send_signal(signal.SIGTERM)
    sent = time.monotonic()
    time.sleep(2)  # inside the drain: still serving, listening socket open
    assert httpx.get(f"{server.http}/api/hello/", timeout=5).content == HELLO_BODY
    assert server.process.wait(timeout=40) == 0
    assert time.monotonic() - sent >= 3


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


@pytest.mark.asyncio
async def test_every_closed_socket_ends_its_consumer_with_one_log_line(
    start_gunicorn: Callable[..., LiveServer], tmp_path: Path
) -> None:
    """The app's access line per socket, written when its consumer ends, and no INFO
    chatter of uvicorn's for it. Sockets in quick succession: on Python 3.11 a consumer
    could miss its cancellation and never end (docs/design.md, Images)."""
    log = tmp_path / "gunicorn.log"
    server = start_gunicorn(1, configured=True, log=log)
    sockets = 30
    for _ in range(sockets):
        async with connect(f"{server.ws}/ws/chat/") as ws:
            await ws.send("Hi")
            await asyncio.wait_for(ws.recv(), 5)
    for _ in range(100):
        lines = log.read_text().splitlines()
        access = [line for line in lines if '"path": "/ws/chat/"' in line and "mainkode_example.access" in line]
        if len(access) >= sockets:
            break
        await asyncio.sleep(0.1)
    assert len(access) == sockets, f"{sockets - len(access)} consumers still running after their socket closed"
    chatter = [
        line for line in lines if "connection open" in line or "connection closed" in line or "[accepted]" in line
    ]
    assert chatter == []


@pytest.mark.asyncio
async def test_sockets_whose_clients_stop_reading_log_once_each_and_close_with_4408(
    start_gunicorn: Callable[..., LiveServer], tmp_path: Path
) -> None:
    """An outside probe's log flood: 100 sockets that never read in a room plus one sender
    wrote a WARNING line per dropped event (334,853 in 20 s). Now each such socket logs one
    line, gets no more events, and is closed with 4408 once its client reads again."""
    log = tmp_path / "gunicorn.log"
    server = start_gunicorn(1, configured=True, log=log, CHANNEL_LAYER_CAPACITY="20")
    room = f"{server.ws}/ws/chat/flood-{uuid.uuid4().hex[:8]}/"
    stalled = []
    for _ in range(5):
        # A small receive buffer and a small frame queue: the client stops reading soon.
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", server.port))
        stalled.append(await connect(room, sock=sock, max_queue=1))
    sent = 1000
    in_flight = asyncio.Semaphore(10)  # the sender's own inbox stays far from full
    async with connect(room) as sender:
        received = 0

        async def drain() -> None:  # the sender is in the room too, and reads
            nonlocal received
            while received < sent:
                await sender.recv()
                received += 1
                in_flight.release()

        reading = asyncio.create_task(drain())
        for n in range(sent):
            await in_flight.acquire()
            await sender.send(json.dumps({"message": f"{n} " + "x" * 3900}))
        await asyncio.wait_for(reading, 60)
    codes = []
    for ws in stalled:
        with contextlib.suppress(ConnectionClosed):
            while True:
                await asyncio.wait_for(ws.recv(), 30)
        codes.append(ws.close_code)
    assert codes == [4408] * len(stalled)
    lines = [line for line in log.read_text().splitlines() if "inbox is full" in line]
    assert len(lines) == len(stalled), f"{len(lines)} lines for {len(stalled)} sockets"


def test_with_reload_an_edit_replaces_the_workers_and_the_server_keeps_serving(tmp_path: Path) -> None:
    """docker-compose.dev.yml's server: gunicorn.conf.py with `--reload`. uvicorn-worker
    ignores Gunicorn's reloader on its own (the server layer's worker_int hook acts on it):
    an edit ends each worker as SIGTERM does (an open socket closes with 1012) and the
    arbiter starts new ones, which serve."""
    app = tmp_path / "app"
    shutil.copytree(APP_DIR, app, ignore=shutil.ignore_patterns("__pycache__"))
    port = free_port()
    log_path = tmp_path / "gunicorn.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [*configured_command(port), "--reload"],
            cwd=app,
            env={**os.environ, "GUNICORN_WORKERS": "1"},
            stdout=log,
            stderr=log,
        )
    server = LiveServer(process, port)
    try:
        wait_for_http(f"{server.http}/healthz", timeout=60)
        (first,) = server.worker_pids()
        # Django imports the views at the first request; the reloader watches what is imported.
        assert httpx.get(f"{server.http}/api/hello/", timeout=5).content == HELLO_BODY
        time.sleep(1.5)  # the reloader has read every module's modification time once
        with connect_sync(f"{server.ws}/ws/chat/") as ws:
            views = app / "demo" / "views.py"
            views.write_text(views.read_text() + "\n# edited\n")
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=30)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1012
        deadline = time.monotonic() + 30
        while not (pids := server.worker_pids()) or first in pids:
            assert time.monotonic() < deadline, log_path.read_text()[-3000:]
            time.sleep(0.1)
        wait_for_http(f"{server.http}/healthz", timeout=30)
        assert httpx.get(f"{server.http}/api/hello/", timeout=5).content == HELLO_BODY
        assert process.poll() is None, "the arbiter itself exited"
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=40) == 0
