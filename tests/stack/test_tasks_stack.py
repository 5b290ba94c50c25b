"""Background tasks in the compose stack: an export asked for through nginx is built by the
worker service, announced on the requester's socket and downloaded; a Postgres outage
pauses the worker, which then builds every export queued, with no restart; a deploy
replaces the worker, whose running task finishes, and loses no queued one."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import hashlib
import json
import socket
import subprocess
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.typing import Subprotocol

from tests.sources import ROOT
from tests.stack.clients import SUBPROTOCOL
from tests.stack.compose import Stack, create_room, create_user, log_in, readiness

pytestmark = pytest.mark.stack


def post_messages(stack: Stack, token: str, slug: str, count: int) -> list[dict[str, Any]]:
    posted = []
    with httpx.Client(base_url=stack.http, headers={"Authorization": f"Token {token}"}) as http:
        for n in range(count):
            response = http.post(f"/api/rooms/{slug}/messages/", json={"body": f"message {n} ✓"})
            assert response.status_code == 201, response.text
            posted.append(response.json())
            time.sleep(0.06)  # under nginx's per-address API rate
    return posted


def pause(stack: Stack, service: str) -> None:
    """`docker compose pause`, tried up to three times: runc's cgroup freeze now and then
    gives up ("unable to freeze", moby/moby#48205; once in a CI run here)."""
    for attempt in range(3):
        result = stack.compose("pause", service, check=attempt == 2)
        if result.returncode == 0:
            return
        assert "unable to freeze" in result.stderr, result.stderr
        time.sleep(0.5)


def wait_for_status(stack: Stack, token: str, url: str, within: float) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while True:
        response = httpx.get(f"{stack.http}{url}", headers={"Authorization": f"Token {token}"})
        if response.status_code == 200 and response.json()["status"] in ("succeeded", "failed"):
            return dict(response.json())
        assert time.monotonic() < deadline, f"not finished after {within} s: {response.text}"
        time.sleep(0.5)


def downloaded_rows(stack: Stack, token: str, status: dict[str, Any]) -> list[dict[str, Any]]:
    download = httpx.get(f"{stack.http}{status['download_url']}", headers={"Authorization": f"Token {token}"})
    assert download.status_code == 200
    assert download.headers["content-type"] == "application/gzip"
    header, *rows = [json.loads(line) for line in gzip.decompress(download.content).splitlines()]
    assert header["messages"] == len(rows)
    return rows


@pytest.mark.asyncio
async def test_an_export_asked_for_through_nginx_is_announced_on_the_socket_and_downloads(
    stack: Stack, token: str
) -> None:
    slug = await asyncio.to_thread(create_room, stack, token)
    posted = await asyncio.to_thread(post_messages, stack, token, slug, 25)
    url = f"{stack.ws}/ws/rooms/{slug}/"
    async with connect(url, subprotocols=[SUBPROTOCOL, Subprotocol(f"auth.{token}")]) as ws:
        async with httpx.AsyncClient(base_url=stack.http, headers={"Authorization": f"Token {token}"}) as http:
            response = await http.post(f"/api/rooms/{slug}/exports/")
        assert response.status_code == 202, response.text
        frame = json.loads(await asyncio.wait_for(ws.recv(), 60))
    export = frame["export"]
    assert (export["id"], export["status"], export["message_count"]) == (response.json()["id"], "succeeded", 25)
    rows = await asyncio.to_thread(downloaded_rows, stack, token, export)
    assert rows == posted  # each line is the message as the API returned it


def test_a_postgres_outage_pauses_the_worker_and_loses_no_queued_export(stack: Stack, token: str) -> None:
    slugs = [create_room(stack, token) for _ in range(3)]  # one export each (one room's would be reused)
    for slug in slugs:
        post_messages(stack, token, slug, 2)
    (worker,) = stack.compose("ps", "--quiet", "worker").stdout.split()
    began = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    # Frozen, the worker cannot take the exports before Postgres goes away.
    pause(stack, "worker")
    try:
        headers = {"Authorization": f"Token {token}"}
        exports = [httpx.post(f"{stack.http}/api/rooms/{slug}/exports/", headers=headers) for slug in slugs]
        assert [response.status_code for response in exports] == [202] * 3
        stack.compose("stop", "postgres")
    finally:
        stack.compose("unpause", "worker")
    try:
        time.sleep(8)  # the worker meets the outage
    finally:
        stack.compose("start", "postgres")
    statuses = [wait_for_status(stack, token, response.json()["url"], within=90) for response in exports]
    assert [status["status"] for status in statuses] == ["succeeded"] * 3
    assert stack.compose("ps", "--quiet", "worker").stdout.split() == [worker]  # the same container
    restarts = json.loads(stack.compose("ps", "--format", "json", "worker").stdout.splitlines()[0])
    assert "Up" in str(restarts.get("Status", "")), restarts
    paused = [line for line in stack.log_lines("worker", since=began) if "database unavailable" in line]
    assert paused, "the worker logged no pause"
    # The app's replicas came back as well.
    wait_for_ready = time.monotonic() + 60
    while readiness(stack)[0] != 200:
        assert time.monotonic() < wait_for_ready
        time.sleep(0.5)


def psql(stack: Stack) -> list[str]:
    return [
        "docker", "compose", *stack.flags(), "exec", "-T", "postgres",
        "psql", "--username", stack.env_value("POSTGRES_USER"), "--dbname", stack.env_value("POSTGRES_DB"),
        "--no-align", "--tuples-only", "--quiet", "--set", "ON_ERROR_STOP=1",
    ]  # fmt: skip


def runs_of(stack: Stack, export_id: str) -> int:
    """How many workers ran the export's task (django-tasks-db records each one)."""
    query = (
        "SELECT jsonb_array_length(t.worker_ids) FROM django_tasks_database_dbtaskresult t"
        " JOIN chat_roomexport e ON e.task_id = t.id::text WHERE e.id = :'export'"
    )
    command = [*psql(stack), "--set", f"export={export_id}"]
    result = subprocess.run(command, input=query, cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    return int(result.stdout.strip())


def test_a_deploy_rolls_the_worker_its_running_task_finishes_and_no_queued_task_is_lost(
    stack: Stack, token: str
) -> None:
    """scripts/deploy while the worker runs an export (held mid-build by a lock on the
    messages table, released once the deploy is stopping that worker) and another waits.
    Both are asked for while the worker is paused (asking reads the messages table too)."""
    slugs = [create_room(stack, token) for _ in range(2)]
    posted = {slug: post_messages(stack, token, slug, 3) for slug in slugs}
    old_workers = set(stack.compose("ps", "--quiet", "worker").stdout.split())
    headers = {"Authorization": f"Token {token}"}
    lock = subprocess.Popen(
        psql(stack), cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    assert lock.stdin is not None
    assert lock.stdout is not None
    deploy: subprocess.Popen[str] | None = None
    output: list[str] = []
    try:
        pause(stack, "worker")
        try:
            running, queued = (
                httpx.post(f"{stack.http}/api/rooms/{slug}/exports/", headers=headers).json() for slug in slugs
            )
            lock.stdin.write("BEGIN; LOCK TABLE chat_message IN ACCESS EXCLUSIVE MODE; SELECT 'locked';\n")
            lock.stdin.flush()
            assert lock.stdout.readline().strip() == "locked"
        finally:
            stack.compose("unpause", "worker")
        status = {"status": "queued"}
        deadline = time.monotonic() + 30
        while status["status"] != "running":
            assert time.monotonic() < deadline, f"the worker did not start the export: {status}"
            time.sleep(0.2)
            status = httpx.get(f"{stack.http}{running['url']}", headers=headers).json()
        deploy = subprocess.Popen(
            ["scripts/deploy"],
            cwd=ROOT,
            env={**stack.env(), "COMPOSE": " ".join(stack.flags())},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert deploy.stdout is not None
        for line in deploy.stdout:
            output.append(line)
            if line.startswith("deploy: stopping old worker"):
                break
        else:
            pytest.fail(f"the deploy stopped no worker: {''.join(output)}")
        time.sleep(3)  # the old worker has its SIGTERM, mid-task
        still = httpx.get(f"{stack.http}{running['url']}", headers=headers).json()
        assert still["status"] == "running", still
    finally:
        lock.communicate("COMMIT;\n", timeout=30)
        if deploy is not None:
            rest, _ = deploy.communicate(timeout=600)
            output.append(rest)
    assert deploy.returncode == 0, "".join(output)
    new_workers = set(stack.compose("ps", "--quiet", "worker").stdout.split())
    assert new_workers
    assert not new_workers & old_workers, (old_workers, new_workers)
    app = stack.compose("ps", "--quiet", "app").stdout.split()[:1]
    images = subprocess.run(
        ["docker", "inspect", "--format", "{{.Image}}", *app, *new_workers], capture_output=True, text=True, check=True
    )
    assert len(set(images.stdout.split())) == 1, "the new worker runs another image than the app"
    for export in (running, queued):
        status = wait_for_status(stack, token, export["url"], within=90)
        assert status["status"] == "succeeded", status
        assert downloaded_rows(stack, token, status) == posted[export["room"]]
    assert runs_of(stack, running["id"]) == 1  # finished by the worker that was stopping
    assert runs_of(stack, queued["id"]) == 1
    print(f"deploy with a running export: {''.join(output).count('deploy:')} steps, both exports built once")


# --- H1 of the third probe (docs/reliability.md): large exports, many downloads -----------
LARGE_EXPORT_ROWS = 8000  # of 4,000 random hex characters: about 16.5 MB of gzip


def memory_mib(stack: Stack, services: tuple[str, ...]) -> dict[str, float]:
    """Each service's memory (all its containers), as `docker stats` reports it."""
    names = {str(c["Name"]): str(c["Service"]) for c in stack.containers() if c["Service"] in services}
    stats = subprocess.run(
        ["docker", "stats", "--no-stream", "--format", "{{.Name}} {{.MemUsage}}", *names],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    units = {"KiB": 1 / 1024, "MiB": 1.0, "GiB": 1024.0, "B": 1 / 2**20}
    total = dict.fromkeys(services, 0.0)
    for line in stats.splitlines():
        name, used = line.split()[0], line.split()[1]
        unit = next(unit for unit in units if used.endswith(unit))
        total[names[name]] += float(used.removesuffix(unit)) * units[unit]
    return total


def started(stack: Stack, services: tuple[str, ...]) -> dict[str, str]:
    """When each container of the services last started: a restart changes it."""
    ids = [line for service in services for line in stack.compose("ps", "--quiet", service).stdout.split()]
    out = subprocess.run(
        ["docker", "inspect", "--format", "{{.Name}} {{.State.StartedAt}} {{.RestartCount}}", *ids],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return dict(line.split(" ", 1) for line in out.splitlines())


def large_export(stack: Stack, token: str) -> dict[str, Any]:
    """A finished export of LARGE_EXPORT_ROWS messages that gzip cannot shrink much."""
    slug = create_room(stack, token)
    insert = (
        "INSERT INTO chat_message (room_id, author_id, body, created_at)"
        " SELECT r.id, r.created_by_id, (SELECT string_agg(md5(random()::text || n || g), '')"
        " FROM generate_series(1, 125) g), now()"
        " FROM chat_room r, generate_series(1, :rows) n WHERE r.slug = :'slug'"
    )
    command = [*psql(stack), "--set", f"slug={slug}", "--set", f"rows={LARGE_EXPORT_ROWS}"]
    subprocess.run(command, input=insert, text=True, check=True, cwd=ROOT)
    headers = {"Authorization": f"Token {token}"}
    status = httpx.post(f"{stack.http}/api/rooms/{slug}/exports/", headers=headers).json()
    status = wait_for_status(stack, token, status["url"], within=120)
    assert status["status"] == "succeeded", status
    return status


def stalled_download(stack: Stack, token: str, path: str) -> socket.socket:
    """A download whose client reads its answer's first bytes, then nothing. Its receive
    buffer is made small: loopback's grows to 32 MB here, which would take the whole file."""
    client = socket.socket()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    client.settimeout(30)
    client.connect(("127.0.0.1", stack.port))
    client.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Token {token}\r\n\r\n".encode())
    status_line = client.recv(16384).split(b"\r\n", 1)[0]
    assert status_line == b"HTTP/1.1 200 OK", status_line
    return client


@pytest.mark.asyncio
async def test_concurrent_downloads_of_the_largest_export_leave_every_service_up_and_memory_flat(
    stack: Stack, token: str
) -> None:
    """The probe's attack: many concurrent downloads of a large export, and clients that
    stop reading. Every download is whole and correct; nothing restarts; memory stays flat;
    past NGINX_DOWNLOADS_PER_ADDRESS at once, a 429."""
    status = await asyncio.to_thread(large_export, stack, token)
    headers = {"Authorization": f"Token {token}"}
    cap = int(stack.env_value("EXPORT_MAX_BYTES"))
    assert cap / 2 < status["size"] <= cap, (status["size"], cap)
    services = ("nginx", "files", "app", "postgres")
    before_start, before_memory = started(stack, services), memory_mib(stack, services)
    allowed = int(stack.env_value("NGINX_DOWNLOADS_PER_ADDRESS"))
    stalled_count, rounds = 3, 3
    url = f"{stack.http}{status['download_url']}"
    peak = dict(before_memory)
    async with httpx.AsyncClient(headers=headers, timeout=60) as http:
        with contextlib.ExitStack() as held:
            for _ in range(stalled_count):
                held.callback((await asyncio.to_thread(stalled_download, stack, token, status["download_url"])).close)

            async def download() -> tuple[int, bytes]:
                response = await http.get(url)
                return response.status_code, response.content

            for _ in range(rounds):
                results = await asyncio.gather(*(download() for _ in range(allowed - stalled_count)))
                assert {code for code, _ in results} == {200}
                assert {len(body) for _, body in results} == {status["size"]}
                assert len({hashlib.sha256(body).digest() for _, body in results}) == 1
                now = await asyncio.to_thread(memory_mib, stack, services)
                peak = {service: max(peak[service], now[service]) for service in services}
        # The allowance, filled by stalled clients opened just now (nginx closes one that has
        # not read for send_timeout, 30 s): one more is refused.
        with contextlib.ExitStack() as held:
            for _ in range(allowed):
                held.callback((await asyncio.to_thread(stalled_download, stack, token, status["download_url"])).close)
            refused = await http.get(url)
            assert refused.status_code == 429, refused.status_code
    header, *rows = [json.loads(line) for line in gzip.decompress(results[0][1]).splitlines()]
    assert header["messages"] == len(rows) == LARGE_EXPORT_ROWS
    assert started(stack, services) == before_start, "a container restarted"
    growth = {service: round(peak[service] - before_memory[service], 1) for service in services}
    print(f"downloads of a {status['size'] / 2**20:.1f} MiB export: memory growth (MiB) {growth}")
    # Each download once cost the app and Postgres the whole file, several times over.
    assert growth["app"] < 48, growth
    assert growth["postgres"] < 48, growth
    assert growth["nginx"] < 32, growth


def test_concurrent_export_requests_cannot_pass_the_cap_together(stack: Stack) -> None:
    """The third probe's M1: 20 concurrent requests (20 rooms) had 5 accepted against a cap
    of 3 unfinished per user. Through nginx, with the worker paused so none finishes."""
    token = log_in(stack, create_user(stack))  # a user of its own: the cap and the rate are per user
    slugs = [create_room(stack, token) for _ in range(20)]
    headers = {"Authorization": f"Token {token}"}

    async def ask_all() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=stack.http, headers=headers, timeout=30) as http:
            return list(await asyncio.gather(*(http.post(f"/api/rooms/{slug}/exports/") for slug in slugs)))

    pause(stack, "worker")
    try:
        responses = asyncio.run(ask_all())
    finally:
        stack.compose("unpause", "worker")
    codes = sorted(response.status_code for response in responses)
    assert codes == [202] * 3 + [429] * 17, codes
    for response in responses:
        if response.status_code == 202:
            assert wait_for_status(stack, token, response.json()["url"], within=90)["status"] == "succeeded"
