"""Python started in app/ with the test environment changed: how the app tests see what
the settings do at start (a bad variable must stop the process)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

APP_DIR = Path(__file__).resolve().parents[2] / "app"


def run_in_app(args: list[str], **overrides: str | None) -> subprocess.CompletedProcess[str]:
    """Run Python in app/ with the test environment changed by `overrides` (None: unset)."""
    env = dict(os.environ)
    for key, value in overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return subprocess.run(
        [sys.executable, *args], cwd=APP_DIR, env=env, capture_output=True, text=True, timeout=60, check=False
    )


def load_settings_and_run(code: str, **overrides: str | None) -> subprocess.CompletedProcess[str]:
    return run_in_app(["-c", f"import django\ndjango.setup()\n{code}"], **overrides)


def load_settings(**overrides: str | None) -> subprocess.CompletedProcess[str]:
    return load_settings_and_run("", **overrides)
