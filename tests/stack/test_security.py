"""Security of the production-mode stack (random secrets from files, TLS on): the stores
refuse clients without their passwords, the app's Postgres role is no superuser, the
secrets appear in no container's configuration, no image layer and no log line, and an
oversized WebSocket frame closes the socket with 1009."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.stack.compose import Stack, client_tls

pytestmark = pytest.mark.stack

NO_PASSWORD_PROBE = """
import psycopg, redis, sys
failures = []
try:
    psycopg.connect(host="postgres", dbname="mainkode", user="mainkode", password="wrong", connect_timeout=5)
    failures.append("postgres accepted a wrong password")
except psycopg.OperationalError as error:
    assert "password authentication failed" in str(error), error
try:
    redis.Redis(host="redis", socket_timeout=5).ping()
    failures.append("redis answered without a password")
except redis.exceptions.AuthenticationError:
    pass
print("; ".join(failures) or "refused")
"""


def secret_values(stack: Stack) -> list[str]:
    """The secrets of a stack that reads them from files (SECRETS_DIR, one file each)."""
    folder = next(
        line.split("=", 1)[1] for line in stack.env_file.read_text().splitlines() if line.startswith("SECRETS_DIR=")
    )
    return [path.read_text().strip() for path in sorted(Path(folder).iterdir())]


def test_postgres_and_redis_refuse_clients_without_their_passwords(tls_stack: Stack) -> None:
    result = tls_stack.compose("exec", "-T", "app", "python", "-c", NO_PASSWORD_PROBE, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "refused"


REDIS_ACL_PROBE = """
import os, redis
password = open(os.environ["REDIS_PASSWORD_FILE"]).read().strip()
app = redis.Redis(host="redis", username="app", password=password, socket_timeout=5)
assert app.ping() and app.set("acl-probe", 1)
refused = []
for command in (("CONFIG", "GET", "*"), ("FLUSHALL",), ("DEBUG", "SLEEP", "0"), ("KEYS", "*"), ("SHUTDOWN",)):
    try:
        app.execute_command(*command)
    except redis.exceptions.ResponseError:  # NOPERM from the ACL (DEBUG: disabled outright too)
        refused.append(command[0])
try:
    redis.Redis(host="redis", password=password, socket_timeout=5).ping()
    refused.append("default user ON")
except (redis.exceptions.AuthenticationError, redis.exceptions.ResponseError):
    pass
print(" ".join(refused))
"""


def test_the_app_redis_user_cannot_administer_redis(tls_stack: Stack) -> None:
    result = tls_stack.compose("exec", "-T", "app", "python", "-c", REDIS_ACL_PROBE, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["CONFIG", "FLUSHALL", "DEBUG", "KEYS", "SHUTDOWN"]


POSTGRES_ROLES_PROBE = """
import os, psycopg
password = open(os.environ["POSTGRES_PASSWORD_FILE"]).read().strip()
def connect(user, dbname="mainkode"):
    return psycopg.connect(
        host="postgres", dbname=dbname, user=user, password=password, connect_timeout=5, autocommit=True
    )
refused = []
app = connect("mainkode")
role = app.execute("SELECT rolsuper, rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname = current_user").fetchone()
assert role == (False, False, False), role
assert app.execute("SELECT count(*) FROM django_migrations").fetchone()[0] > 0  # it owns the schema
for name, statement in (
    ("copy-to-program", "COPY (SELECT 1) TO PROGRAM 'id'"),
    ("create-role", "CREATE ROLE intruder LOGIN"),
    ("read-server-file", "SELECT pg_read_file('/etc/passwd')"),
):
    try:
        app.execute(statement)
    except psycopg.errors.InsufficientPrivilege:
        refused.append(name)
for user, dbname, name in (("mainkode", "postgres", "other-database"), ("postgres", "mainkode", "superuser-login")):
    try:
        connect(user, dbname)
    except psycopg.OperationalError as error:
        assert "permission denied" in str(error) or "rejects connection" in str(error), error
        refused.append(name)
metrics = connect("metrics")
assert metrics.execute("SELECT pg_has_role('pg_monitor', 'member')").fetchone() == (True,)
try:
    metrics.execute("SELECT count(*) FROM chat_message")
except psycopg.errors.InsufficientPrivilege:
    refused.append("metrics-reads-messages")
print(" ".join(refused))
"""


def test_the_app_postgres_role_owns_its_database_and_nothing_more(tls_stack: Stack) -> None:
    """The third probe's M4: the app's role was a superuser. Now it owns its database and
    cannot run programs, read server files, create roles or reach another database; the
    superuser cannot log in over the network even with the password; the exporter's role
    reads statistics only."""
    result = tls_stack.compose("exec", "-T", "app", "python", "-c", POSTGRES_ROLES_PROBE, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "copy-to-program",
        "create-role",
        "read-server-file",
        "other-database",
        "superuser-login",
        "metrics-reads-messages",
    ]


def test_secrets_appear_in_no_container_configuration_no_image_layer_and_no_log(tls_stack: Stack) -> None:
    secrets = secret_values(tls_stack)
    assert len(secrets) == 3
    containers = [str(c["ID"]) for c in tls_stack.containers()]
    inspected = subprocess.run(["docker", "inspect", *containers], capture_output=True, text=True, check=True).stdout
    assert "/run/secrets/redis_password" in inspected  # the files' paths, never their content
    assert not [s for s in secrets if s in inspected]
    images = {str(c["Image"]) for c in tls_stack.containers() if c["Service"] in ("app", "nginx")}
    for image in images:
        history = subprocess.run(
            ["docker", "history", "--no-trunc", image], capture_output=True, text=True, check=True
        ).stdout
        inspect = subprocess.run(
            ["docker", "image", "inspect", image], capture_output=True, text=True, check=True
        ).stdout
        assert not [s for s in secrets if s in history or s in inspect], image
    logs = tls_stack.compose("logs", "--no-color").stdout
    assert logs
    assert not [s for s in secrets if s in logs]


def test_websocket_frame_over_the_size_limit_closes_with_1009(tls_stack: Stack) -> None:
    """Uncompressed (the server declines permessage-deflate), a frame far over the limit is
    still arriving when the app refuses it: the close frame must reach the client through
    nginx all the same (app/server/websocket.py)."""

    async def send_too_much(size: int) -> int | None:
        async with connect(
            f"wss://localhost:{tls_stack.https_port}/ws/chat/", ssl=client_tls(tls_stack), max_size=None
        ) as ws:
            try:
                await ws.send("x" * size)  # WS_MAX_MESSAGE_BYTES is 65536
                await asyncio.wait_for(ws.recv(), 10)
            except ConnectionClosed as closed:  # during the send or after it
                return closed.rcvd.code if closed.rcvd else None
            raise AssertionError("the frame was not refused")

    assert [asyncio.run(send_too_much(size)) for size in (70_000, 2_000_000, 2_000_000, 2_000_000)] == [1009] * 4
