"""The stack deployed on a real three-node swarm (swarm.py builds it), the way
docs/swarm.md tells a user to: images pushed to a registry, Docker secrets, a node
labelled for Postgres, scripts/swarm-deploy with an env file made from .env.example."""

from __future__ import annotations

import secrets
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.sources import ROOT, environment_for, write_env_file
from tests.swarm.swarm import STACK, Node, Swarm, run, swarm_of

pytestmark = pytest.mark.swarm

PORT = 8000  # HTTP_PORT's default: each node publishes nginx on its own address
SECRET_NAMES = ("django_secret_key", "postgres_password", "redis_password")
# Releases pushed to the registry: v1 is deployed first, v2 is the same code as a new image
# (a rolling update), never-ready is an app whose healthcheck never passes.
# A release pushed without its app image (test_swarm.py: the deploy's deadline).
MISSING_RELEASE = "missing"
RELEASE_DOCKERFILES = {
    "v2": "FROM {app}\nLABEL org.opencontainers.image.version=v2\n",
    "never-ready": (
        "FROM {app}\nUSER root\n"
        # The healthcheck's probe (`python -m core.probe`) fails when run; importing it
        # (the worker reads a constant from it) still works: the release never gets ready.
        "RUN sed -i 's/^    sys.exit(main())$/    sys.exit(\"this release never gets ready\")/' /app/core/probe.py"
        " && grep -q 'never gets ready' /app/core/probe.py\n"
        "USER 10001:10001\n"
    ),
}


@dataclass
class Deployment:
    swarm: Swarm
    env_file: Path
    secret_values: dict[str, str]
    deploy_seconds: float

    @property
    def nodes(self) -> list[Node]:
        return self.swarm.nodes

    @property
    def http(self) -> str:
        """The manager's nginx (the tests' single entry point where one is enough)."""
        return f"http://{self.swarm.manager.address}:{PORT}"

    @property
    def ws(self) -> str:
        return f"ws://{self.swarm.manager.address}:{PORT}"

    def entry_points(self, nodes: list[Node] | None = None) -> list[str]:
        return [f"http://{node.address}:{PORT}" for node in nodes or self.nodes]

    def docker(self, *args: str, timeout: float = 120, check: bool = True) -> str:
        return self.swarm.manager.docker(*args, timeout=timeout, check=check)

    def deploy(self, tag: str, *arguments: str, **environment: str) -> subprocess.CompletedProcess[str]:
        """scripts/swarm-deploy as docs/swarm.md gives it: `scripts/swarm-deploy ENV_FILE APP_TAG=<tag>`."""
        return subprocess.run(
            ["scripts/swarm-deploy", str(self.env_file), f"APP_TAG={tag}", *arguments],
            cwd=ROOT,
            # The env file's variables, not the test run's own (as for the compose stacks).
            env={**environment_for(self.env_file), "DOCKER_HOST": self.swarm.manager.host, **environment},
            capture_output=True,
            text=True,
            timeout=420,
            check=False,
        )


def build_images(env_file: Path) -> tuple[str, str]:
    """The images `docker compose build` makes (cached when the stack tests built them)."""
    run(
        "docker", "compose", "--project-name", "mainkode-swarm-build", "--env-file", str(env_file),
        "build", "--quiet", "app", "nginx", timeout=900,
    )  # fmt: skip
    return "mainkode-example/app:e2e", "mainkode-example/proxy:e2e"


def derived_image(base: str, release: str) -> str:
    tag = f"mainkode-example/app:swarm-{release}"
    subprocess.run(
        ["docker", "build", "--quiet", "--tag", tag, "-"],
        input=RELEASE_DOCKERFILES[release].format(app=base),
        text=True,
        capture_output=True,
        check=True,
        timeout=300,
    )
    return tag


@pytest.fixture(scope="session")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    folder = tmp_path_factory.mktemp("swarm")
    build_env = folder / "build.env"
    write_env_file(build_env, {"APP_TAG": "e2e"})
    app, proxy = build_images(build_env)
    releases = {"v1": app, **{release: derived_image(app, release) for release in RELEASE_DOCKERFILES}}
    with swarm_of(3) as swarm:
        try:
            for release, image in releases.items():
                swarm.push(image, f"mainkode/app:{release}")
                swarm.push(proxy, f"mainkode/proxy:{release}")
            # The release whose app image no node can pull: its proxy image alone exists.
            swarm.push(proxy, f"mainkode/proxy:{MISSING_RELEASE}")
            # Docker Hub's images, from the registry the nodes use as their mirror.
            swarm.push("postgres:17", "library/postgres:17")
            swarm.push("redis:8", "library/redis:8")

            values = {name: secrets.token_urlsafe(32) for name in SECRET_NAMES}
            for name, value in values.items():
                run("docker", "secret", "create", name, "-", env=swarm.env(), input_text=value)
            swarm.manager.docker("node", "update", "--label-add", "mainkode.postgres=true", swarm.manager.name)
            # Export files on another node: every other node's nginx fetches them across.
            exports_node = swarm.workers[-1].name
            swarm.manager.docker("node", "update", "--label-add", "mainkode.exports=true", exports_node)

            env_file = folder / "swarm.env"
            write_env_file(
                env_file,
                {
                    "DJANGO_ENV": "production",
                    "DJANGO_ADMIN_URL": "staff-area/",
                    "DJANGO_ALLOWED_HOSTS": ",".join(node.address for node in swarm.nodes),
                    # In Swarm the secrets are Docker secrets; the env file leaves them empty.
                    "DJANGO_SECRET_KEY": "",
                    "POSTGRES_PASSWORD": "",
                    "REDIS_PASSWORD": "",
                    "APP_IMAGE": "registry:5000/mainkode/app",
                    "PROXY_IMAGE": "registry:5000/mainkode/proxy",
                    "APP_REPLICAS": "2",
                    "GUNICORN_WORKERS": "2",
                    # The tests' steady traffic comes from one address.
                    "NGINX_API_RATE": "500r/s",
                    "CHAT_ROOM_ADDRESS_FRAME_RATE": "100000/second",
                },
            )
            deployment = Deployment(swarm, env_file, values, 0.0)
            started = time.monotonic()
            result = deployment.deploy("v1")
            deployment.deploy_seconds = time.monotonic() - started
            assert result.returncode == 0, result.stdout[-3000:] + result.stderr
            print(f"swarm: first deploy {deployment.deploy_seconds:.0f} s (3 nodes, images pulled from the registry)")
            yield deployment
        finally:
            swarm.manager.docker("stack", "rm", STACK, check=False, timeout=60)
