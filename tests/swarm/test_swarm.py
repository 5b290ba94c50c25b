"""The stack on a real three-node swarm, through the nginx each node publishes: the seed's
examples, rooms across nodes, secrets kept out of every inspect and log, a rolling update
and an automatic rollback under traffic, scaling, a drained node and a killed one. The
tests run in this order (later ones change the deployment) and print what they measured
(docs/reliability.md lists the figures)."""

from __future__ import annotations

import asyncio
import gzip
import json
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.typing import Subprotocol

from tests.clients import (
    HELLO_BODY,
    assert_everyone_receives,
    open_room_clients_on_distinct_workers,
    recv_json,
    wscat_says_hi,
)
from tests.sources import ROOT
from tests.stack.clients import SUBPROTOCOL, CatchingUpReader, Poster, Traffic, wait_until_everyone_has
from tests.stack.compose import error_lines, json_records
from tests.swarm.conftest import MISSING_RELEASE, Deployment
from tests.swarm.swarm import STACK, Node, inspect_existing, run, tasks

pytestmark = pytest.mark.swarm


# --- what Swarm reports -----------------------------------------------------------------------


def node_names(deployment: Deployment) -> dict[str, str]:
    lines = deployment.docker("node", "ls", "--format", "{{.ID}} {{.Hostname}}").splitlines()
    return dict(line.split() for line in lines)


def running_app_tasks(deployment: Deployment) -> list[dict[str, Any]]:
    return [task for task in tasks(deployment.swarm, "app") if task["Status"]["State"] == "running"]


def task_node(deployment: Deployment, task: dict[str, Any]) -> str:
    return node_names(deployment)[str(task["NodeID"])]


def task_addresses(task: dict[str, Any]) -> set[str]:
    """The task's addresses on the edge network (where nginx reaches the app)."""
    return {
        address.split("/")[0]
        for attachment in task.get("NetworksAttachments") or []
        if attachment["Network"]["Spec"]["Name"] == f"{STACK}_edge"
        for address in attachment["Addresses"]
    }


def upstreams(records: list[dict[str, Any]], uri: str | None = None) -> set[str]:
    """The app addresses nginx passed requests to (several per request when it retried)."""
    return {
        upstream.split(":")[0]
        for record in records
        if uri is None or record.get("uri") == uri
        for upstream in str(record.get("upstream_addr") or "").split(", ")
        if upstream
    }


def task_image(task: dict[str, Any]) -> str:
    return str(task["Spec"]["ContainerSpec"]["Image"]).split("@")[0]


def when(task: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(str(task["Status"]["Timestamp"]).replace("Z", "+00:00")[:26] + "+00:00")


def wait_for(condition: Callable[[], bool], seconds: float, what: str) -> float:
    """Poll `condition()` until true; returns the seconds it took."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > seconds:
            raise AssertionError(f"{what}: not within {seconds:.0f} s")
        time.sleep(0.5)
    return time.monotonic() - started


def nginx_records(
    deployment: Deployment, nodes: list[Node] | None = None, *, running_only: bool = False
) -> list[dict[str, Any]]:
    """The access log of every nginx container on `nodes`: the running ones, or with the
    exited ones (an update replaces nginx) before them."""
    records = []
    which = ["--filter", "status=running"] if running_only else ["--all"]
    for node in nodes or deployment.nodes:
        # Newest first: reversed, so the running container's lines come last.
        for container in reversed(node.docker("ps", "--quiet", *which, "--filter", f"name={STACK}_nginx").split()):
            logs = node.call("logs", container)
            records += json_records(logs.stdout.splitlines())
    return records


def nginx_errors(deployment: Deployment) -> list[str]:
    """nginx's error-log lines on every node, the last 20 (upstream failures among them):
    for failure messages."""
    lines = []
    for node in deployment.nodes:
        for container in node.docker("ps", "--quiet", "--all", "--filter", f"name={STACK}_nginx").split():
            lines += [f"{node.name}: {line}" for line in node.call("logs", container).stderr.splitlines()]
    return error_lines(lines)


def no_failures(traffic: Traffic, deployment: Deployment) -> str:
    failed = f"{len(traffic.failures)} of {traffic.sent} GETs failed: {traffic.failures[:5]}"
    return f"{failed}; nginx: {nginx_errors(deployment)}"


# --- a user with a token, a room --------------------------------------------------------------


@pytest.fixture(scope="module")
def token(deployment: Deployment) -> str:
    task = running_app_tasks(deployment)[0]
    node = next(n for n in deployment.nodes if n.name == task_node(deployment, task))
    container = str(task["Status"]["ContainerStatus"]["ContainerID"])
    username, password = f"swarm-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    node.docker(
        "exec", "--env", f"DJANGO_SUPERUSER_PASSWORD={password}", container,
        "python", "manage.py", "createsuperuser", "--noinput", "--username", username, "--email", "s@example.com",
    )  # fmt: skip
    response = httpx.post(f"{deployment.http}/api/auth/token/", json={"username": username, "password": password})
    assert response.status_code == 200, response.text
    return str(response.json()["token"])


def new_room(deployment: Deployment, token: str) -> str:
    slug = f"swarm-{uuid.uuid4().hex[:8]}"
    response = httpx.post(
        f"{deployment.http}/api/rooms/",
        json={"slug": slug, "title": "Swarm"},
        headers={"Authorization": f"Token {token}"},
    )
    assert response.status_code == 201, response.text
    return slug


def post_messages(deployment: Deployment, token: str, slug: str, label: str, count: int) -> set[int]:
    """Post `count` messages over REST; the ids acknowledged (each must be)."""
    ids = set()
    for number in range(count):
        response = httpx.post(
            f"{deployment.http}/api/rooms/{slug}/messages/",
            json={"body": f"{label} {number}"},
            headers={"Authorization": f"Token {token}"},
        )
        assert response.status_code == 201
        ids.add(response.json()["id"])
    return ids


def stored_ids(deployment: Deployment, slug: str) -> set[int]:
    ids: set[int] = set()
    url: str | None = f"{deployment.http}/api/rooms/{slug}/messages/"
    while url:
        page = httpx.get(url, timeout=15).json()
        ids |= {message["id"] for message in page["results"]}
        url = page["next"]
    return ids


# --- 1. the seed's examples -------------------------------------------------------------------


def test_the_seed_examples_answer_on_every_node(deployment: Deployment) -> None:
    for base in deployment.entry_points():
        response = httpx.get(f"{base}/api/hello/")
        assert response.status_code == 200
        assert response.content == HELLO_BODY
    ws = deployment.entry_points()[-1].replace("http://", "ws://")
    assert wscat_says_hi(ws) == '{"message": "Echo: Hi"}'


# --- 2. replicas on several nodes, rooms across them -----------------------------------------


@pytest.mark.asyncio
async def test_replicas_run_on_two_nodes_and_rooms_cross_them(deployment: Deployment, token: str) -> None:
    running = running_app_tasks(deployment)
    nodes_of_replicas = {task_node(deployment, task) for task in running}
    assert len(running) == 2
    assert len(nodes_of_replicas) == 2, nodes_of_replicas
    containers = {str(t["Status"]["ContainerStatus"]["ContainerID"]): task_node(deployment, t) for t in running}

    # Socket posts, the ephemeral room: the server names the process holding each socket
    # (container hostname = its id, and a pid).
    clients, holder = await open_room_clients_on_distinct_workers(
        f"{deployment.ws}/ws/chat/swarm-room/", want_workers=3, batch=6
    )
    try:
        node_of = {
            ws: next(node for cid, node in containers.items() if cid.startswith(worker.split(":")[0]))
            for ws, worker in holder.items()
        }
        assert len(set(node_of.values())) == 2, node_of
        for worker in sorted(set(holder.values())):
            sender = next(ws for ws in clients if holder[ws] == worker)
            await assert_everyone_receives(clients, sender, f"from {worker}")
    finally:
        for ws in clients:
            await ws.close()

    # REST and socket posts to a stored room; which replica holds each socket: nginx's log.
    slug = new_room(deployment, token)
    url = f"{deployment.ws}/ws/rooms/{slug}/"
    readers = [await connect(url, subprotocols=[SUBPROTOCOL]) for _ in range(10)]
    writer = await connect(url, subprotocols=[SUBPROTOCOL, Subprotocol(f"auth.{token}")])
    try:
        async with httpx.AsyncClient(headers={"Authorization": f"Token {token}"}) as http:
            rest = await http.post(f"{deployment.http}/api/rooms/{slug}/messages/", json={"body": "via REST"})
        assert rest.status_code == 201
        await writer.send(json.dumps({"body": "via socket"}))
        for ws in [*readers, writer]:
            assert (await recv_json(ws))["body"] == "via REST"
            assert (await recv_json(ws))["body"] == "via socket"
    finally:
        for ws in [*readers, writer]:
            await ws.close()
    await asyncio.sleep(1)  # nginx logs a socket when it closes
    held_by = upstreams(nginx_records(deployment, [deployment.swarm.manager]), f"/ws/rooms/{slug}/")
    by_address = {address: task_node(deployment, task) for task in running for address in task_addresses(task)}
    socket_nodes = {by_address[address] for address in held_by}
    assert len(socket_nodes) == 2, (held_by, by_address)
    print(
        f"swarm rooms: sockets held by {len(set(holder.values()))} processes on nodes {sorted(set(node_of.values()))} "
        f"and by replicas on {sorted(socket_nodes)} got every REST and socket post"
    )


# --- 8. the migration job ---------------------------------------------------------------------


@pytest.mark.asyncio
async def test_an_export_is_built_by_the_worker_service_and_announced_on_another_node(
    deployment: Deployment, token: str
) -> None:
    """The worker service (any node) builds an export asked for through one node's nginx;
    the event reaches the requester's socket held through another node's."""
    slug = new_room(deployment, token)
    posted = post_messages(deployment, token, slug, "export", 5)
    first, last = deployment.entry_points()[0], deployment.entry_points()[-1]
    headers = {"Authorization": f"Token {token}"}
    url = f"{last.replace('http://', 'ws://')}/ws/rooms/{slug}/"
    async with (
        connect(url, subprotocols=[SUBPROTOCOL, Subprotocol(f"auth.{token}")]) as ws,
        httpx.AsyncClient(headers=headers) as http,
    ):
        response = await http.post(f"{first}/api/rooms/{slug}/exports/")
        assert response.status_code == 202, response.text
        frame = json.loads(await asyncio.wait_for(ws.recv(), 60))
        assert (frame["export"]["status"], frame["export"]["message_count"]) == ("succeeded", 5)
        download = await http.get(f"{first}{frame['export']['download_url']}")
    assert download.status_code == 200
    _, *rows = [json.loads(line) for line in gzip.decompress(download.content).splitlines()]
    assert {row["id"] for row in rows} == posted


def last_migration_applied(deployment: Deployment) -> datetime:
    """When the last migration was applied, as Postgres recorded it (django_migrations)."""
    task = next(t for t in tasks(deployment.swarm, "postgres") if t["Status"]["State"] == "running")
    node = next(n for n in deployment.nodes if n.name == task_node(deployment, task))
    container = str(task["Status"]["ContainerStatus"]["ContainerID"])
    query = "select to_char(max(applied) at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') from django_migrations"
    applied = node.docker(
        "exec", container, "sh", "-c", f'psql -U "$POSTGRES_APP_USER" -d "$POSTGRES_DB" -tAc "{query}"'
    )
    return datetime.fromisoformat(applied.strip() + "+00:00")


def test_the_migration_ran_once_and_the_app_served_only_after_it(deployment: Deployment) -> None:
    job = tasks(deployment.swarm, "migrate")
    completed = [task for task in job if task["Status"]["State"] == "complete"]
    assert len(completed) == 1, [task["Status"] for task in job]
    failed = [task for task in job if task["Status"]["State"] == "failed"]
    finished = last_migration_applied(deployment)
    assert finished < when(completed[0])
    app = running_app_tasks(deployment)
    # An app task is running (in nginx's DNS answers) only once healthy: /readyz, which
    # requires every migration applied. (The job's own task completes a moment after its
    # last migration: Django's post-migrate work and the container's exit come first, and
    # a replica may be ready in between.)
    assert all(when(task) > finished for task in app), (finished, [when(task) for task in app])
    first_served = min(when(task) for task in app)
    print(
        f"swarm migrate: 1 completed run ({len(failed)} earlier attempts failed waiting for Postgres); "
        f"the first app replica became ready {(first_served - finished).total_seconds():.1f} s after it finished; "
        f"first deploy took {deployment.deploy_seconds:.0f} s"
    )


# --- 3. secrets -------------------------------------------------------------------------------


def test_no_secret_appears_in_any_inspect_history_or_log(deployment: Deployment) -> None:
    values = deployment.secret_values.values()
    services = deployment.docker("service", "ls", "--quiet").split()
    places = {"docker service inspect": deployment.docker("service", "inspect", *services)}
    for node in deployment.nodes:
        containers = node.docker("ps", "--all", "--quiet").split()
        places[f"docker inspect ({node.name})"] = json.dumps(inspect_existing(node, containers), ensure_ascii=False)
        logs = [node.call("logs", c) for c in containers]
        places[f"container logs ({node.name})"] = "".join(log.stdout + log.stderr for log in logs)
        for image in node.docker("image", "ls", "--quiet").split():
            places[f"image {image} ({node.name})"] = node.docker("image", "history", "--no-trunc", image) + node.docker(
                "image", "inspect", image
            )
    leaked = [where for where, text in places.items() for value in values if value in text]
    assert leaked == []
    assert len(places) > 10


def test_the_app_and_redis_refuse_to_start_without_their_secret_file(deployment: Deployment) -> None:
    node = deployment.swarm.manager
    app = node.call(
        "run", "--rm", "--env", "DJANGO_SECRET_KEY_FILE=/run/secrets/django_secret_key",
        "registry:5000/mainkode/app:v1", "python", "manage.py", "check",
    )  # fmt: skip
    assert app.returncode != 0
    expected = "Environment variable DJANGO_SECRET_KEY_FILE is invalid: cannot read /run/secrets/django_secret_key"
    assert expected in app.stderr, app.stderr
    # redis/start.sh, given on standard input (the node has no copy of the checkout).
    redis = node.call(
        "run", "--rm", "--interactive", "--user", "redis", "--env", "REDIS_PASSWORD_FILE=/run/secrets/redis_password",
        "--entrypoint", "sh", "redis:8", "-s",
        input_text=(ROOT / "redis" / "start.sh").read_text(),
    )  # fmt: skip
    assert redis.returncode != 0
    expected = "Environment variable REDIS_PASSWORD_FILE is invalid: cannot read /run/secrets/redis_password"
    assert expected in redis.stderr, redis.stderr


# --- 4 and 5. rolling update, rollback --------------------------------------------------------


@pytest.mark.asyncio
async def test_rolling_update_under_traffic_loses_nothing(deployment: Deployment, token: str) -> None:
    old = {str(task["ID"]) for task in running_app_tasks(deployment)}
    slug = await asyncio.to_thread(new_room, deployment, token)
    readers = [CatchingUpReader(deployment.http, deployment.ws, slug) for _ in range(8)]
    for reader in readers:
        reader.start()
    poster = Poster(deployment.entry_points(), slug, token, interval=0.2)
    traffic = Traffic(deployment.entry_points(), "/api/hello/")
    try:
        await asyncio.wait_for(asyncio.gather(*(reader.opened.wait() for reader in readers)), 30)
        poster.start()
        started = time.monotonic()
        result = await asyncio.to_thread(deployment.deploy, "v2")
        took = time.monotonic() - started
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr
        await asyncio.sleep(2)
        await poster.stop()
        await wait_until_everyone_has(readers, set(poster.acknowledged))
    finally:
        traffic.stop()
        for reader in readers:
            await reader.stop()
    running = running_app_tasks(deployment)
    assert {task_image(task) for task in running} == {"registry:5000/mainkode/app:v2"}
    assert not old & {str(task["ID"]) for task in running}
    assert traffic.sent > 100
    assert traffic.failures == [], no_failures(traffic, deployment)
    assert poster.failures == [], f"{poster.failures}; nginx: {nginx_errors(deployment)}"
    assert all(reader.reconnects for reader in readers), "a socket stayed on a replaced replica"
    missed = sum(len(set(poster.acknowledged) - reader.seen.keys()) for reader in readers)
    assert missed == 0
    print(
        f"swarm rolling update: {took:.0f} s; {traffic.sent} GETs and {len(poster.acknowledged)} posts, 0 failed; "
        f"{len(readers)} of {len(readers)} sockets reconnected, 0 messages missed"
    )


def test_a_release_that_never_gets_ready_is_rolled_back_without_a_failed_request(deployment: Deployment) -> None:
    traffic = Traffic(deployment.entry_points(), "/api/hello/")
    started = time.monotonic()
    try:
        result = deployment.deploy("never-ready")
        took = time.monotonic() - started
        time.sleep(2)
    finally:
        traffic.stop()
    assert result.returncode != 0
    assert "rolled the app back" in result.stderr, result.stdout[-2000:] + result.stderr
    state = deployment.docker("service", "inspect", f"{STACK}_app", "--format", "{{.UpdateStatus.State}}").strip()
    assert state == "rollback_completed"
    running = running_app_tasks(deployment)
    assert {task_image(task) for task in running} == {"registry:5000/mainkode/app:v2"}
    assert len(running) == 2
    assert traffic.failures == [], no_failures(traffic, deployment)
    never_ready = {
        address
        for task in tasks(deployment.swarm, "app")
        if task_image(task).endswith(":never-ready")
        for address in task_addresses(task)
    }
    assert never_ready, "no task of the release was started"
    assert not never_ready & upstreams(nginx_records(deployment)), (
        "nginx sent a request to the release that never got ready"
    )
    print(f"swarm rollback: rolled back by Swarm in {took:.0f} s; {traffic.sent} GETs, 0 failed, none to the release")


def test_a_release_no_node_can_pull_stops_at_the_deadline_names_why_and_rolls_back(deployment: Deployment) -> None:
    """An outside run saw scripts/swarm-deploy wait for ever on such a release: the migration
    job's tasks are rejected and the stack never converges."""
    traffic = Traffic(deployment.entry_points(), "/api/hello/")
    started = time.monotonic()
    try:
        result = deployment.deploy(MISSING_RELEASE, SWARM_DEPLOY_TIMEOUT="60")
        took = time.monotonic() - started
    finally:
        traffic.stop()
    assert result.returncode == 1, result.stdout[-2000:] + result.stderr
    assert "has not converged within 60 s" in result.stderr, result.stderr
    assert "the previous version serves" in result.stderr
    running = running_app_tasks(deployment)
    assert {task_image(task) for task in running} == {"registry:5000/mainkode/app:v2"}
    assert len(running) == 2
    assert traffic.failures == [], no_failures(traffic, deployment)
    # The failing tasks, named: name, image, state, error (tab-separated).
    failing = [line for line in result.stderr.splitlines() if line.count("\t") == 3 and MISSING_RELEASE in line]
    assert failing, result.stderr
    # Back to the release that serves, so the migration job no longer retries the missing one.
    assert deployment.deploy("v2").returncode == 0
    print(
        f"swarm deadline: stopped and rolled back {took:.0f} s after the deploy began (deadline 60 s); "
        f"{traffic.sent} GETs, 0 failed; first failing task: {failing[0]!r}"
    )


# --- 7. scaling -------------------------------------------------------------------------------


def test_scaling_up_and_down_under_traffic(deployment: Deployment) -> None:
    traffic = Traffic(deployment.entry_points(), "/api/hello/")
    seen_after = []
    try:
        for replicas in (3, 2):  # up (a new replica takes traffic), then down under traffic
            deployment.docker("service", "scale", "--detach=false", f"{STACK}_app={replicas}", timeout=300)
            addresses = {a for task in running_app_tasks(deployment) for a in task_addresses(task)}
            assert len(running_app_tasks(deployment)) == replicas

            def nginx_uses_all(addresses: set[str] = addresses) -> bool:
                httpx.get(f"{deployment.http}/api/hello/")
                recent = nginx_records(deployment, [deployment.swarm.manager], running_only=True)[-40:]
                return addresses <= upstreams(recent)

            if replicas == 3:
                seen_after.append(wait_for(nginx_uses_all, 30, "nginx sending to every new replica"))
    finally:
        traffic.stop()
    assert traffic.failures == [], no_failures(traffic, deployment)
    print(
        f"swarm scale 2 -> 3 -> 2: {traffic.sent} GETs, 0 failed; nginx used all 3 replicas "
        f"{seen_after[0]:.1f} s after the scale converged"
    )


# --- Postgres' data across a task restart ----------------------------------------------------


def test_postgres_keeps_its_data_when_its_task_is_replaced(deployment: Deployment, token: str) -> None:
    """A new Postgres task (what a redeploy with a new Postgres image or a crash gives):
    it starts on the labelled node, on the same volume."""
    slug = new_room(deployment, token)
    posted = post_messages(deployment, token, slug, "kept", 5)
    before = next(t for t in tasks(deployment.swarm, "postgres") if t["Status"]["State"] == "running")
    replaced = time.monotonic()
    deployment.docker("service", "update", "--force", "--detach=false", f"{STACK}_postgres", timeout=300)

    def serves_the_room() -> bool:
        return httpx.get(f"{deployment.http}/api/rooms/{slug}/messages/", timeout=15).status_code == 200

    wait_for(serves_the_room, 120, "the room served again")
    back = time.monotonic() - replaced
    after = next(t for t in tasks(deployment.swarm, "postgres") if t["Status"]["State"] == "running")
    assert after["ID"] != before["ID"]
    assert task_node(deployment, after) == deployment.swarm.manager.name  # the labelled node
    assert posted <= stored_ids(deployment, slug)
    print(f"swarm Postgres task replaced: served again {back:.0f} s after the update began; 5 of 5 messages kept")


# --- 6. a drained node, a killed node ---------------------------------------------------------


def test_draining_a_node_moves_its_replicas_without_a_failed_request(deployment: Deployment) -> None:
    workers = {node.name: node for node in deployment.swarm.workers}
    target = next(
        task_node(deployment, t) for t in running_app_tasks(deployment) if task_node(deployment, t) in workers
    )
    others = [node for node in deployment.nodes if node.name != target]
    traffic = Traffic(deployment.entry_points(others), "/api/hello/")
    try:
        deployment.docker("node", "update", "--availability", "drain", target)
        moved = wait_for(
            lambda: (
                len(running_app_tasks(deployment)) == 2
                and all(task_node(deployment, t) != target for t in running_app_tasks(deployment))
            ),
            120,
            "the drained node's replica running elsewhere",
        )
        time.sleep(2)
    finally:
        traffic.stop()
        deployment.docker("node", "update", "--availability", "active", target)
    assert traffic.failures == [], no_failures(traffic, deployment)
    print(
        f"swarm drain of {target}: its replica ran on another node after {moved:.0f} s; {traffic.sent} GETs, 0 failed"
    )


def test_a_killed_worker_node_loses_no_acknowledged_message(deployment: Deployment, token: str) -> None:
    workers = [node.name for node in deployment.swarm.workers]
    if not any(task_node(deployment, t) in workers for t in running_app_tasks(deployment)):
        # Both replicas on the manager (a drain moves replicas, reactivating does not move
        # them back): a forced update places them anew, spread over the nodes.
        deployment.docker("service", "update", "--force", "--detach=false", f"{STACK}_app", timeout=300)
    running = running_app_tasks(deployment)
    redis_node = task_node(
        deployment, next(t for t in tasks(deployment.swarm, "redis") if t["Status"]["State"] == "running")
    )
    candidates = [task_node(deployment, t) for t in running if task_node(deployment, t) in workers]
    assert candidates, "no worker node runs an app replica"
    target = next((name for name in candidates if name != redis_node), candidates[0])
    victim = next(node for node in deployment.nodes if node.name == target)
    others = [node for node in deployment.nodes if node is not victim]

    slug = new_room(deployment, token)
    headers = {"Authorization": f"Token {token}"}
    acknowledged = post_messages(deployment, token, slug, "before", 10)

    traffic = Traffic(deployment.entry_points(others), "/api/hello/")
    try:
        killed = time.monotonic()
        run("docker", "kill", f"{deployment.swarm.prefix}-{victim.name}")
        replaced = wait_for(
            lambda: len([t for t in running_app_tasks(deployment) if task_node(deployment, t) != target]) == 2,
            180,
            "two app replicas running on the surviving nodes",
        )
        recovered_at = time.monotonic() - killed
        after = 0
        for number in range(10):
            response = httpx.post(
                f"{deployment.http}/api/rooms/{slug}/messages/",
                json={"body": f"after {number}"},
                headers=headers,
                timeout=30,
            )
            if response.status_code == 201:
                acknowledged.add(response.json()["id"])
                after += 1
        time.sleep(1)
    finally:
        traffic.stop()
    assert after == 10
    assert acknowledged <= stored_ids(deployment, slug)
    print(
        f"swarm kill of worker {target}{' (which ran Redis)' if target == redis_node else ''}: "
        f"replicas back to 2 on the other nodes in {replaced:.0f} s ({recovered_at:.0f} s after the kill); "
        f"{traffic.sent} GETs, {len(traffic.failures)} failed meanwhile {traffic.failures[:3]}; "
        "20 of 20 acknowledged messages kept"
    )
