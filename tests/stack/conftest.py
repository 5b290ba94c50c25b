"""Fixtures of the stack tests: the stack as a user copies it, the same in production
mode with TLS, and a user with a token (helpers: compose.py)."""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Iterator

import pytest

from tests.clients import free_port
from tests.sources import ROOT
from tests.stack.compose import PROJECT, Stack, booted, create_user, log_in, write_fast_prometheus_config

pytestmark = pytest.mark.stack


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """.env.example as a user copies it (local mode), two app replicas of two workers each,
    with the monitoring profile (its Prometheus on timings of seconds: monitoring.compose.yml)."""
    port = free_port()
    prometheus_config = tmp_path_factory.mktemp("prometheus")
    write_fast_prometheus_config(prometheus_config)
    overrides = {
        "HTTP_PORT": str(port),
        "PROMETHEUS_PORT": str(free_port()),
        "TEST_PROMETHEUS_CONFIG_DIR": str(prometheus_config),
        "APP_TAG": "e2e",  # own image tags: a developer's images stay as they are
        "GUNICORN_WORKERS": "2",
        # The largest export test_tasks_stack.py downloads at once, and how many at once.
        "EXPORT_MAX_BYTES": str(20 * 2**20),
        "NGINX_DOWNLOADS_PER_ADDRESS": "6",
        # The load and fault tests send from one address far past the default rates; the
        # TLS stack keeps the defaults (test_outside_probe.py tests them).
        "NGINX_API_RATE": "5000r/s",
        "NGINX_API_BURST": "10000",
        "CHAT_ROOM_FRAME_RATE": "100000/second",
        "CHAT_ROOM_ADDRESS_FRAME_RATE": "100000/second",
        # A subnet of its own: the TLS stack and the benchmark's run beside it.
        "EDGE_SUBNET": "10.211.250.0/24",
        "EDGE_DYNAMIC_RANGE": "10.211.250.128/25",
        "NGINX_EDGE_ADDRESS": "10.211.250.2",
    }
    env_file = tmp_path_factory.mktemp("stack") / "e2e.env"
    files = ("docker-compose.yml", "tests/stack/monitoring.compose.yml")
    with booted(Stack(PROJECT, env_file, port, files, profiles=("monitoring",)), overrides, scale=2) as running:
        yield running


@pytest.fixture(scope="session")
def tls_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Production mode with real (random) secrets read from files (docker-compose.secrets.yml),
    TLS on with a self-signed certificate."""
    port, https_port = free_port(), free_port()
    certs = tmp_path_factory.mktemp("certs")
    subprocess.run([str(ROOT / "scripts" / "certs"), str(certs)], check=True, capture_output=True)
    secret_files = tmp_path_factory.mktemp("secrets")
    for name, length in (("django_secret_key", 50), ("postgres_password", 24), ("redis_password", 24)):
        (secret_files / name).write_text(secrets.token_urlsafe(length) + "\n")
        (secret_files / name).chmod(0o644)  # the containers' users read it (docs/operations.md)
    overrides = {
        "DJANGO_ENV": "production",
        "DJANGO_ADMIN_URL": "staff-area/",
        # Empty: docker-compose.secrets.yml passes the files instead.
        "DJANGO_SECRET_KEY": "",
        "POSTGRES_PASSWORD": "",
        "REDIS_PASSWORD": "",
        "SECRETS_DIR": str(secret_files),
        "HTTP_PORT": str(port),
        "HTTPS_PORT": str(https_port),
        "TLS_CERT_DIR": str(certs),
        "APP_TAG": "e2e",
        "GUNICORN_WORKERS": "1",
        "EDGE_SUBNET": "10.211.251.0/24",
        "EDGE_DYNAMIC_RANGE": "10.211.251.128/25",
        "NGINX_EDGE_ADDRESS": "10.211.251.2",
    }
    env_file = tmp_path_factory.mktemp("tls-stack") / "e2e-tls.env"
    files = ("docker-compose.yml", "docker-compose.tls.yml", "docker-compose.secrets.yml")
    with booted(Stack(f"{PROJECT}-tls", env_file, port, files, https_port), overrides, scale=1) as running:
        yield running


@pytest.fixture(scope="session")
def user(stack: Stack) -> tuple[str, str]:
    return create_user(stack)


@pytest.fixture(scope="session")
def token(stack: Stack, user: tuple[str, str]) -> str:
    return log_in(stack, user)
