"""Operations on the running stack, under traffic: the rate limit, a graceful SIGTERM,
scaling the app up and down without restarting nginx, restarting nginx. (Runs after the
other tests of the main stack: it stops and scales its app containers, and restores two
replicas.)"""

from __future__ import annotations

import asyncio
import dataclasses
import http.client
import json
import socket
import subprocess
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.clients import wait_for_http
from tests.sources import NGINX_RESOLVE_SECONDS, ROOT
from tests.stack.clients import CatchingUpReader, Poster, Traffic, wait_until_everyone_has
from tests.stack.compose import Stack, create_room

pytestmark = pytest.mark.stack

# The name of nginx's upstream (nginx/templates/default.conf.template): what nginx logs as
# the address of a pass that found no replica to try.
NO_REPLICA = "app"


def scale_app(stack: Stack, replicas: int) -> None:
    # --no-deps: leave Postgres, Redis and the finished migration alone; --no-recreate:
    # keep the running replicas as they are.
    stack.compose("up", "--detach", "--wait", "--no-deps", "--no-recreate", "--scale", f"app={replicas}", "app")


def failed_records(stack: Stack, since: str) -> list[dict[str, object]]:
    """nginx's access records of answers other than 200, with the replicas each tried."""
    fields = ("time", "method", "uri", "status", "upstream_addr", "upstream_status", "upstream_response_time")
    return [{k: r.get(k) for k in fields} for r in stack.log_records("nginx", since) if r.get("status") != 200]


def upstreams_since(stack: Stack, since: str, uri: str) -> set[str]:
    return {str(r["upstream_addr"]) for r in stack.log_records("nginx", since=since) if r.get("uri") == uri}


@pytest.mark.asyncio
async def test_sigterm_lets_in_flight_requests_finish_and_closes_sockets_with_a_frame(stack: Stack) -> None:
    sockets = [await connect(f"{stack.ws}/ws/chat/shutdown/") for _ in range(6)]
    try:
        async with httpx.AsyncClient(base_url=stack.http, timeout=30) as http:
            slow = asyncio.create_task(http.get("/api/diagnostics/sleep/?seconds=5"))
            await asyncio.sleep(1.5)  # the slow request is in flight on one of the replicas
            await asyncio.to_thread(stack.compose, "kill", "--signal", "SIGTERM", "app")
            response = await slow
        assert response.status_code == 200
        assert response.json() == {"slept": 5.0}
        for ws in sockets:
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 30)
            # A close frame (1012 "service restart" from uvicorn), not a dropped connection.
            assert closed.value.rcvd is not None, "the socket was reset without a close frame"
            assert closed.value.rcvd.code in (1001, 1012)
    finally:
        for ws in sockets:
            await ws.close()
        # Let the signalled containers finish exiting (and mark them stopped, so their
        # restart policy does not race us), then bring two replicas back.
        await asyncio.to_thread(stack.compose, "stop", "--timeout", "40", "app")
        await asyncio.to_thread(scale_app, stack, 2)
        await asyncio.to_thread(wait_for_http, f"{stack.http}/api/hello/", 60)
        await asyncio.sleep(NGINX_RESOLVE_SECONDS)  # nginx routes to both again


def test_nginx_serves_again_once_every_replica_is_back(stack: Stack) -> None:
    """Every replica stopped (a restart of the app, an upgrade of the engine): nginx answers
    503 meanwhile, and once the replicas are healthy again serves from them after no more
    than its re-resolution period. (Docker's DNS answers "no such name" while no replica
    runs, and nginx holds no replica until it asks again.)"""
    stopped = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    stack.compose("stop", "app")
    with httpx.Client(base_url=stack.http, timeout=15) as http:
        down = http.get("/api/hello/")
        assert down.status_code == 503
        assert down.json() == {"detail": "The service is unavailable; retry shortly."}
        posted = http.post("/api/rooms/", json={"name": "lost?"})
        assert posted.status_code == 503
        assert posted.json() == down.json()
        # The GET got nginx's second pass (nginx/templates: @second_pass); the POST only if
        # its first reached no replica: nginx must not send it twice.
        passes = {r["method"]: str(r["upstream_addr"]).split(" : ") for r in stack.log_records("nginx", stopped)}
        assert len(passes["GET"]) == 2, passes
        assert len(passes["POST"]) == (2 if passes["POST"][0] == NO_REPLICA else 1), passes
        # Start them again only once nginx has asked and heard "no such name".
        waited = time.monotonic()
        while not any("could not be resolved" in line for line in stack.nginx_errors(stopped)):
            assert time.monotonic() - waited < 30, "nginx did not re-resolve the app within 30 s"
            time.sleep(0.5)
        scale_app(stack, 2)  # the same containers, started again; returns once healthy
        time.sleep(NGINX_RESOLVE_SECONDS)
        answers = [http.get("/api/hello/").status_code for _ in range(20)]
    assert answers == [200] * 20, f"{NGINX_RESOLVE_SECONDS} s after the replicas were healthy: {answers}"
    print(f"every replica stopped, then started: 20 of 20 GETs served {NGINX_RESOLVE_SECONDS} s after healthy")


def test_scaling_up_and_down_under_traffic_without_restarting_nginx(stack: Stack) -> None:
    nginx_started = stack.compose("ps", "--format", "{{.CreatedAt}}", "nginx").stdout
    began = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    traffic = Traffic(f"{stack.http}/api/hello/")
    try:
        scale_app(stack, 1)  # down from 2, under traffic
        since = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        scale_app(stack, 3)
        scaled_at = time.monotonic()
        while len(upstreams_since(stack, since, "/api/hello/")) < 3:
            assert time.monotonic() - scaled_at < 30, "nginx did not use the new replicas within 30 s"
            time.sleep(0.5)
        pickup_seconds = time.monotonic() - scaled_at
        services = [str(c["Service"]) for c in stack.containers()]
        assert services.count("app") == 3
        assert services.count("migrate") == 1  # migrations ran once, not once per replica
        scale_app(stack, 1)  # down from 3, under traffic
        time.sleep(3)
    finally:
        traffic.stop()
        scale_app(stack, 2)
    assert traffic.sent > 100
    assert traffic.failures == [], (
        f"{len(traffic.failures)} of {traffic.sent} failed: {traffic.failures[:5]}; nginx: {stack.nginx_errors(began)}"
        f"; nginx's records of them: {failed_records(stack, began)}"
    )
    assert stack.compose("ps", "--format", "{{.CreatedAt}}", "nginx").stdout == nginx_started
    print(f"nginx used 3 replicas {pickup_seconds:.1f} s after the scale-up; {traffic.sent} GETs, 0 failed")


@pytest.mark.asyncio
async def test_rolling_deploy_replaces_every_replica_without_a_failed_request(stack: Stack, token: str) -> None:
    """scripts/deploy, as docs/operations.md gives it, under GETs, posts and open room sockets."""
    old = set(stack.compose("ps", "--quiet", "app").stdout.split())
    assert len(old) == 2
    slug = await asyncio.to_thread(create_room, stack, token)
    readers = [CatchingUpReader(stack.http, stack.ws, slug) for _ in range(8)]
    for reader in readers:
        reader.start()
    poster = Poster(stack.http, slug, token, interval=0.2)
    traffic = Traffic(f"{stack.http}/api/hello/")
    began = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    try:
        await asyncio.wait_for(asyncio.gather(*(reader.opened.wait() for reader in readers)), 30)
        poster.start()
        started = time.monotonic()
        deploy = await asyncio.to_thread(
            subprocess.run,
            ["scripts/deploy"],
            cwd=ROOT,
            env={**stack.env(), "COMPOSE": " ".join(stack.flags())},
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        took = time.monotonic() - started
        assert deploy.returncode == 0, deploy.stdout + deploy.stderr
        await asyncio.sleep(2)  # traffic and posts on the new replicas only
        await poster.stop()
        await wait_until_everyone_has(readers, set(poster.acknowledged))
    finally:
        traffic.stop()
        for reader in readers:
            await reader.stop()
    new = set(stack.compose("ps", "--quiet", "app").stdout.split())
    assert len(new) == 2
    assert not new & old, (old, new)
    assert traffic.sent > 100
    if traffic.failures or poster.failures:  # with what nginx saw of them and what the deploy did
        pytest.fail(
            f"{len(traffic.failures)} of {traffic.sent} GETs failed: {traffic.failures[:5]}; "
            f"posts failed: {poster.failures[:5]}; nginx: {stack.nginx_errors(began)}; "
            f"its records of them: {failed_records(stack, began)[:20]}; deploy: {deploy.stdout}"
        )
    assert all(reader.reconnects for reader in readers), "a socket stayed on a stopped replica"
    codes = {code or 0 for reader in readers for code in reader.close_codes}  # 0: no close frame
    assert codes <= {1001, 1012}, f"sockets were dropped, not closed: {codes}"
    for reader in readers:
        assert set(poster.acknowledged) <= reader.seen.keys()
    print(
        f"rolling deploy: {took:.0f} s; {traffic.sent} GETs and {len(poster.acknowledged)} posts, 0 failed; "
        f"{len(readers)} of {len(readers)} sockets closed with {sorted(codes)} and reconnected, 0 messages missed"
    )


async def get_load(url: str, total: int, concurrency: int) -> tuple[int, list[str]]:
    """`total` GETs from `concurrency` clients at once, each on its keep-alive connection;
    how many were sent, and every failure."""
    failures: list[str] = []
    sent = 0

    async def client() -> None:
        nonlocal sent
        async with httpx.AsyncClient(timeout=15) as http:
            while sent < total:
                sent += 1
                try:
                    response = await http.get(url)
                    if response.status_code != 200:
                        failures.append(f"HTTP {response.status_code}")
                except httpx.HTTPError as error:
                    failures.append(repr(error))

    await asyncio.gather(*(client() for _ in range(concurrency)))
    return sent, failures


@pytest.mark.asyncio
async def test_workers_recycled_at_max_requests_lose_no_request(stack: Stack, token: str, tmp_path: Path) -> None:
    """One replica (nginx has no other to retry on, and never retries a POST) whose two
    workers are recycled every 150-200 requests, under 32 concurrent keep-alive GETs and
    steady posts."""
    recycling = dataclasses.replace(stack, env_file=tmp_path / "recycling.env")
    recycling.env_file.write_text(
        stack.env_file.read_text() + "GUNICORN_MAX_REQUESTS=150\nGUNICORN_MAX_REQUESTS_JITTER=50\n"
    )
    slug = create_room(stack, token)
    try:
        recycling.compose("up", "--detach", "--wait", "--no-deps", "--scale", "app=1", "app")
        await asyncio.to_thread(wait_for_http, f"{stack.http}/api/hello/")
        await asyncio.sleep(NGINX_RESOLVE_SECONDS)  # nginx forgets the replaced replicas
        since = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        posters = [Poster(stack.http, slug, token, interval=0.2) for _ in range(3)]
        for poster in posters:
            poster.start()
        sent, failures = await get_load(f"{stack.http}/api/hello/", total=6000, concurrency=32)
        for poster in posters:
            await poster.stop()
        recycled = sum("Maximum request limit" in line for line in recycling.log_lines("app", since=since))
    finally:
        stack.compose("up", "--detach", "--wait", "--no-deps", "--scale", "app=2", "app")
    posted = sum(len(poster.acknowledged) for poster in posters)
    post_failures = [failure for poster in posters for failure in poster.failures]
    assert recycled >= 10, f"only {recycled} workers were recycled"
    assert failures == [], f"{len(failures)} of {sent} GETs failed: {failures[:5]}"
    assert post_failures == [], f"{len(post_failures)} posts failed ({posted} acknowledged): {post_failures[:5]}"
    print(f"max_requests: {recycled} workers recycled under {sent} GETs (32 at a time) and {posted} posts; 0 failed")


@dataclasses.dataclass
class QueuedRequest:
    """A request sent as soon as nginx accepts its connection, and the status it got."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes | None = None
    status: int | None = None


def send_as_nginx_starts(address: str, requests: list[QueuedRequest], within: float) -> None:
    """One client per request, each connecting to `address` port 80 every 2 ms until nginx
    accepts (for at most `within` seconds), then sending its request: the first
    connections are queued by the kernel before nginx's workers run."""

    def client(request: QueuedRequest) -> None:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            # A short connect timeout: while the container is down its address answers no
            # ARP query, and a connect would hang for seconds instead of being refused.
            connection = http.client.HTTPConnection(address, 80, timeout=0.1)
            try:
                connection.connect()
            except OSError:
                time.sleep(0.002)
                continue
            try:
                connection.sock.settimeout(10)
                connection.request(request.method, request.path, body=request.body, headers=request.headers)
                request.status = connection.getresponse().status
            finally:
                connection.close()
            return

    threads = [threading.Thread(target=client, args=(request,)) for request in requests]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def test_a_restarted_nginx_serves_the_requests_that_reach_it_as_it_starts(stack: Stack, token: str) -> None:
    """nginx restarted (a new proxy image under Swarm, a crash) while clients keep coming:
    the first requests it accepts are served, posts included, each stored once. (A starting
    nginx holds no replica of the app until its first resolution, while it already answers
    the connections the kernel queued: @second_pass in nginx/templates/locations.conf.template.)
    Sent to nginx's own address, not through Docker's published port, whose proxy would
    accept for it while it is down."""
    address = stack.env_value("NGINX_EDGE_ADDRESS")
    host = stack.env_value("DJANGO_ALLOWED_HOSTS").split(",")[0]
    slug = create_room(stack, token)
    began = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    sent: list[QueuedRequest] = []
    for round_number in range(2):
        restart = threading.Thread(target=stack.compose, args=("restart", "--timeout", "1", "nginx"))
        restart.start()
        waited = time.monotonic()
        while True:  # until the old nginx has closed its port
            try:
                socket.create_connection((address, 80), timeout=1).close()
            except OSError:
                break
            assert time.monotonic() - waited < 30, "nginx did not stop within 30 s"
            time.sleep(0.005)
        requests = [QueuedRequest("GET", "/api/hello/", {"Host": host}) for _ in range(2)] + [
            QueuedRequest(
                "POST",
                f"/api/rooms/{slug}/messages/",
                {"Host": host, "Authorization": f"Token {token}", "Content-Type": "application/json"},
                json.dumps({"body": f"restart {round_number}.{number}"}).encode(),
            )
            for number in range(2)
        ]
        send_as_nginx_starts(address, requests, within=30)
        restart.join()
        sent += requests
    wait_for_http(f"{stack.http}/api/hello/", 60)
    statuses = [(request.method, request.status) for request in sent]
    expected = [("GET", 200)] * 2 + [("POST", 201)] * 2
    assert statuses == expected * 2, (
        f"first answers of a restarted nginx: {statuses}; nginx: {stack.nginx_errors(began)}"
        f"; nginx's records of them: {failed_records(stack, began)}"
    )
    stored = [m["body"] for m in httpx.get(f"{stack.http}/api/rooms/{slug}/messages/").json()["results"]]
    assert sorted(stored) == sorted(json.loads(r.body)["body"] for r in sent if r.body), "a post lost or stored twice"
    records = stack.log_records("nginx", began)
    started_empty = sum(str(r.get("upstream_addr")).split(" : ")[0] == NO_REPLICA for r in records)
    print(
        f"nginx restarted twice: its first 4 GETs and 4 posts served, each post stored once "
        f"({started_empty} of the 8 met its upstream still empty)"
    )
