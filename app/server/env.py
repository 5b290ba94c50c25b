"""Reading the server's knobs from the environment; a bad value stops Gunicorn naming it."""

from __future__ import annotations

import math
import os
from pathlib import Path

LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


def text(name: str, default: str) -> str:
    """Set but empty is as good as unset (compose passes every optional knob as `${NAME:-}`)."""
    return os.environ.get(name, "").strip() or default


def integer(name: str, default: int, minimum: int = 0) -> int:
    raw = text(name, "")
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SystemExit(f"Environment variable {name} is invalid: expected an integer, got {raw!r}.") from None
    if value < minimum:
        raise SystemExit(f"Environment variable {name} is invalid: expected an integer >= {minimum}, got {value}.")
    return value


def log_level(name: str, default: str) -> str:
    value = text(name, default).lower()
    if value not in LOG_LEVELS:
        raise SystemExit(
            f"Environment variable {name} is invalid: expected {', '.join(LOG_LEVELS[:-1])} or {LOG_LEVELS[-1]}, "
            f"got {value!r}."
        )
    return value


def available_cpus() -> int:
    """CPUs this container may use: the affinity mask, capped by a cgroup v2 quota
    (`--cpus`, compose `cpus:`), which os.cpu_count() ignores."""
    count = len(os.sched_getaffinity(0))
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        if quota != "max":
            count = min(count, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, count)
