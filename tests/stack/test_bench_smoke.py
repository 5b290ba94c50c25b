"""scripts/bench --smoke: every scenario for a few seconds, so the harness cannot rot.
Checks that it ran and wrote its document; never how fast anything was."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from bench.__main__ import servers
from bench.report import CEILING
from tests.sources import ROOT
from tests.stack.compose import leftovers

pytestmark = pytest.mark.stack


@pytest.mark.timeout(900)  # about 5 minutes here: every scenario, several stack restarts
def test_bench_smoke_runs_every_scenario_and_writes_the_document(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(ROOT / "scripts" / "bench"), "--smoke", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    doc = (tmp_path / "benchmarks.md").read_text()
    for section in (
        "## 1. HTTP",
        "## 2. Postgres",
        "## 3. WebSocket fan-out",
        "## 4. Idle",
        "## 5. Operations",
        "## 6. Background",
        "## 7. What the metrics cost",
    ):
        assert section in doc
    assert (tmp_path / "benchmarks-latency.png").read_bytes().startswith(b"\x89PNG")
    figures = json.loads((tmp_path / "benchmarks.json").read_text())
    # Every layout the benchmark compares, and nginx alone.
    compared = {name for name, *_ in servers(figures["workers"])} | {CEILING}
    assert {row["server"] for row in figures["http"]} == compared
    assert all(row["requests"] > 0 and row["errors"] == 0 for row in figures["http"]), figures["http"]
    assert {(row["layer"], row["via"]) for row in figures["fanout"]} == {
        (layer, via) for layer in ("core", "pubsub") for via in ("rest", "socket")
    }
    assert all(row["lost"] == 0 and row["duplicated"] == 0 for row in figures["fanout"]), figures["fanout"]
    assert figures["capacity"]["opened"] == figures["capacity"]["target"]
    memory = figures["socket_memory"]
    assert memory["sockets"] == figures["plan"]["memory_sockets"]
    assert memory["python_kib_per_socket"] > 0
    assert memory["by_owner"]
    assert figures["ops"]["app_image_mib"] > 0
    # The cold start's timeline: every step on its path, as Docker recorded it.
    timeline = {(service, status) for _, service, status in figures["ops"]["cold_up_timeline"]}
    assert {("postgres", "healthy"), ("migrate", "die"), ("app", "healthy"), ("nginx", "healthy")} <= timeline
    tasks = figures["tasks"]
    assert [mode["exports"] for mode in tasks["modes"]] == [2, 2]
    assert all(mode["busy"]["samples"] > 0 for mode in tasks["modes"])
    assert tasks["pickups"] == 2
    assert tasks["jobs_per_second"] > 0
    # The same load with the app's metrics on and off.
    assert [row["metrics"] for row in figures["metrics"]["rows"]] == ["on", "off"]
    assert all(row["hello"]["requests"] > 0 and row["hello"]["errors"] == 0 for row in figures["metrics"]["rows"])
    assert all(row["fanout"]["lost"] == 0 for row in figures["metrics"]["rows"])
    assert not any(leftovers("mainkode-bench").values()), "the bench left its stack behind"
