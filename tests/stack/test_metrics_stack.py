"""Metrics in the stack as a user runs it: each app replica serves its own merged view
inside its container, and nothing of it reaches the public port (docs/operations.md:
Metrics)."""

from __future__ import annotations

import subprocess

import httpx
import pytest

from tests.stack.compose import Stack

pytestmark = pytest.mark.stack

READ_METRICS = "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:9101/metrics').read().decode())"


def test_each_replica_serves_its_metrics_inside_and_the_public_port_serves_none(stack: Stack) -> None:
    with httpx.Client(base_url=stack.http) as http:
        for _ in range(5):
            assert http.get("/api/hello/").status_code == 200
        public = http.get("/metrics")
    assert public.status_code == 404
    assert "app_http_requests" not in public.text
    assert stack.compose("port", "app", "9101", check=False).returncode != 0  # published nowhere

    replicas = stack.compose("ps", "--quiet", "app").stdout.split()
    assert len(replicas) == 2
    served = 0.0
    for container in replicas:
        text = subprocess.run(
            ["docker", "exec", container, "python", "-c", READ_METRICS], capture_output=True, text=True, check=True
        ).stdout
        assert "gunicorn_workers 2.0" in text  # GUNICORN_WORKERS of the test stack
        served += sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith('app_http_requests_total{method="GET",route="api/hello/",status="200"}')
        )
    assert served >= 5  # the two replicas' views together count the GETs above (and earlier tests')
