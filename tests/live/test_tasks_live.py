"""Background tasks with real processes: Gunicorn with 2 UvicornWorker processes and the
worker service's own process (`manage.py run_worker`), on the test Postgres and Redis. An
export's event reaches a socket held by another process; the worker's channel-layer sends
reuse their Redis connections; a worker killed mid-task has its task run by another; with
--reload (development) the worker restarts on a code change."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import redis
from websockets.asyncio.client import connect
from websockets.typing import Subprotocol

from tests.clients import free_port
from tests.live.servers import APP_DIR, LiveServer, LiveUser

pytestmark = [pytest.mark.live]
SUBPROTOCOL = Subprotocol("mainkode.v1")
# Short, so a lost worker is noticed within seconds (the defaults: .env.example).
FAST_WORKER = {"WORKER_HEARTBEAT_INTERVAL": "0.5", "WORKER_LOST_AFTER": "3", "WORKER_POLL_INTERVAL": "0.1"}


def database() -> psycopg.Connection[Any]:
    return psycopg.connect(
        host=os.environ["POSTGRES_HOST"],
        port=os.environ.get("POSTGRES_PORT", "5432"),
        dbname=os.environ["POSTGRES_DB"],
        user=os.environ["POSTGRES_USER"],
        password=os.environ["POSTGRES_PASSWORD"],
        autocommit=True,
    )


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    workers: list[subprocess.Popen[bytes]] = []

    def start(*args: str, app_dir: Path = APP_DIR, **extra_env: str) -> subprocess.Popen[bytes]:
        name = f"worker-{len(workers)}"
        # METRICS_PORT 0 (not served) unless a test asks: two workers cannot share a port.
        env = {
            **os.environ,
            **FAST_WORKER,
            "WORKER_HEALTH_FILE": str(tmp_path / f"{name}.alive"),
            "METRICS_PORT": "0",
            **extra_env,
        }
        log = (tmp_path / f"{name}.log").open("wb")
        # A session of its own: a reloading worker's child goes with it (os.killpg below).
        process = subprocess.Popen(
            [sys.executable, "manage.py", "run_worker", *args],
            cwd=app_dir,
            env=env,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        workers.append(process)
        deadline = time.monotonic() + 30
        while not (tmp_path / f"{name}.alive").exists():
            assert process.poll() is None, (tmp_path / f"{name}.log").read_text()
            assert time.monotonic() < deadline, "the worker wrote no heartbeat within 30 s"
            time.sleep(0.1)
        return process

    yield start
    for process in workers:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
    for process in workers:
        assert process.wait(timeout=30) in (0, -signal.SIGKILL), "a worker did not stop cleanly on SIGTERM"


def create_room(server: LiveServer, token: str, messages: int) -> str:
    """A room with `messages` messages by the token's user (inserted in one statement)."""
    slug = f"export-{uuid.uuid4().hex[:10]}"
    response = httpx.post(
        f"{server.http}/api/rooms/", json={"slug": slug, "title": "Export"}, headers={"Authorization": f"Token {token}"}
    )
    assert response.status_code == 201, response.text
    with database() as connection:
        connection.execute(
            "INSERT INTO chat_message (room_id, author_id, body, created_at)"
            " SELECT room.id, room.created_by_id, 'message number ' || n || ' of the room', now()"
            " FROM chat_room room, generate_series(1, %s) n WHERE room.slug = %s",
            [messages, slug],
        )
    return slug


def request_export(server: LiveServer, token: str, slug: str) -> dict[str, Any]:
    response = httpx.post(f"{server.http}/api/rooms/{slug}/exports/", headers={"Authorization": f"Token {token}"})
    assert response.status_code == 202, response.text
    return dict(response.json())


def wait_for_status(server: LiveServer, token: str, url: str, wanted: set[str], within: float) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while True:
        status = httpx.get(f"{server.http}{url}", headers={"Authorization": f"Token {token}"}).json()
        if status["status"] in wanted:
            return dict(status)
        assert time.monotonic() < deadline, f"still {status['status']} after {within} s"
        time.sleep(0.05)


def check_contents(server: LiveServer, token: str, status: dict[str, Any], slug: str) -> None:
    download = httpx.get(f"{server.http}{status['download_url']}", headers={"Authorization": f"Token {token}"})
    assert download.status_code == 200
    header, *rows = [json.loads(line) for line in gzip.decompress(download.content).splitlines()]
    with database() as connection:
        stored = connection.execute(
            "SELECT m.id, m.body FROM chat_message m JOIN chat_room r ON r.id = m.room_id WHERE r.slug = %s"
            " ORDER BY m.id",
            [slug],
        ).fetchall()
    assert header["messages"] == status["message_count"] == len(stored)
    assert [(row["id"], row["body"]) for row in rows] == stored


@pytest.mark.asyncio
async def test_the_export_event_reaches_the_requesters_socket_held_by_another_process(
    start_gunicorn: Callable[..., LiveServer], live_users: tuple[LiveUser, LiveUser], start_worker: Any
) -> None:
    server = start_gunicorn(2, configured=True)
    worker = start_worker()
    alice, _ = live_users
    token = alice.token(server)
    slug = create_room(server, token, 500)
    async with connect(f"{server.ws}/ws/rooms/{slug}/", subprotocols=[SUBPROTOCOL, Subprotocol(f"auth.{token}")]) as ws:
        holder = server.worker_holding(ws.local_address[1])
        assert holder != worker.pid
        export = await asyncio.to_thread(request_export, server, token, slug)
        frame = json.loads(await asyncio.wait_for(ws.recv(), 30))
    assert frame["export"]["id"] == export["id"]
    assert frame["export"]["status"] == "succeeded"
    check_contents(server, token, frame["export"], slug)


def redis_connections_of(pid: int, redis_port: int) -> int:
    """Connections process `pid` holds to Redis, from the kernel's tables."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] == "01" and int(fields[2].rsplit(":", 1)[1], 16) == redis_port:
            inodes.add(fields[9])
    held = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        held += target.removeprefix("socket:[").removesuffix("]") in inodes
    return held


def test_the_workers_sends_reuse_their_redis_connections_across_jobs(
    start_gunicorn: Callable[..., LiveServer],
    live_users: tuple[LiveUser, LiveUser],
    start_worker: Any,
    tmp_path: Path,
) -> None:
    """Without one long-lived event loop for the sends, each job's async_to_sync(group_send)
    opened a new loop and a new Redis connection (channels_redis#125)."""
    server = start_gunicorn(1, configured=True)
    metrics_port = free_port()
    # As in the image: the values in files (prometheus-client's multiprocess mode).
    worker = start_worker(METRICS_PORT=str(metrics_port), PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "metrics"))
    alice, _ = live_users
    token = alice.token(server)
    # A room per job: a second request for an unchanged room reuses its export.
    slugs = [create_room(server, token, 20) for _ in range(30)]
    client = redis.Redis.from_url(os.environ["REDIS_URL"], password=os.environ.get("REDIS_PASSWORD") or None)
    redis_port = client.connection_pool.connection_kwargs["port"]
    received_before = client.info("stats")["total_connections_received"]
    jobs = 0
    for round_ in range(10):
        exports = [request_export(server, token, slug) for slug in slugs[3 * round_ : 3 * round_ + 3]]
        for export in exports:
            wait_for_status(server, token, export["url"], {"succeeded"}, within=30)
        jobs += len(exports)
    opened = client.info("stats")["total_connections_received"] - received_before
    held = redis_connections_of(worker.pid, redis_port)
    print(f"{jobs} jobs: {opened} Redis connections opened in all, {held} held by the worker")
    assert jobs == 30
    assert 1 <= held <= 2
    assert opened <= 3

    # The worker's metrics port counts the jobs it ran and reads the queue's state.
    served = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics").text
    samples = {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in served.splitlines() if line[:1] != "#"}
    assert samples['app_tasks_finished_total{status="successful",task="chat.tasks.export_room"}'] == 30
    assert samples['app_task_duration_seconds_count{task="chat.tasks.export_room"}'] == 30
    assert (samples["app_tasks_queued"], samples["app_tasks_running"]) == (0, 0)


def test_a_worker_killed_mid_task_has_its_task_run_again_by_another(
    start_gunicorn: Callable[..., LiveServer], live_users: tuple[LiveUser, LiveUser], start_worker: Any
) -> None:
    server = start_gunicorn(1, configured=True)
    alice, _ = live_users
    token = alice.token(server)
    # Large enough that the build takes seconds: it is killed in the middle.
    slug = create_room(server, token, 300_000)
    first = start_worker()
    export = request_export(server, token, slug)
    wait_for_status(server, token, export["url"], {"running"}, within=30)
    os.kill(first.pid, signal.SIGKILL)
    first.wait(timeout=10)
    killed_at = time.monotonic()
    start_worker()
    status = wait_for_status(server, token, export["url"], {"succeeded", "failed"}, within=120)
    took = time.monotonic() - killed_at
    assert status["status"] == "succeeded", status
    with database() as connection:
        row = connection.execute(
            "SELECT worker_ids FROM django_tasks_database_dbtaskresult t"
            " JOIN chat_roomexport e ON e.task_id = t.id::text WHERE e.id = %s",
            [export["id"]],
        ).fetchone()
    assert row is not None
    (worker_ids,) = row
    assert len(worker_ids) == 2, worker_ids  # run twice: on the killed worker, then on the new one
    check_contents(server, token, status, slug)
    print(f"killed mid-task; finished by the second worker {took:.1f} s later (WORKER_LOST_AFTER=3)")


def test_a_reloading_worker_restarts_when_the_code_changes(
    start_worker: Callable[..., subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    """`run_worker --reload`, as docker-compose.dev.yml runs it: an edit to a module the
    worker imported starts a new worker process, which takes up the heartbeat."""
    app = tmp_path / "app"
    shutil.copytree(APP_DIR, app, ignore=shutil.ignore_patterns("__pycache__"))
    worker = start_worker("--reload", app_dir=app)
    log = tmp_path / "worker-0.log"

    def started() -> list[str]:
        return re.findall(r"worker (\S+) started", log.read_text())

    deadline = time.monotonic() + 30
    while not started():
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.1)
    time.sleep(1.5)  # the reloader has read every module's modification time once
    tasks = app / "chat" / "tasks.py"
    tasks.write_text(tasks.read_text() + "\n# edited\n")
    deadline = time.monotonic() + 30
    while len(started()) < 2:
        assert time.monotonic() < deadline, f"no restart after the edit: {log.read_text()[-3000:]}"
        time.sleep(0.1)
    first, second = started()[:2]
    assert first != second
    assert worker.poll() is None, "the reloading process itself exited"
