"""The compose stack, booted from the project's own files as its own compose project
(`mainkode-e2e`) on a free host port, so it never collides with a stack a developer
already runs; removed with its volumes afterwards."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import free_port

ROOT = Path(__file__).resolve().parents[2]
PROJECT = "mainkode-e2e"
pytestmark = pytest.mark.stack


@dataclass
class Stack:
    env_file: Path
    port: int

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def compose(self, *args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        command = ["docker", "compose", "--project-name", PROJECT, "--env-file", str(self.env_file), *args]
        # Compose prefers the shell's variables to the env file's: drop the ones the file
        # sets, so the stack runs on exactly that file (not on the app tests' environment).
        defined = {line.split("=", 1)[0] for line in self.env_file.read_text().splitlines() if "=" in line}
        env = {key: value for key, value in os.environ.items() if key not in defined}
        result = subprocess.run(
            command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False
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


def leftovers() -> dict[str, list[str]]:
    """Containers, volumes and networks that still carry the e2e project's label."""
    label = f"label=com.docker.compose.project={PROJECT}"
    found = {}
    for kind, command in {
        "containers": ["docker", "ps", "--all", "--quiet", "--filter", label],
        "volumes": ["docker", "volume", "ls", "--quiet", "--filter", label],
        "networks": ["docker", "network", "ls", "--quiet", "--filter", label],
    }.items():
        found[kind] = subprocess.run(command, capture_output=True, text=True, check=True).stdout.split()
    return found


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    port = free_port()
    env_file = tmp_path_factory.mktemp("stack") / "e2e.env"
    overrides = {
        "HTTP_PORT": str(port),
        "APP_TAG": "e2e",  # own image tags: a developer's images stay as they are
        "GUNICORN_WORKERS": "2",
    }
    lines = [
        line for line in (ROOT / ".env.example").read_text().splitlines() if line.split("=", 1)[0] not in overrides
    ]
    env_file.write_text("\n".join(lines + [f"{key}={value}" for key, value in overrides.items()]) + "\n")
    stack = Stack(env_file, port)
    stack.compose("down", "--volumes", "--remove-orphans", check=False)  # a previous run killed midway
    try:
        # Two app replicas of two workers each: four processes for the room test.
        stack.compose("up", "--detach", "--wait", "--build", "--scale", "app=2", timeout=900)
        yield stack
    finally:
        logs = stack.compose("logs", "--no-color", "--tail", "60", check=False).stdout
        stack.compose("down", "--volumes", "--remove-orphans", "--timeout", "20", check=False)
        left = leftovers()
        assert not any(left.values()), f"the e2e stack left {left} behind\n{logs}"
