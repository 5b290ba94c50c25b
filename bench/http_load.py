"""Scenario 1 and 2: HTTP through nginx with wrk, per server; Postgres connections seen."""

from __future__ import annotations

import re
import statistics
import subprocess
import threading
import time
from dataclasses import dataclass

from bench.stack import BenchStack

UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


@dataclass
class WrkResult:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int  # socket errors + non-2xx/3xx answers


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(number) * UNITS[unit]


def wrk(url: str, connections: int, seconds: float) -> WrkResult:
    """One wrk run (one thread: the other core is the servers'). Bounded: `seconds`."""
    out = subprocess.run(
        [
            "wrk",
            "--threads",
            "1",
            "--connections",
            str(connections),
            "--duration",
            f"{seconds:g}s",
            "--timeout",
            "10s",
            "--latency",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=True,
    ).stdout
    percentile = dict(re.findall(r"^\s+(50|99)(?:\.0+)?%\s+([\d.]+(?:us|ms|s))", out, re.MULTILINE))
    if set(percentile) != {"50", "99"}:
        raise RuntimeError(f"wrk printed no latency distribution:\n{out}")
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return WrkResult(
        rps=float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1]),  # type: ignore[index]
        p50_ms=_ms(percentile["50"]),
        p99_ms=_ms(percentile["99"]),
        requests=int(re.search(r"(\d+) requests in", out)[1]),  # type: ignore[index]
        errors=errors + (int(non_2xx[1]) if non_2xx else 0),
    )


def median_of(runs: list[WrkResult]) -> WrkResult:
    return WrkResult(
        rps=statistics.median(r.rps for r in runs),
        p50_ms=statistics.median(r.p50_ms for r in runs),
        p99_ms=statistics.median(r.p99_ms for r in runs),
        requests=sum(r.requests for r in runs),
        errors=sum(r.errors for r in runs),
    )


class ConnectionWatcher:
    """Counts the app's connections (its pool names them) in pg_stat_activity every 0.2 s
    while a run goes, through one long-lived psql (a `docker exec` per poll would steal
    the servers' CPU); keeps the highest count seen."""

    QUERY = "select count(*) from pg_stat_activity where application_name = 'mainkode_example';\n"

    def __init__(self, stack: BenchStack) -> None:
        cid = stack.compose("ps", "--quiet", "postgres").stdout.strip()
        self.psql = subprocess.Popen(
            ["docker", "exec", "-i", cid, "sh", "-c", 'exec psql -U "$POSTGRES_APP_USER" -d "$POSTGRES_DB" -tAq'],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        if self.psql.stdin is None or self.psql.stdout is None:
            raise RuntimeError("psql has no pipes")
        self.stdin, self.stdout = self.psql.stdin, self.psql.stdout
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> ConnectionWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        self.stdin.close()
        self.psql.wait(timeout=30)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.stdin.write(self.QUERY)
            self.stdin.flush()
            self.peak = max(self.peak, int(self.stdout.readline().strip() or 0))
            time.sleep(0.2)
