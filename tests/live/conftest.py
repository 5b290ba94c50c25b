"""Fixtures of the live tests: Gunicorn masters started on the host (servers.py), against
the test Postgres and Redis, and two users."""

from __future__ import annotations

import os
import signal
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.clients import free_port, wait_for_http
from tests.live.servers import APP_DIR, LiveServer, LiveUser, configured_command, documented_command, manage

pytestmark = pytest.mark.live


@pytest.fixture(scope="session")
def migrated_database() -> None:
    """The live servers use the test Postgres's own database (not pytest-django's)."""
    manage("migrate", "--noinput")


@pytest.fixture(scope="session")
def live_users(migrated_database: None) -> tuple[LiveUser, LiveUser]:
    """Two users, unique to this run (the database outlives a run)."""
    users = []
    for name in ("alice", "bob"):
        user = LiveUser(f"{name}-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex)
        manage(
            "createsuperuser",
            "--noinput",
            "--username",
            user.username,
            "--email",
            f"{user.username}@example.com",
            env={"DJANGO_SUPERUSER_PASSWORD": user.password},
        )
        users.append(user)
    return users[0], users[1]


@pytest.fixture(scope="module")
def start_gunicorn(migrated_database: None) -> Iterator[Callable[..., LiveServer]]:
    servers: list[LiveServer] = []

    def start(workers: int, *, configured: bool = False, log: Path | None = None, **env: str) -> LiveServer:
        """The design documents' command with `workers`, or (`configured`) the image's
        command reading gunicorn.conf.py, with GUNICORN_WORKERS=`workers`; its output in
        the file `log`, if given."""
        port = free_port()
        if configured:
            command, env = configured_command(port), {**env, "GUNICORN_WORKERS": str(workers)}
        else:
            command = documented_command(workers, port)
        output = log.open("wb") if log else None
        process = subprocess.Popen(command, cwd=APP_DIR, env={**os.environ, **env}, stdout=output, stderr=output)
        server = LiveServer(process, port)
        servers.append(server)
        wait_for_http(f"{server.http}/healthz", timeout=60)
        return server

    yield start
    for server in servers:
        server.process.send_signal(signal.SIGTERM)
    for server in servers:
        assert server.process.wait(timeout=40) == 0, "gunicorn did not shut down cleanly on SIGTERM"
