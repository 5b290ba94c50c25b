"""scripts/bench [--smoke] [--out DIR]: run every scenario against the stack on this
machine, print the figures, and write DIR/benchmarks.md and its chart (DIR: docs/)."""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from tests.bench import http_load, ops, report, sockets
from tests.bench.stack import BenchStack
from tests.support import ROOT

STACK = "gunicorn mainkode_example.asgi:application"  # the image's own command


def servers(workers: int) -> list[tuple[str, str, int, dict[str, str]]]:
    """(name, command, replicas, app env): the same app, the same process count, behind the
    same nginx."""
    return [
        ("this stack: Gunicorn + UvicornWorker", STACK, 1, {}),
        ("this stack, DJANGO_HTTP_HANDLER=asgi", STACK, 1, {"DJANGO_HTTP_HANDLER": "asgi"}),
        ("Gunicorn sync WSGI workers", "gunicorn mainkode_example.wsgi:application --worker-class sync", 1, {}),
        (
            f"uvicorn --workers {workers}",
            f"uvicorn mainkode_example.asgi:application --host 0.0.0.0 --port 8000 --workers {workers} "
            "--loop uvloop --http httptools --ws websockets-sansio --lifespan off --no-access-log "
            "--proxy-headers --forwarded-allow-ips *",
            1,
            {},
        ),
        (
            f"daphne ({workers} replicas of one process)",
            "daphne --bind 0.0.0.0 --port 8000 --proxy-headers mainkode_example.asgi:application",
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
    args = parser.parse_args()
    smoke: bool = args.smoke
    workers = os.cpu_count() or 2
    plan = {
        "concurrency": [8] if smoke else [16, 64, 200],
        "seconds": 1.0 if smoke else 5.0,
        "repeats": 1 if smoke else 3,
        "receivers": [10] if smoke else [100, 1000],
        "messages": 3 if smoke else 20,
        "idle_sockets": 200 if smoke else 10_000,
        "profile_seconds": 2 if smoke else 10,
    }
    results: dict[str, object] = {"plan": plan, "smoke": smoke, "workers": workers}
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        stack = BenchStack(Path(tmp), workers)
        stack.write_env()
        try:
            print(f"bench: building and starting the stack (project mainkode-bench, port {stack.port})", flush=True)
            stack.up(STACK)
            token = stack.compose("exec", "-T", "app", "python", "manage.py", "shell", "-c", FIXTURES).stdout.split()[
                -1
            ]
            results["machine"] = machine(stack)
            scenarios: dict[str, Callable[[], object]] = {
                "http": lambda: run_http(stack, workers, plan),
                "fanout": lambda: run_fanout(stack, token, plan),
                "profile": lambda: run_profile(stack, plan),
                "capacity": lambda: run_capacity(stack, plan),
                "ops": lambda: run_ops(stack),
            }
            for name, scenario in scenarios.items():
                try:
                    results[name] = scenario()
                except Exception as error:
                    results["failed"] = {**results.get("failed", {}), name: repr(error)[:2000]}  # type: ignore[dict-item]
                    print(f"bench: scenario {name} failed: {error!r}", flush=True)
                    stack.serve(STACK)  # a known state for the next one
        finally:
            stack.down()
    results["took_seconds"] = time.monotonic() - started
    args.out.mkdir(parents=True, exist_ok=True)
    written = report.write(results, args.out)
    print(f"bench: wrote {', '.join(str(p) for p in written)} in {results['took_seconds']:.0f} s")
    return 1 if "failed" in results else 0


def run_ops(stack: BenchStack) -> dict[str, float]:
    found = {
        "cold_up_seconds": ops.cold_up(stack, STACK),
        "rebuild_seconds": ops.rebuild_after_one_line_edit(),
        "app_image_mib": ops.image_mib("mainkode-example/app:bench"),
        "proxy_image_mib": ops.image_mib("mainkode-example/proxy:bench"),
    }
    print(f"bench: operations {found}", flush=True)
    return found


def run_http(stack: BenchStack, workers: int, plan: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    endpoints = {"hello": "/api/hello/", "messages (Postgres)": "/api/rooms/bench/messages/"}
    for name, command, replicas, env in servers(workers):
        switch = stack.serve(command, replicas, **env)
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
    stack.serve(STACK)
    return rows


def run_fanout(stack: BenchStack, token: str, plan: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for backend in ("core", "pubsub"):
        stack.serve(STACK, CHANNEL_LAYER_BACKEND=backend)
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
                )
                result = asyncio.run(run)
                rows.append({"layer": backend, "via": via, **asdict(result)})
                print(f"bench: fan-out {backend} via {via}: {result}", flush=True)
    stack.serve(STACK)
    return rows


def run_capacity(stack: BenchStack, plan: dict[str, Any]) -> dict[str, Any]:
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


def run_profile(stack: BenchStack, plan: dict[str, Any]) -> dict[str, Any]:
    pid = stack.app_container_pids()[0]
    load = threading.Thread(
        target=http_load.wrk, args=(f"{stack.http}/api/rooms/bench/messages/", 64, plan["profile_seconds"] + 4)
    )
    load.start()
    time.sleep(2)
    try:
        top = ops.profile_worker(pid, plan["profile_seconds"])
    except (subprocess.CalledProcessError, FileNotFoundError) as error:
        top, why = {"inclusive": [], "self": []}, f"py-spy failed: {error}"
    else:
        why = ""
    load.join()
    return {"endpoint": "/api/rooms/bench/messages/", "connections": 64, "top": top, "error": why}


if __name__ == "__main__":
    sys.exit(main())
