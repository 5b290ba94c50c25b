"""The variables the code reads, the ones compose passes and the ones `.env.example`
documents agree, and each optional one has its default in one place: the code that reads
it (compose passes `${NAME:-}`). Read from the files themselves, so a variable added to
one and forgotten in another fails here."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.sources import (
    ROOT,
    nginx_defaults,
    nginx_derived,
    secrets_read_by_app_code,
    variables_nginx_derives_from,
    variables_read_by_app_code,
    variables_read_by_nginx,
)

COMPOSE_FILES = ["docker-compose.yml", "docker-compose.tls.yml", "docker-compose.dev.yml", "docker-compose.secrets.yml"]
STACK_FILE = ROOT / "deploy" / "swarm" / "stack.yml"

# Read by code but set by the compose files themselves, never by an operator.
SET_BY_COMPOSE = {
    "POSTGRES_HOST": "the compose service name",
    "REDIS_URL": "the compose service address (its password is REDIS_PASSWORD)",
    "FORWARDED_ALLOW_IPS": "nginx's fixed address (NGINX_EDGE_ADDRESS)",
    "DJANGO_HTTPS": "docker-compose.tls.yml turns it on with TLS",
    "NGINX_TLS": "docker-compose.tls.yml turns it on",
    "EXPORT_SERVED_BY": "nginx, which sends export files from the files service",
}
# Read by nginx, set only where it runs elsewhere (defaults fit compose).
SET_BY_OTHER_DEPLOYMENTS = {
    "NGINX_APP_HOST": "the app Service's full DNS name under Kubernetes",
    "NGINX_HTTP_LISTEN": "an unprivileged port under Kubernetes, where nginx is not root",
    "NGINX_FILES_ADDRESS": "the files Service's full DNS name and port under Kubernetes",
}
# Read by the app's code, deliberately not passed by compose.
NOT_PASSED_BY_COMPOSE = {
    "POSTGRES_PORT": "compose's Postgres listens on its default port; for a database elsewhere",
    "GUNICORN_DRAIN_SECONDS": "0 under compose; the Swarm stack sets it (docs/design.md, Shutdown timings)",
    "TASKS_INLINE": "a benchmark's switch: bench/compose.yml passes it",
    "EXPORT_ROOT": "the folder the compose volume is mounted on (the image's default)",
}
# Interpolated by compose with a default of its own: values only compose uses.
COMPOSE_OWNED_DEFAULTS = {
    "HTTP_BIND_IP": "the host address nginx is published on",
    "HTTP_PORT": "the host port nginx is published on (nginx is told it)",
    "HTTPS_PORT": "the host port HTTPS is published on (nginx is told it)",
    "TLS_CERT_DIR": "the folder mounted into nginx",
    "SECRETS_DIR": "the folder of the secret files (docker-compose.secrets.yml)",
    "EDGE_SUBNET": "the nginx-app network's addresses",
    "EDGE_DYNAMIC_RANGE": "the part of them the app replicas get",
    "NGINX_EDGE_ADDRESS": "nginx's address in it (the app believes its X-Forwarded-For)",
    "APP_MEMORY_LIMIT": "a container limit",
    "NGINX_MEMORY_LIMIT": "a container limit",
    "POSTGRES_MEMORY_LIMIT": "a container limit",
    "REDIS_MEMORY_LIMIT": "a container limit",
    "LOG_MAX_SIZE": "a container log's rotation size",
    "LOG_MAX_FILES": "how many rotated files of a container's log are kept",
    "WORKER_MEMORY_LIMIT": "a container limit",
    "WORKER_REPLICAS": "the worker service's replicas",
    "WORKER_STOP_GRACE_PERIOD": "the worker service's stop grace period",
    "APP_IMAGE": "an image name",
    "PROXY_IMAGE": "an image name",
    "EXPORTERS_IMAGE": "an image name",
    "APP_TAG": "an image tag",
    "PROMETHEUS_BIND_IP": "the host address Prometheus is published on",
    "PROMETHEUS_PORT": "the host port Prometheus is published on",
    "PROMETHEUS_RETENTION": "a Prometheus flag",
    "PROMETHEUS_MEMORY_LIMIT": "a container limit",
}
# Documented in .env.example but read by Docker Compose itself.
READ_BY_COMPOSE_ITSELF = {"COMPOSE_FILE"}
# Interpolated by the Swarm stack alone, with its default there.
STACK_OWNED_DEFAULTS = {"APP_REPLICAS": "the app's replicas"}
# Set by the Swarm stack to a fixed value of its own.
SET_BY_THE_STACK = {"GUNICORN_DRAIN_SECONDS": "Swarm drops a stopping task from DNS at once"}
# Set by compose alone.
SET_BY_COMPOSE_ALONE = {
    "GUNICORN_EXIT_HOLD_SECONDS": "Docker's DNS keeps a container until it exits (docs/design.md, Shutdown timings)"
}
# Set by scripts/swarm-deploy, never by an operator.
SET_BY_SWARM_DEPLOY = {
    "REDIS_START_DIGEST": "names the Redis start script's config after its content",
    "POSTGRES_ROLES_DIGEST": "names the Postgres roles script's config after its content",
}


def compose_environment(service: str, files: list[str] = COMPOSE_FILES) -> dict[str, str]:
    """What the compose files (merged in order) pass to `service`, uninterpolated."""
    passed: dict[str, str] = {}
    for name in files:
        services: dict[str, Any] = yaml.safe_load((ROOT / name).read_text())["services"]
        passed.update({key: str(value) for key, value in services.get(service, {}).get("environment", {}).items()})
    return passed


def interpolations(path: Path) -> dict[str, str | None]:
    """Each variable a compose file interpolates, with the default it writes (None: `?` or
    `:?`, required)."""
    text = "\n".join(line for line in path.read_text().splitlines() if not line.lstrip().startswith("#"))
    return {
        variable: value if operator.endswith("-") else None
        # `$${...}` is a literal `${...}` for a container's shell, not compose's.
        for variable, operator, value in re.findall(r"(?<!\$)\$\{(\w+)(:?[-?])?([^}]*)\}", text)
    }


def compose_interpolations() -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for name in COMPOSE_FILES:
        found.update(interpolations(ROOT / name))
    return found


def stack_environment(service: str) -> dict[str, str]:
    services: dict[str, Any] = yaml.safe_load(STACK_FILE.read_text())["services"]
    return {key: str(value) for key, value in services[service].get("environment", {}).items()}


def as_files(environment: dict[str, str]) -> dict[str, str]:
    """`environment` with each secret the app reads passed as NAME_FILE instead of NAME."""
    return {
        (f"{name}_FILE" if name in secrets_read_by_app_code() else name): value for name, value in environment.items()
    }


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
    read = variables_read_by_app_code() | {f"{name}_FILE" for name in secrets_read_by_app_code()}
    assert set(compose_environment("app")) - read == set()


def test_compose_passes_every_secret_of_the_app_as_a_file_too() -> None:
    assert {f"{name}_FILE" for name in secrets_read_by_app_code()} <= set(compose_environment("app"))


@pytest.mark.parametrize("service", ["app", "worker", "migrate", "nginx"])
def test_the_swarm_stack_passes_what_compose_passes(service: str) -> None:
    """The same names (each secret as a file), and the same interpolation where compose
    interpolates: no second default. FORWARDED_ALLOW_IPS differs (stack.yml says why);
    the stack serves plain HTTP (docs/swarm.md: TLS), so the TLS file is left out."""
    compose = as_files(compose_environment(service, ["docker-compose.yml", "docker-compose.secrets.yml"]))
    stack = stack_environment(service)
    assert set(stack) - SET_BY_THE_STACK.keys() == set(compose) - SET_BY_COMPOSE_ALONE.keys()
    for name, value in stack.items():
        if name not in ("FORWARDED_ALLOW_IPS", *SET_BY_THE_STACK) and "${" in compose[name]:
            assert interpolations_of(value).keys() == interpolations_of(compose[name]).keys(), name
            defaults = {var: default for var, default in interpolations_of(value).items() if default}
            assert defaults.items() <= interpolations_of(compose[name]).items(), name


def interpolations_of(value: str) -> dict[str, str | None]:
    return {
        variable: default if operator.endswith("-") else None
        for variable, operator, default in re.findall(r"\$\{(\w+)(:?[-?])?([^}]*)\}", value)
    }


def test_the_swarm_stack_interpolates_only_documented_variables_with_compose_defaults() -> None:
    stack = interpolations(STACK_FILE)
    assert set(stack) - set(documented()) - SET_BY_SWARM_DEPLOY.keys() == set()
    compose = compose_interpolations()
    text = STACK_FILE.read_text()
    for name, default in set(re.findall(r"\$\{(\w+):-([^}]*)\}", text)):  # each one, not the last per name
        if name in STACK_OWNED_DEFAULTS:
            assert default, name
            assert f"# {name}={default}\n" in (ROOT / ".env.example").read_text()
        elif default:
            assert compose.get(name) == default, name


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
    assert set(documented()) - interpolated - READ_BY_COMPOSE_ITSELF - STACK_OWNED_DEFAULTS.keys() == set()


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


def test_in_development_every_service_of_the_app_image_runs_the_mounted_source_and_reloads() -> None:
    """docker-compose.dev.yml: each service that runs the app's code sees ./app, and each
    long-running one restarts when it changes (`--reload`); migrate runs once."""
    production = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    development = yaml.safe_load((ROOT / "docker-compose.dev.yml").read_text())["services"]
    of_the_app = [name for name, service in production.items() if service.get("build", {}).get("target") == "app"]
    assert {"app", "worker", "migrate"} <= set(of_the_app)
    for name in of_the_app:
        assert "./app:/app:ro" in development.get(name, {}).get("volumes", []), name
        if name != "migrate":
            assert "--reload" in development[name].get("command", []), name


@pytest.mark.parametrize("path", [ROOT / "docker-compose.yml", STACK_FILE], ids=["compose", "swarm"])
def test_every_service_rotates_its_log(path: Path) -> None:
    """Unrotated, one client flooding a log filled the host's disk (an outside probe)."""
    services = yaml.safe_load(path.read_text())["services"]
    for name, service in services.items():
        logging = service.get("logging", {})
        assert logging.get("driver") == "json-file", name
        assert {"max-size", "max-file"} <= set(logging.get("options", {})), name


def test_the_swarm_stack_s_django_environment_is_written_from_compose_s(tmp_path: Path) -> None:
    """scripts/sync-stack-env: the committed block is what it writes, and a hand edit is caught."""
    check = subprocess.run(["scripts/sync-stack-env", "--check"], cwd=ROOT, capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stderr
    copy = tmp_path / "repo"
    for name in ("docker-compose.yml", "deploy/swarm/stack.yml", "scripts/sync-stack-env"):
        (copy / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, copy / name)
    stack = copy / "deploy" / "swarm" / "stack.yml"
    stack.write_text(stack.read_text().replace("DB_POOL_TIMEOUT: ${DB_POOL_TIMEOUT:-}", 'DB_POOL_TIMEOUT: "5"'))
    edited = subprocess.run(
        ["scripts/sync-stack-env", "--check"], cwd=copy, capture_output=True, text=True, check=False
    )
    assert edited.returncode == 1
    assert "DB_POOL_TIMEOUT" in edited.stderr
    subprocess.run(["scripts/sync-stack-env"], cwd=copy, check=True)
    assert stack.read_text() == STACK_FILE.read_text()
