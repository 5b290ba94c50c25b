"""Scenario 5: operations timings, and where a worker's time goes (py-spy)."""

from __future__ import annotations

import collections
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.stack import PROJECT, BenchStack
from tests.sources import ROOT

PY_SPY = str(Path(sys.executable).with_name("py-spy"))


def image_mib(reference: str) -> float:
    size = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{.Size}}", reference], capture_output=True, text=True, check=True
    ).stdout
    return int(size) / 2**20


def rebuild_after_one_line_edit() -> float:
    """Seconds to rebuild the app image after a one-line edit, in a copy of the checkout
    (the build cache of the real one is reused; the checkout itself is not touched)."""
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout
    with tempfile.TemporaryDirectory() as copy:
        packed = subprocess.run(
            ["tar", "--null", "-T", "-", "-cf", "-"], cwd=ROOT, input=files, capture_output=True, check=True
        ).stdout
        subprocess.run(["tar", "-xf", "-"], cwd=copy, input=packed, check=True)
        views = Path(copy, "app/chat/views.py")
        views.write_text(views.read_text() + f"# edited by scripts/bench at {time.time()}\n")
        tag = "mainkode-example/app:bench-edit"
        started = time.monotonic()
        subprocess.run(
            ["docker", "build", "--quiet", "--target", "app", "--tag", tag, copy], capture_output=True, check=True
        )
        took = time.monotonic() - started
        subprocess.run(["docker", "image", "rm", tag], capture_output=True, check=False)
    return took


def cold_up(stack: BenchStack, command: str) -> tuple[float, list[tuple[float, str, str]]]:
    """`down --volumes`, then `up --wait` of docker-compose.yml alone (as a user runs it,
    without the bench's layer) with the images already built: a first boot (Postgres
    initdb, migrations, every healthcheck green). Returns its seconds and its timeline:
    when each service's container was created, started, healthy or exited, in seconds
    from the `up` (Docker's own container events). Leaves the bench stack up again."""
    stack.server_env, stack.replicas = {"BENCH_APP_COMMAND": command}, 1
    stack.compose("down", "--volumes", "--remove-orphans")
    since = time.time()
    started = time.monotonic()
    stack.compose("up", "--detach", "--wait", files=("docker-compose.yml",))
    took = time.monotonic() - started
    events = subprocess.run(
        [
            "docker",
            "events",
            "--since",
            f"{since:.3f}",
            "--until",
            f"{time.time():.3f}",
            "--filter",
            "type=container",
            "--filter",
            f"label=com.docker.compose.project={PROJECT}",
            "--format",
            '{{.TimeNano}} {{index .Actor.Attributes "com.docker.compose.service"}} {{.Status}}',
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    timeline = []
    for line in events.splitlines():
        nanos, service, status = line.split(" ", 2)
        status = status.removeprefix("health_status: ")
        if status in ("create", "start", "healthy", "die"):
            timeline.append((int(nanos) / 1e9 - since, service, status))
    stack.compose("down", "--volumes", "--remove-orphans", files=("docker-compose.yml",))
    stack.compose("up", "--detach", "--wait")
    return took, timeline


def profile_worker(pid: int, seconds: int) -> dict[str, list[tuple[str, float]]]:
    """py-spy samples one worker (from the host: the container has no ptrace capability).
    Samples of a thread waiting (the event loop in epoll, a pool thread waiting for work or
    for a connection) are left out. Returns the functions with the largest share of the
    rest: on the stack at all (inclusive), and running themselves (self); and the share of
    each thread's role (the event loop, the HTTP threads, others)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp, "stacks.txt")
        subprocess.run(
            [
                PY_SPY,
                "record",
                "--pid",
                str(pid),
                "--duration",
                str(seconds),
                "--rate",
                "100",
                "--format",
                "raw",
                "--output",
                str(out),
            ],
            capture_output=True,
            check=True,
            timeout=seconds + 60,
        )
        inclusive: collections.Counter[str] = collections.Counter()
        own: collections.Counter[str] = collections.Counter()
        roles: collections.Counter[str] = collections.Counter()
        total = 0
        for line in out.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if not count.isdigit():
                continue
            frames = stack.split(";")
            if any(wait in frames[-1] for wait in WAITING):
                continue
            total += int(count)
            own[frames[-1]] += int(count)
            roles[_role(frames)] += int(count)
            for frame in set(frames):
                inclusive[frame] += int(count)
    if not total:
        return {"inclusive": [], "self": [], "roles": []}
    return {
        "inclusive": [(frame, 100 * n / total) for frame, n in inclusive.most_common(40)],
        "self": [(frame, 100 * n / total) for frame, n in own.most_common(20)],
        "roles": [(role, 100 * n / total) for role, n in roles.most_common()],
    }


# Leaf frames of a waiting thread: uvloop's run_forever is C code, so an event loop
# waiting in epoll shows as the line that started it.
WAITING = ("concurrent/futures/thread.py:90)", "Condition.wait", "Event.wait", "Runner.run (asyncio/runners.py:118)")


def _role(frames: list[str]) -> str:
    if any("thread_handler (asgiref" in f or "_bootstrap" in f for f in frames):
        return "HTTP threads (Django)" if any("respond (core/http_threads" in f for f in frames) else "other threads"
    return "event loop (uvicorn, Channels, the access log)"
