"""The variables the code reads, the ones compose passes and the ones `.env.example`
documents agree, and each optional one has its default in one place: the code that reads
it (compose passes `${NAME:-}`). Read from the files themselves, so a variable added to
one and forgotten in another fails here."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from tests.support import (
    ROOT,
    nginx_defaults,
    nginx_derived,
    variables_nginx_derives_from,
    variables_read_by_app_code,
    variables_read_by_nginx,
)

COMPOSE_FILES = ["docker-compose.yml", "docker-compose.tls.yml", "docker-compose.dev.yml"]

# Read by code but set by the compose files themselves, never by an operator.
SET_BY_COMPOSE = {
    "POSTGRES_HOST": "the compose service name",
    "REDIS_URL": "the compose service address (its password is REDIS_PASSWORD)",
    "FORWARDED_ALLOW_IPS": "nginx's fixed address (NGINX_EDGE_ADDRESS)",
    "DJANGO_HTTPS": "docker-compose.tls.yml turns it on with TLS",
    "NGINX_TLS": "docker-compose.tls.yml turns it on",
}
# Read by nginx, set only where it runs elsewhere (defaults fit compose).
SET_BY_OTHER_DEPLOYMENTS = {
    "NGINX_APP_HOST": "the app Service's full DNS name under Kubernetes",
    "NGINX_HTTP_LISTEN": "an unprivileged port under Kubernetes, where nginx is not root",
}
# Read by the app's code, deliberately not passed by compose.
NOT_PASSED_BY_COMPOSE = {
    "POSTGRES_PORT": "compose's Postgres listens on its default port; for a database elsewhere",
}
# Interpolated by compose with a default of its own: values only compose uses.
COMPOSE_OWNED_DEFAULTS = {
    "HTTP_BIND_IP": "the host address nginx is published on",
    "HTTP_PORT": "the host port nginx is published on (nginx is told it)",
    "HTTPS_PORT": "the host port HTTPS is published on (nginx is told it)",
    "TLS_CERT_DIR": "the folder mounted into nginx",
    "EDGE_SUBNET": "the nginx-app network's addresses",
    "EDGE_DYNAMIC_RANGE": "the part of them the app replicas get",
    "NGINX_EDGE_ADDRESS": "nginx's address in it (the app believes its X-Forwarded-For)",
    "APP_MEMORY_LIMIT": "a container limit",
    "NGINX_MEMORY_LIMIT": "a container limit",
    "POSTGRES_MEMORY_LIMIT": "a container limit",
    "REDIS_MEMORY_LIMIT": "a container limit",
    "APP_IMAGE": "an image name",
    "PROXY_IMAGE": "an image name",
    "APP_TAG": "an image tag",
}
# Documented in .env.example but read by Docker Compose itself.
READ_BY_COMPOSE_ITSELF = {"COMPOSE_FILE"}


def compose_environment(service: str) -> dict[str, str]:
    """What the compose files (merged in order) pass to `service`, uninterpolated."""
    passed: dict[str, str] = {}
    for name in COMPOSE_FILES:
        services: dict[str, Any] = yaml.safe_load((ROOT / name).read_text())["services"]
        passed.update({key: str(value) for key, value in services.get(service, {}).get("environment", {}).items()})
    return passed


def compose_interpolations() -> dict[str, str | None]:
    """Each variable compose interpolates, with the default it writes (None: `:?` required)."""
    found: dict[str, str | None] = {}
    for name in COMPOSE_FILES:
        text = "\n".join(line for line in (ROOT / name).read_text().splitlines() if not line.lstrip().startswith("#"))
        for variable, operator, value in re.findall(r"\$\{(\w+)(?::([-?]))?([^}]*)\}", text):
            found[variable] = value if operator == "-" else None
    return found


def documented() -> dict[str, bool]:
    """.env.example's variables: True where set, False where commented out (optional)."""
    lines = (ROOT / ".env.example").read_text().splitlines()
    found = {}
    for line in lines:
        match = re.fullmatch(r"(# )?([A-Z][A-Z0-9_]+)=.*", line)
        if match:
            found[match.group(2)] = match.group(1) is None
    return found


def test_every_variable_the_app_reads_is_passed_to_it_by_compose() -> None:
    passed = set(compose_environment("app")) | SET_BY_COMPOSE.keys() | NOT_PASSED_BY_COMPOSE.keys()
    assert variables_read_by_app_code() - passed == set()


def test_compose_passes_the_app_nothing_it_does_not_read() -> None:
    assert set(compose_environment("app")) - variables_read_by_app_code() == set()


def test_every_variable_nginx_reads_is_passed_and_has_a_default() -> None:
    read = variables_read_by_nginx() - nginx_derived()
    passed = set(compose_environment("nginx"))
    assert read - passed - SET_BY_COMPOSE.keys() - SET_BY_OTHER_DEPLOYMENTS.keys() == set()
    assert read - set(nginx_defaults()) == set()
    assert variables_nginx_derives_from() - passed == set()
    assert passed - read - variables_nginx_derives_from() == set()


def test_every_variable_compose_interpolates_is_documented_and_nothing_else() -> None:
    interpolated = set(compose_interpolations())
    assert interpolated - set(documented()) == set()
    assert set(documented()) - interpolated - READ_BY_COMPOSE_ITSELF == set()


def test_no_default_is_written_twice() -> None:
    """Compose writes a default only for what it alone uses; the code owns the rest."""
    defaults = {name: value for name, value in compose_interpolations().items() if value}
    assert set(defaults) == set(COMPOSE_OWNED_DEFAULTS)


def test_env_example_sets_only_what_is_required_or_a_local_try_needs() -> None:
    required = {name for name, value in compose_interpolations().items() if value is None}
    set_in_example = {name for name, is_set in documented().items() if is_set}
    # DJANGO_ENV=local: the explicit opt-in to the example's placeholder secrets.
    assert set_in_example == required | {"DJANGO_ENV"}


@pytest.mark.parametrize("name", sorted(nginx_defaults()))
def test_env_example_shows_nginx_defaults_as_they_are(name: str) -> None:
    example = (ROOT / ".env.example").read_text()
    if name in COMPOSE_OWNED_DEFAULTS or name in SET_BY_COMPOSE or name in SET_BY_OTHER_DEPLOYMENTS:
        return  # compose passes its own value (the published port, the TLS switch)
    assert f"# {name}={nginx_defaults()[name]}\n" in example
