"""Security of the production-mode stack (random secrets, TLS on): the stores refuse
clients without their passwords, the secrets appear in no image layer and no log line,
and an oversized WebSocket frame closes the socket with 1009."""

from __future__ import annotations

import asyncio
import subprocess

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


def env_value(stack: Stack, name: str) -> str:
    return next(
        line.split("=", 1)[1] for line in stack.env_file.read_text().splitlines() if line.startswith(f"{name}=")
    )


def test_postgres_and_redis_refuse_clients_without_their_passwords(tls_stack: Stack) -> None:
    result = tls_stack.compose("exec", "-T", "app", "python", "-c", NO_PASSWORD_PROBE, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "refused"


REDIS_ACL_PROBE = """
import os, redis
app = redis.Redis(host="redis", username="app", password=os.environ["REDIS_PASSWORD"], socket_timeout=5)
assert app.ping() and app.set("acl-probe", 1)
refused = []
for command in (("CONFIG", "GET", "*"), ("FLUSHALL",), ("DEBUG", "SLEEP", "0"), ("KEYS", "*"), ("SHUTDOWN",)):
    try:
        app.execute_command(*command)
    except redis.exceptions.ResponseError:  # NOPERM from the ACL (DEBUG: disabled outright too)
        refused.append(command[0])
try:
    redis.Redis(host="redis", password=os.environ["REDIS_PASSWORD"], socket_timeout=5).ping()
    refused.append("default user ON")
except (redis.exceptions.AuthenticationError, redis.exceptions.ResponseError):
    pass
print(" ".join(refused))
"""


def test_the_app_redis_user_cannot_administer_redis(tls_stack: Stack) -> None:
    result = tls_stack.compose("exec", "-T", "app", "python", "-c", REDIS_ACL_PROBE, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["CONFIG", "FLUSHALL", "DEBUG", "KEYS", "SHUTDOWN"]


def test_secrets_appear_in_no_image_layer_and_no_log(tls_stack: Stack) -> None:
    secrets = [env_value(tls_stack, name) for name in ("DJANGO_SECRET_KEY", "POSTGRES_PASSWORD", "REDIS_PASSWORD")]
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
    async def send_too_much() -> int | None:
        async with connect(
            f"wss://localhost:{tls_stack.https_port}/ws/chat/", ssl=client_tls(tls_stack), max_size=None
        ) as ws:
            await ws.send("x" * 70_000)  # WS_MAX_MESSAGE_BYTES is 65536
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 10)
            return closed.value.rcvd.code if closed.value.rcvd else None

    assert asyncio.run(send_too_much()) == 1009
