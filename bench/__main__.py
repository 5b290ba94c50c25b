"""scripts/bench [--smoke] [--out DIR]: run every scenario against the stack on this
machine, print the figures, and write DIR/benchmarks.md and its chart (DIR: docs/)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import Any

from bench import http_load, ops, report, sockets, tasks
from bench.stack import BenchStack
from tests.sources import ROOT

STACK = "gunicorn mainkode_example.asgi:application"  # the image's own command


def servers(workers: int) -> list[tuple[str, str, int, dict[str, str]]]:
    """(name, command, replicas, app env): the same app and image, the same process count
    (except where a layout's own advice says otherwise), behind the same nginx, each writing
    the same access line (core.access_log)."""
    wsgi, asgi = "mainkode_example.wsgi:application", "mainkode_example.asgi:application"
    granian = f"granian --host 0.0.0.0 --port 8000 --workers {workers} --no-ws"
    return [
        ("this stack: Gunicorn + UvicornWorker", STACK, 1, {}),
        (f"Gunicorn gthread ({workers} x 8 threads)", f"gunicorn {wsgi} --worker-class gthread --threads 8", 1, {}),
        (f"Gunicorn sync ({workers} workers)", f"gunicorn {wsgi} --worker-class sync", 1, {}),
        (
            f"Gunicorn sync ({2 * workers + 1} workers: 2 x cores + 1)",
            f"gunicorn {wsgi} --worker-class sync --workers {2 * workers + 1}",
            1,
            {},
        ),
        ("Gunicorn's own ASGI worker", f"gunicorn {asgi} --worker-class asgi", 1, {}),
        # granian's WSGI default allows hundreds of threads per worker: past the container's
        # pids limit it crashes. 8, as for gthread.
        ("granian, WSGI (8 threads)", f"{granian} --interface wsgi --blocking-threads 8 {wsgi}", 1, {}),
        ("granian, ASGI", f"{granian} --interface asgi {asgi}", 1, {}),
        (
            f"uvicorn --workers {workers}",
            f"uvicorn {asgi} --host 0.0.0.0 --port 8000 --workers {workers} "
            "--loop uvloop --http httptools --ws websockets-sansio --lifespan off --no-access-log "
            "--proxy-headers --forwarded-allow-ips *",
            1,
            {},
        ),
        (
            f"daphne ({workers} replicas of one process)",
            f"daphne --bind 0.0.0.0 --port 8000 --proxy-headers {asgi}",
            workers,
            {},
        ),
    ]


FIXTURES = (
    "from django.contrib.auth.models import User\n"
    "from knox.models import AuthToken\n"
    "from chat.models import Room, Message\n"
    "user, _ = User.objects.get_or_create(username='bench')\n"
    "room, _ = Room.objects.get_or_create(slug='bench', defaults={'title': 'Bench', 'created_by': user})\n"
    "if not room.messages.exists():\n"
    "    Message.objects.bulk_create(Message(room=room, author=user, body=f'message {i}') for i in range(50))\n"
    "for slug in ('fanout-core', 'fanout-pubsub'):\n"
    "    Room.objects.get_or_create(slug=slug, defaults={'title': slug, 'created_by': user})\n"
    "print(AuthToken.objects.create(user)[1])"
)


# Scenario 6: large rooms to export (one per mode), small ones, and users to ask (each may have
# tasks.PER_USER exports unfinished); prints the users' tokens.
TASK_FIXTURES = (
    "from django.contrib.auth.models import User\n"
    "from django.db import connection\n"
    "from knox.models import AuthToken\n"
    "from chat.models import Room\n"
    "owner, _ = User.objects.get_or_create(username='bench')\n"
    "rooms = [(f'bench-export-{{m}}', {large}) for m in range(2)]\n"
    "rooms += [(f'bench-export-small-{{k}}', {small}) for k in range({small_rooms})]\n"
    "for slug, size in rooms:\n"
    "    room, made = Room.objects.get_or_create(slug=slug, defaults={{'title': slug, 'created_by': owner}})\n"
    "    if made:\n"
    "        with connection.cursor() as cursor:\n"
    "            cursor.execute(\n"
    '                "insert into chat_message (room_id, author_id, body, created_at) "\n'
    "                \"select %s, %s, 'message ' || g || ': ' || md5(g::text), now() from generate_series(1, %s) g\",\n"
    "                [room.id, owner.id, size],\n"
    "            )\n"
    "for i in range({users}):\n"
    "    user, _ = User.objects.get_or_create(username=f'bench-export-{{i}}')\n"
    "    print(AuthToken.objects.create(user)[1])\n"
)


def fixtures(stack: BenchStack) -> str:
    """FIXTURES in the stack's database (again after section 5's cold start, which begins
    from empty volumes); a new token of the bench user."""
    return stack.compose("exec", "-T", "app", "python", "manage.py", "shell", "-c", FIXTURES).stdout.split()[-1]


def machine(stack: BenchStack) -> dict[str, str]:
    def run(*args: str) -> str:
        return subprocess.run(args, capture_output=True, text=True, check=False).stdout.strip()

    mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
    pins = {
        line.split("==")[0]: line.split("==")[1].split()[0]
        for line in (ROOT / "requirements.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    }
    return {
        "cores": str(os.cpu_count()),
        "memory": f"{mem_kib / 2**20:.0f} GiB",
        "kernel": platform.release(),
        "docker": run("docker", "version", "--format", "{{.Server.Version}}"),
        "compose": run("docker", "compose", "version", "--short"),
        "python (image)": stack.compose("exec", "-T", "app", "python", "-V").stdout.strip(),
        "nginx": stack.compose("exec", "-T", "nginx", "nginx", "-v").stderr.strip(),
        "postgres": stack.sql("show server_version"),
        "wrk": run("wrk", "--version").splitlines()[0] if run("wrk", "--version") else "wrk",
        "packages": ", ".join(
            f"{name} {pins[name]}"
            for name in (
                "django",
                "djangorestframework",
                "channels",
                "channels-redis",
                "gunicorn",
                "uvicorn",
                "uvicorn-worker",
                "psycopg",
                "daphne",
            )
            if name in pins
        ),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="a few seconds per scenario (the test suite's run)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs", help="where benchmarks.md and the chart go")
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated scenarios to run again; the others' figures stay as DIR/benchmarks.json has them",
    )
    args = parser.parse_args()
    only = {name for name in args.only.split(",") if name}
    smoke: bool = args.smoke
    workers = os.cpu_count() or 2
    plan = {
        "concurrency": [8] if smoke else [16, 64, 256],
        "seconds": 1.0 if smoke else 6.0,
        "repeats": 1 if smoke else 3,
        "receivers": [10] if smoke else [100, 1000],
        "messages": 3 if smoke else 20,
        "idle_sockets": 200 if smoke else 10_000,
        "memory_sockets": 100 if smoke else 2_000,
        "profile_seconds": 2 if smoke else 10,
        "export_messages": 2_000 if smoke else 200_000,
        "exports": 2 if smoke else 3,
        "task_idle_seconds": 1.0 if smoke else 5.0,
        "pickups": 2 if smoke else 5,
        "throughput_users": 1 if smoke else 4,
    }
    results: dict[str, object] = {"plan": plan, "smoke": smoke, "workers": workers}
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        stack = BenchStack(Path(tmp), workers)
        stack.write_env()
        try:
            print(f"bench: building and starting the stack (project mainkode-bench, port {stack.port})", flush=True)
            stack.up(STACK)
            token = fixtures(stack)
            results["machine"] = machine(stack)
            scenarios: dict[str, Callable[[], object]] = {
                "http": lambda: run_http(stack, workers, plan),
                "fanout": lambda: run_fanout(stack, token, plan),
                "profile": lambda: run_profile(stack, token, plan),
                "capacity": lambda: run_capacity(stack, plan),
                "socket_memory": lambda: run_socket_memory(stack, plan),
                "ops": lambda: run_ops(stack),
                "tasks": lambda: run_tasks(stack, plan),
                "metrics": lambda: run_metrics(stack, fixtures(stack), plan),
            }
            if unknown := only - scenarios.keys():
                raise SystemExit(f"bench: no scenario {', '.join(sorted(unknown))} (known: {', '.join(scenarios)})")
            for name, scenario in scenarios.items():
                if only and name not in only:
                    continue
                try:
                    results[name] = scenario()
                except Exception as error:
                    results["failed"] = {**results.get("failed", {}), name: repr(error)[:2000]}  # type: ignore[dict-item]
                    print(f"bench: scenario {name} failed: {error!r}", flush=True)
                    stack.serve(STACK, force=True)  # a known state for the next one
        finally:
            stack.down()
    results["took_seconds"] = time.monotonic() - started
    if only:  # the earlier full run, with these scenarios replaced
        earlier = json.loads((args.out / "benchmarks.json").read_text())
        now_failed: dict[str, str] = results.get("failed", {})  # type: ignore[assignment]
        failed = {name: why for name, why in earlier.get("failed", {}).items() if name not in only} | now_failed
        rerun = {name: results[name] for name in only if name in results}
        results = {**earlier, **rerun, "rerun": {**earlier.get("rerun", {}), **dict.fromkeys(rerun, report.now())}}
        results.pop("failed", None)
        if failed:
            results["failed"] = failed
    args.out.mkdir(parents=True, exist_ok=True)
    written = report.write(results, args.out)
    print(f"bench: wrote {', '.join(str(p) for p in written)} in {results['took_seconds']:.0f} s")
    return 1 if "failed" in results else 0


def run_metrics(stack: BenchStack, token: str, plan: dict[str, Any]) -> dict[str, Any]:
    """`/api/hello/` and the fan-out with the app's metrics on and off (METRICS_ENABLED), in
    rounds of on then off: the report compares within each round, so the machine's drift
    between rounds cancels out."""
    connections = max(c for c in plan["concurrency"] if c <= 64)
    receivers = max(plan["receivers"])
    rows = []
    for metrics in ("on", "off") * plan["repeats"]:
        stack.serve(STACK, env={} if metrics == "on" else {"METRICS_ENABLED": "false"})  # on: the default
        http_load.wrk(f"{stack.http}/api/hello/", 16, 1 if plan["seconds"] < 2 else 3)  # warm-up
        hello = http_load.median_of(
            [http_load.wrk(f"{stack.http}/api/hello/", connections, plan["seconds"]) for _ in range(plan["repeats"])]
        )
        fanout = asyncio.run(
            sockets.fanout(
                stack.http,
                stack.ws,
                "fanout-core",
                token,
                receivers=receivers,
                messages=plan["messages"],
                via="rest",
                app_cpu_seconds=stack.app_cpu_seconds,
            )
        )
        rows.append({"metrics": metrics, "hello": asdict(hello), "fanout": asdict(fanout)})
        print(f"bench: metrics {metrics}: hello {hello}, fan-out {fanout}", flush=True)
    return {"connections": connections, "receivers": receivers, "rows": rows}


def run_ops(stack: BenchStack) -> dict[str, Any]:
    cold_up_seconds, cold_up_timeline = ops.cold_up(stack, STACK)
    found = {
        "cold_up_seconds": cold_up_seconds,
        "cold_up_timeline": cold_up_timeline,
        "rebuild_seconds": ops.rebuild_after_one_line_edit(),
        "app_image_mib": ops.image_mib("mainkode-example/app:bench"),
        "proxy_image_mib": ops.image_mib("mainkode-example/proxy:bench"),
    }
    print(f"bench: operations {found}", flush=True)
    return found


def run_tasks(stack: BenchStack, plan: dict[str, Any]) -> dict[str, Any]:
    users = max(plan["exports"], plan["throughput_users"])
    # A room per export a user asks for (a second request for an unchanged room reuses the
    # export): one large room per mode; small ones for the pickups, then for the throughput.
    small = [f"bench-export-small-{k}" for k in range(plan["pickups"] + tasks.PER_USER)]
    code = TASK_FIXTURES.format(large=plan["export_messages"], small=100, small_rooms=len(small), users=users)
    tokens = stack.compose("exec", "-T", "app", "python", "manage.py", "shell", "-c", code).stdout.split()[-users:]
    modes = []
    modes_env: list[tuple[str, dict[str, str]]] = [
        ("worker service", {}),
        ("inline in the request (TASKS_INLINE=true)", {"TASKS_INLINE": "true"}),
    ]
    for number, (mode, env) in enumerate(modes_env):
        stack.serve(STACK, env=env)
        askers = tokens[: plan["exports"]]
        run = tasks.under_exports(stack.http, stack.ws, f"bench-export-{number}", askers, plan["task_idle_seconds"])
        found = asyncio.run(run)
        found.pop("ids")
        modes.append({"mode": mode, **{k: asdict(v) if isinstance(v, tasks.Latency) else v for k, v in found.items()}})
        print(f"bench: tasks, {mode}: {modes[-1]}", flush=True)
    stack.serve(STACK)
    # Pickup: a small export asked while the worker is idle, from enqueue to its start
    # (the task table's own timestamps).
    ids = asyncio.run(tasks.sequential_pickups(stack.http, small[: plan["pickups"]], tokens[0]))
    listed = ", ".join(f"'{uuid.UUID(i)}'" for i in ids)  # the API's ids, parsed: nothing else gets in
    query = (
        "select string_agg((extract(epoch from t.started_at - t.enqueued_at) * 1000)::text, ' ') "  # noqa: S608
        "from django_tasks_database_dbtaskresult t join chat_roomexport e on e.task_id = t.id::text "
        f"where e.id in ({listed})"
    )
    pickups = stack.sql(query)
    pickup_ms = [float(v) for v in pickups.split()]
    # Throughput: small exports, as many at once as the users may ask.
    batch = [(token, slug) for token in tokens[: plan["throughput_users"]] for slug in small[plan["pickups"] :]]
    started = time.monotonic()
    asyncio.run(tasks.export_all(stack.http, batch))
    took = time.monotonic() - started
    found = {
        "modes": modes,
        "export_messages": plan["export_messages"],
        "pickup_ms_median": statistics.median(pickup_ms),
        "pickup_ms_max": max(pickup_ms),
        "pickups": len(pickup_ms),
        "small_jobs": len(batch),
        "jobs_per_second": len(batch) / took,
    }
    print(f"bench: tasks {found}", flush=True)
    return found


def run_http(stack: BenchStack, workers: int, plan: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    endpoints = {"hello": "/api/hello/", "messages (Postgres)": "/api/rooms/bench/messages/"}
    for name, command, replicas, env in servers(workers):
        switch = stack.serve(command, replicas, env)
        print(f"bench: {name} up in {switch:.1f} s", flush=True)
        http_load.wrk(f"{stack.http}/api/hello/", 16, 1 if plan["seconds"] < 2 else 3)  # warm-up
        for endpoint, path in endpoints.items():
            for connections in plan["concurrency"]:
                watcher = http_load.ConnectionWatcher(stack)
                with watcher:
                    runs = [
                        http_load.wrk(f"{stack.http}{path}", connections, plan["seconds"])
                        for _ in range(plan["repeats"])
                    ]
                result = http_load.median_of(runs)
                rows.append(
                    {
                        "server": name,
                        "endpoint": endpoint,
                        "connections": connections,
                        "pg_peak": watcher.peak,
                        **asdict(result),
                    }
                )
                print(f"bench: {name} {endpoint} c={connections}: {result}", flush=True)
    # The ceiling: nginx alone answers the hello JSON.
    for connections in plan["concurrency"]:
        runs = [
            http_load.wrk(f"http://127.0.0.1:{stack.ceiling_port}/api/hello/", connections, plan["seconds"])
            for _ in range(plan["repeats"])
        ]
        result = http_load.median_of(runs)
        rows.append(
            {
                "server": "nginx alone (return 200)",
                "endpoint": "hello",
                "connections": connections,
                "pg_peak": 0,
                **asdict(result),
            }
        )
        print(f"bench: nginx alone c={connections}: {result}", flush=True)
    return rows


def run_fanout(stack: BenchStack, token: str, plan: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for backend in ("core", "pubsub"):
        stack.serve(STACK, env={"CHANNEL_LAYER_BACKEND": backend})
        for receivers in plan["receivers"]:
            for via in ("rest", "socket"):
                run = sockets.fanout(
                    stack.http,
                    stack.ws,
                    f"fanout-{backend}",
                    token,
                    receivers=receivers,
                    messages=plan["messages"],
                    via=via,
                    app_cpu_seconds=stack.app_cpu_seconds,
                )
                result = asyncio.run(run)
                rows.append({"layer": backend, "via": via, **asdict(result)})
                print(f"bench: fan-out {backend} via {via}: {result}", flush=True)
    return rows


def run_capacity(stack: BenchStack, plan: dict[str, Any]) -> dict[str, Any]:
    stack.serve(STACK)

    async def measure() -> dict[str, Any]:
        app_before, nginx_before = stack.rss_kib("app", "gunicorn"), stack.nginx_rss_kib()
        result, held = await sockets.hold_idle_sockets(stack.nginx_ws_direct(), plan["idle_sockets"])
        app_after, nginx_after = stack.rss_kib("app", "gunicorn"), stack.nginx_rss_kib()
        await sockets.close_all(held)
        return {
            **asdict(result),
            "app_rss_before_mib": app_before / 1024,
            "app_rss_after_mib": app_after / 1024,
            "nginx_rss_before_mib": nginx_before / 1024,
            "nginx_rss_after_mib": nginx_after / 1024,
        }

    found = asyncio.run(measure())
    print(f"bench: capacity {found}", flush=True)
    return found


def run_socket_memory(stack: BenchStack, plan: dict[str, Any]) -> dict[str, Any]:
    """bench/socket_memory.py in a one-off container of the app image, on the stack's
    network (its Redis)."""
    stack.serve(STACK)  # the image's configuration, for the one-off container's too
    script = Path(__file__).with_name("socket_memory.py")
    out = stack.compose(
        "run",
        "--rm",
        "--no-deps",
        "-T",
        "--volume",
        f"{script}:/bench/socket_memory.py:ro",
        "app",
        "python",
        "/bench/socket_memory.py",
        str(plan["memory_sockets"]),
    ).stdout
    found: dict[str, Any] = json.loads(next(line for line in out.splitlines() if line.startswith('{"sockets"')))
    print(f"bench: socket memory {found}", flush=True)
    return found


def run_profile(stack: BenchStack, token: str, plan: dict[str, Any]) -> list[dict[str, Any]]:
    """py-spy on one worker under each load: sampling starts `delay` seconds in."""

    def sample(load: str, run: Callable[[], object], delay: float) -> dict[str, Any]:
        pid = stack.app_container_pids()[0]
        thread = threading.Thread(target=run)
        thread.start()
        time.sleep(delay)
        try:
            top, why = ops.profile_worker(pid, plan["profile_seconds"]), ""
        except (subprocess.CalledProcessError, FileNotFoundError) as error:
            top, why = {"inclusive": [], "self": [], "roles": []}, f"py-spy failed: {error}"
        thread.join()
        return {"load": load, "top": top, "error": why}

    stack.serve(STACK)
    seconds = plan["profile_seconds"]
    profiles = [
        sample(f"wrk, 64 connections, `{path}`", partial(http_load.wrk, f"{stack.http}{path}", 64, seconds + 4), 2)
        for path in ("/api/hello/", "/api/rooms/bench/messages/")
    ]
    # A message posted every 0.25 s to a room of the largest fan-out, for longer than the
    # sampling, which starts once the receivers are connected (a few seconds).
    receivers = max(plan["receivers"])
    connecting = 6.0 if receivers >= 1000 else 2.0  # seconds until every receiver is connected
    fanout = sockets.fanout(
        stack.http,
        stack.ws,
        "fanout-core",
        token,
        receivers=receivers,
        messages=int((seconds + connecting + 4) / 0.25),
        via="rest",
        app_cpu_seconds=stack.app_cpu_seconds,
    )
    profiles.append(
        sample(f"fan-out to {receivers} sockets, a post every 0.25 s", partial(asyncio.run, fanout), connecting)
    )
    return profiles


if __name__ == "__main__":
    sys.exit(main())
