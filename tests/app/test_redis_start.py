"""redis/start.sh refuses a password it cannot use with the same messages as the app's
settings (mainkode_example/env.py), before it starts redis-server. (That it starts Redis
with the users it describes: tests/stack/test_security.py, on the real container.)"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.sources import ROOT


def start(environment: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", str(ROOT / "redis" / "start.sh")],
        env={"PATH": "/usr/bin:/bin", **environment},
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )


@pytest.mark.parametrize(
    ("content", "password", "message"),
    [
        (None, "", "Environment variable REDIS_PASSWORD is required (or REDIS_PASSWORD_FILE)."),
        ("secret\n", "secret", "Environment variables REDIS_PASSWORD and REDIS_PASSWORD_FILE are both set: set one."),
        ("", "", "Environment variable REDIS_PASSWORD_FILE is invalid: {path} is empty."),
        ("\n", "", "Environment variable REDIS_PASSWORD_FILE is invalid: {path} is empty."),
        ("missing", "", "Environment variable REDIS_PASSWORD_FILE is invalid: cannot read {path}."),
    ],
)
def test_an_unusable_password_stops_the_container_naming_the_variable(
    tmp_path: Path, content: str | None, password: str, message: str
) -> None:
    path = tmp_path / "redis_password"
    environment = {"REDIS_PASSWORD": password}
    if content is not None:
        environment["REDIS_PASSWORD_FILE"] = str(path)
        if content != "missing":
            path.write_text(content)
    result = start(environment)
    assert result.returncode == 1
    assert result.stderr.strip() == message.format(path=path)
