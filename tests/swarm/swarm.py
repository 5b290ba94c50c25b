"""A real Docker Swarm for the tests: three Docker engines in containers (the `docker:dind`
image; one manager, two workers) on a network of their own, and a registry beside them
that stands in for the user's registry (the project's images) and for Docker Hub (the nodes
use it as their mirror, so `postgres:17` and `redis:8` resolve there). Each node is driven
with the host's CLI over TCP. Everything carries the run's label and is removed at the end."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from tests.clients import free_port

LABEL = "mainkode.test=swarm"
# What a node needs where --privileged is refused (the dind image's header): every
# capability but SYS_RESOURCE, no confinement, the host's cgroups.
NODE_FLAGS = [
    "--cap-add=ALL",
    "--cap-drop=SYS_RESOURCE",
    "--security-opt=seccomp=unconfined",
    "--security-opt=apparmor=unconfined",
    "--security-opt=systempaths=unconfined",
    "--cgroupns=host",
    "--volume=/sys/fs/cgroup:/sys/fs/cgroup:rw",
    "--tmpfs=/run",
]
STACK = "mainkode"


def run(
    *args: str,
    env: dict[str, str] | None = None,
    timeout: float = 300,
    check: bool = True,
    input_text: str | None = None,
) -> str:
    result = subprocess.run(
        args, capture_output=True, text=True, env=env, timeout=timeout, check=False, input=input_text
    )
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result.stdout


@dataclass
class Node:
    name: str
    address: str

    @property
    def host(self) -> str:
        return f"tcp://{self.address}:2375"

    def docker(self, *args: str, timeout: float = 300, check: bool = True) -> str:
        return run("docker", "--host", self.host, *args, timeout=timeout, check=check)

    def call(self, *args: str, input_text: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """A docker command on this node, whatever its outcome (stdout and stderr apart)."""
        command = ["docker", "--host", self.host, *args]
        return subprocess.run(command, input=input_text, capture_output=True, text=True, timeout=timeout, check=False)


@dataclass
class Swarm:
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:6])
    nodes: list[Node] = field(default_factory=list)
    registry_port: int = 0
    pushed: list[str] = field(default_factory=list)  # host tags made for the registry

    @property
    def prefix(self) -> str:
        return f"mainkode-swarm-{self.run_id}"

    @property
    def manager(self) -> Node:
        return self.nodes[0]

    @property
    def workers(self) -> list[Node]:
        return self.nodes[1:]

    def create(self, size: int = 3) -> None:
        network = self.prefix
        run("docker", "network", "create", "--label", LABEL, network)
        self.registry_port = free_port()
        run(
            "docker", "run", "--detach", "--label", LABEL, "--name", f"{self.prefix}-registry",
            "--network", network, "--network-alias", "registry",
            "--publish", f"127.0.0.1:{self.registry_port}:5000", "registry:2",
        )  # fmt: skip
        for number in range(1, size + 1):
            name = f"node{number}"
            run(
                "docker", "run", "--detach", "--label", LABEL, "--name", f"{self.prefix}-{name}",
                "--hostname", name, "--network", network, *NODE_FLAGS, "docker:dind",
                "--insecure-registry=registry:5000", "--registry-mirror=http://registry:5000",
            )  # fmt: skip
            address = run(
                "docker", "inspect", "--format",
                "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", f"{self.prefix}-{name}",
            ).strip()  # fmt: skip
            self.nodes.append(Node(name, address))
        for node in self.nodes:
            self._wait_for_engine(node)
        self.manager.docker("swarm", "init", "--advertise-addr", self.manager.address)
        token = self.manager.docker("swarm", "join-token", "--quiet", "worker").strip()
        for node in self.workers:
            node.docker("swarm", "join", "--token", token, f"{self.manager.address}:2377")

    def _wait_for_engine(self, node: Node) -> None:
        deadline = time.monotonic() + 60
        while node.docker("info", "--format", "{{.ServerVersion}}", check=False, timeout=10).strip() == "":
            if time.monotonic() > deadline:
                raise AssertionError(f"the engine of {node.name} did not answer within 60 s")
            time.sleep(0.5)

    def push(self, local: str, repository: str) -> str:
        """Push a host image to the registry as `repository` (a path in it); returns the
        name the nodes pull it by."""
        tag = f"127.0.0.1:{self.registry_port}/{repository}"
        run("docker", "tag", local, tag)
        self.pushed.append(tag)
        run("docker", "push", "--quiet", tag, timeout=600)
        return f"registry:5000/{repository}"

    def env(self) -> dict[str, str]:
        """The environment for a docker CLI that talks to the manager."""
        return {**os.environ, "DOCKER_HOST": self.manager.host}

    def remove(self) -> None:
        containers = run("docker", "ps", "--all", "--quiet", "--filter", f"name={self.prefix}-").split()
        if containers:
            # -v: the nodes' engines keep their images and volumes in anonymous volumes.
            run("docker", "rm", "--force", "--volumes", *containers, check=False, timeout=120)
        run("docker", "network", "rm", self.prefix, check=False)
        if self.pushed:
            run("docker", "image", "rm", *self.pushed, check=False)


def leftovers(swarm: Swarm) -> list[str]:
    found = run("docker", "ps", "--all", "--quiet", "--filter", f"name={swarm.prefix}-").split()
    found += run("docker", "network", "ls", "--quiet", "--filter", f"name={swarm.prefix}").split()
    return found


@contextlib.contextmanager
def swarm_of(size: int) -> Iterator[Swarm]:
    swarm = Swarm()
    try:
        swarm.create(size)
        yield swarm
    finally:
        swarm.remove()
        left = leftovers(swarm)
        assert not left, f"the swarm left {left} behind"


def tasks(swarm: Swarm, service: str) -> list[dict[str, Any]]:
    """The service's tasks as Swarm records them (state, node, timestamps, addresses)."""
    ids = swarm.manager.docker("service", "ps", "--quiet", "--no-trunc", f"{STACK}_{service}").split()
    return inspect_existing(swarm.manager, ids)


def inspect_existing(node: Node, ids: list[str]) -> list[dict[str, Any]]:
    """`docker inspect` of the objects still there: Swarm prunes old tasks and their
    containers at any time, so one listed a moment ago may be gone (inspect then prints
    the others and fails naming it, which is no error here)."""
    if not ids:
        return []
    result = node.call("inspect", *ids)
    missing_only = all(line.startswith("Error: No such object") for line in result.stderr.splitlines() if line)
    assert result.returncode == 0 or missing_only, result.stderr
    return list(json.loads(result.stdout or "[]"))
