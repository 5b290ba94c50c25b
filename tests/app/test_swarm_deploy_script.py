"""scripts/swarm-deploy's checks that come before any swarm is asked: which value of a
variable deploys, and the deadline's own validation (the swarm tests run the rest)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.sources import ROOT

# No daemon behind it: a check that wrongly passes fails on the first docker call instead.
NO_DAEMON = "unix:///nonexistent/docker.sock"


def swarm_deploy(env_file: Path, *arguments: str, **environment: str) -> subprocess.CompletedProcess[str]:
    in_file = {line.split("=", 1)[0] for line in env_file.read_text().splitlines()}
    shell = {key: value for key, value in os.environ.items() if key not in in_file and key != "SWARM_DEPLOY_TIMEOUT"}
    return subprocess.run(
        ["scripts/swarm-deploy", str(env_file), *arguments],
        cwd=ROOT,
        env={**shell, "DOCKER_HOST": NO_DAEMON, **environment},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def env_file(tmp_path: Path) -> Path:
    path = tmp_path / "swarm.env"
    path.write_text("APP_IMAGE=registry.example.com/team/app\nAPP_TAG=v1\nDJANGO_SECRET_KEY=\n")
    return path


def test_a_shell_variable_that_differs_from_the_env_file_stops_the_deploy_naming_it(env_file: Path) -> None:
    """An APP_IMAGE exported for a push deployed in place of the file's (an outside run)."""
    result = swarm_deploy(env_file, APP_IMAGE="registry.example.com/other/app")
    assert result.returncode == 2
    assert "APP_IMAGE is 'registry.example.com/other/app' in the shell but 'registry.example.com/team/app'" in (
        result.stderr
    )


def test_the_same_value_in_the_shell_or_an_argument_goes_on_to_the_swarm(env_file: Path) -> None:
    """Past the variables, the next check asks the swarm for its secrets (none here)."""
    for result in (
        swarm_deploy(env_file, APP_IMAGE="registry.example.com/team/app"),
        swarm_deploy(env_file, "APP_TAG=v2", APP_TAG="v2"),
    ):
        assert result.returncode == 2
        assert "the swarm has no secret django_secret_key" in result.stderr, result.stderr


@pytest.mark.parametrize(
    ("arguments", "environment", "named"),
    [
        (["APP-TAG=v2"], {}, "expected NAME=value after the env file, got 'APP-TAG=v2'"),
        ([], {"SWARM_DEPLOY_TIMEOUT": "soon"}, "SWARM_DEPLOY_TIMEOUT must be a positive number of seconds"),
    ],
)
def test_a_bad_argument_or_deadline_is_refused_naming_it(
    env_file: Path, arguments: list[str], environment: dict[str, str], named: str
) -> None:
    result = swarm_deploy(env_file, *arguments, **environment)
    assert result.returncode == 2
    assert named in result.stderr
