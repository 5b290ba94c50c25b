"""A compose stack booted from the project's own files as its own compose project, on a
free host port, so it never collides with a stack a developer already runs; removed with
its volumes afterwards. Helpers for the stack tests (the fixtures are in conftest.py)."""

from __future__ import annotations

import json
import re
import ssl
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.clients import OnLoopback
from tests.sources import ROOT, environment_for, write_env_file

PROJECT = "mainkode-e2e"


@dataclass
class Stack(OnLoopback):
    project: str
    env_file: Path
    port: int
    files: tuple[str, ...] = ("docker-compose.yml",)
    https_port: int | None = None
    profiles: tuple[str, ...] = ()

    def flags(self) -> list[str]:
        """The compose flags that select this stack (for `docker compose` and scripts/)."""
        files = [arg for name in self.files for arg in ("--file", name)]
        profiles = [arg for name in self.profiles for arg in ("--profile", name)]
        return ["--project-name", self.project, *files, *profiles, "--env-file", str(self.env_file)]

    def env(self) -> dict[str, str]:
        return environment_for(self.env_file)

    def env_value(self, name: str) -> str:
        """What the stack's env file sets `name` to."""
        lines = self.env_file.read_text().splitlines()
        return next(line.split("=", 1)[1] for line in lines if line.startswith(f"{name}="))

    def compose(self, *args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        command = ["docker", "compose", *self.flags(), *args]
        result = subprocess.run(
            command, cwd=ROOT, env=self.env(), capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}")
        return result

    def containers(self) -> list[dict[str, object]]:
        out = self.compose("ps", "--all", "--format", "json").stdout.strip()
        # Compose prints one JSON object per line (or one array, depending on version).
        if out.startswith("["):
            return list(json.loads(out))
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def log_lines(self, service: str, since: str | None = None) -> list[str]:
        """The non-empty lines a service logged."""
        args = ["logs", "--no-color", "--no-log-prefix", *(["--since", since] if since else []), service]
        return [line for line in self.compose(*args).stdout.splitlines() if line]

    def nginx_errors(self, since: str | None = None) -> list[str]:
        """nginx's error-log lines (upstream failures among them): for failure messages."""
        return error_lines(self.log_lines("nginx", since))

    def log_records(self, service: str, since: str | None = None) -> list[dict[str, object]]:
        """The JSON lines a service logged (other lines skipped)."""
        return json_records(self.log_lines(service, since))


def error_lines(lines: list[str]) -> list[str]:
    """nginx's error and warning lines among `lines`, for failure messages: the first 10
    (what began it) and the last 10."""
    found = [line for line in lines if "[error]" in line or "[warn]" in line]
    return found if len(found) <= 20 else [*found[:10], f"... {len(found) - 20} more ...", *found[-10:]]


def json_records(lines: list[str]) -> list[dict[str, object]]:
    """The lines that are JSON objects. Compose 2.26 puts an ANSI erase sequence before
    each line."""
    records = []
    for line in lines:
        start = line.find("{")
        if start >= 0:
            try:
                records.append(json.loads(line[start:]))
            except json.JSONDecodeError:
                continue
    return records


GIXY = str(Path(sys.executable).with_name("gixy"))  # the virtualenv's, whatever PATH says


def gixy(config_dump: str, folder: Path) -> subprocess.CompletedProcess[str]:
    """gixy-ng over an `nginx -T` dump, from its first `# configuration file` line on (it
    reads the dump's files as one config only when nothing precedes them)."""
    start = config_dump.index("# configuration file ")
    dump = folder / "nginx-T.conf"
    dump.write_text(config_dump[start:])
    return subprocess.run([GIXY, str(dump)], capture_output=True, text=True, check=False)


def rendered_nginx_config(stack: Stack) -> str:
    dump = stack.compose("exec", "-T", "nginx", "nginx", "-T")
    assert "# configuration file /etc/nginx/conf.d/locations.conf:" in dump.stdout
    return dump.stdout


def leftovers(project: str) -> dict[str, list[str]]:
    """Containers, volumes and networks that still carry the project's label."""
    label = f"label=com.docker.compose.project={project}"
    found = {}
    for kind, command in {
        "containers": ["docker", "ps", "--all", "--quiet", "--filter", label],
        "volumes": ["docker", "volume", "ls", "--quiet", "--filter", label],
        "networks": ["docker", "network", "ls", "--quiet", "--filter", label],
    }.items():
        found[kind] = subprocess.run(command, capture_output=True, text=True, check=True).stdout.split()
    return found


@contextmanager
def booted(stack: Stack, overrides: dict[str, str], scale: int) -> Iterator[Stack]:
    """Write the env file (.env.example with `overrides`), `up --build --wait`, and at the
    end `down --volumes`, failing if anything of the project is left."""
    write_env_file(stack.env_file, overrides)
    stack.compose("down", "--volumes", "--remove-orphans", check=False)  # a previous run killed midway
    try:
        stack.compose("up", "--detach", "--wait", "--build", "--scale", f"app={scale}", timeout=900)
        yield stack
    finally:
        logs = stack.compose("logs", "--no-color", "--tail", "60", check=False).stdout
        stack.compose("down", "--volumes", "--remove-orphans", "--timeout", "20", check=False)
        left = leftovers(stack.project)
        assert not any(left.values()), f"the stack {stack.project} left {left} behind\n{logs}"


def client_tls(stack: Stack) -> ssl.SSLContext:
    """Trusts exactly the stack's self-signed certificate."""
    return ssl.create_default_context(cafile=str(Path(stack.env_value("TLS_CERT_DIR")) / "tls.crt"))


def readiness(stack: Stack) -> tuple[int, dict[str, object]]:
    """The app's /readyz, asked on nginx's internal port (the public one does not serve it)."""
    result = stack.compose(
        "exec", "-T", "nginx", "curl", "--silent", "--max-time", "15", "--write-out", "\n%{http_code}",
        "http://127.0.0.1:8081/readyz",
    )  # fmt: skip
    body, status = result.stdout.rsplit("\n", 1)
    return int(status), json.loads(body)


def create_user(stack: Stack) -> tuple[str, str]:
    """A new user of the stack (staff, as `createsuperuser` makes it): name and password."""
    username, password = f"e2e-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    stack.compose(
        "exec", "-T", "-e", f"DJANGO_SUPERUSER_PASSWORD={password}", "app",
        "python", "manage.py", "createsuperuser", "--noinput", "--username", username, "--email", "e2e@example.com",
    )  # fmt: skip
    return username, password


def log_in(stack: Stack, user: tuple[str, str]) -> str:
    """An API token of the user."""
    response = httpx.post(f"{stack.http}/api/auth/token/", json={"username": user[0], "password": user[1]})
    assert response.status_code == 200, response.text
    return str(response.json()["token"])


def create_room(stack: Stack, token: str) -> str:
    slug = f"e2e-{uuid.uuid4().hex[:8]}"
    response = httpx.post(
        f"{stack.http}/api/rooms/", json={"slug": slug, "title": "E2E"}, headers={"Authorization": f"Token {token}"}
    )
    assert response.status_code == 201, response.text
    return slug


def write_fast_prometheus_config(folder: Path) -> None:
    """prometheus/'s configuration and rules as shipped, but scraped and evaluated every
    second and each rule's `for` 3 s: a rule the tests force fires within seconds. (Its
    shipped timings have promtool's unit tests: prometheus/alerts.test.yml.)"""
    config = (ROOT / "prometheus" / "prometheus.yml").read_text()
    config = re.sub(r"(scrape_interval|evaluation_interval|refresh_interval): \d+s", r"\1: 1s", config)
    (folder / "prometheus.yml").write_text(config)
    rules = re.sub(r"\bfor: \d+[smh]", "for: 3s", (ROOT / "prometheus" / "alerts.yml").read_text())
    (folder / "alerts.yml").write_text(rules)
    for file in folder.iterdir():
        file.chmod(0o644)  # read by Prometheus's user in the container
