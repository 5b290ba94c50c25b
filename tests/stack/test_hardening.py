"""Production hardening, checked on the running stack: the containers' privileges, the
rendered nginx config, headers, compression, body limits, and logs that tie nginx's
request id to the app's."""

from __future__ import annotations

import subprocess
import time
import uuid
from pathlib import Path

import httpx
import pytest

from tests.stack.compose import Stack, gixy, json_records, rendered_nginx_config

pytestmark = pytest.mark.stack
SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
    "cross-origin-opener-policy": "same-origin",
}


def exec_in(stack: Stack, service: str, *command: str) -> subprocess.CompletedProcess[str]:
    return stack.compose("exec", "-T", service, *command, check=False)


# --- containers ------------------------------------------------------------------------------


def test_app_runs_as_non_root_on_a_read_only_root_filesystem_without_capabilities(stack: Stack) -> None:
    assert exec_in(stack, "app", "id", "-u").stdout.strip() == "10001"
    write = exec_in(stack, "app", "python", "-c", "open('/app/intruder', 'w')")
    assert write.returncode != 0
    assert "Read-only file system" in write.stderr
    status = exec_in(stack, "app", "cat", "/proc/1/status").stdout
    capabilities = {line.split(":")[0]: line.split()[1] for line in status.splitlines() if line.startswith("Cap")}
    assert capabilities["CapEff"] == capabilities["CapPrm"] == "0000000000000000"
    assert "NoNewPrivs:\t1" in status
    # The writable places are memory: /tmp (tmpfs) and /dev/shm (Gunicorn's heartbeats).
    assert exec_in(stack, "app", "python", "-c", "open('/tmp/ok', 'w'); open('/dev/shm/ok', 'w')").returncode == 0


def test_gunicorn_config_checks_out_inside_the_image(stack: Stack) -> None:
    result = exec_in(stack, "app", "gunicorn", "--check-config", "mainkode_example.asgi:application")
    assert result.returncode == 0, result.stdout + result.stderr


def test_nginx_config_has_no_gixy_findings(stack: Stack, tmp_path: Path) -> None:
    result = gixy(rendered_nginx_config(stack), tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No issues found" in result.stdout


def test_gixy_gate_does_catch_a_bad_config(stack: Stack, tmp_path: Path) -> None:
    # The classic mistake (a client-chosen Host passed on): the same gate must refuse it.
    bad = rendered_nginx_config(stack).replace(
        "proxy_set_header Host $host$public_port_suffix;", "proxy_set_header Host $http_host;"
    )
    result = gixy(bad, tmp_path)
    assert result.returncode != 0
    assert "host_spoofing" in result.stdout


# --- headers and bodies -----------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/api/hello/", "/api/docs/", "/static/chat/chat.css", "/no-such-page/"])
def test_security_headers_are_sent_once_on_every_kind_of_response(stack: Stack, path: str) -> None:
    response = httpx.get(f"{stack.http}{path}")
    for name, value in SECURITY_HEADERS.items():
        assert response.headers.get_list(name) == [value], (path, name)
    policy = response.headers["content-security-policy"]
    assert "script-src 'self';" in policy
    assert "frame-ancestors 'none'" in policy
    assert "strict-transport-security" not in response.headers  # plain HTTP: no HSTS


def test_json_answers_are_gzipped(stack: Stack) -> None:
    response = httpx.get(
        f"{stack.http}/api/schema/",
        headers={"Accept": "application/vnd.oai.openapi+json", "Accept-Encoding": "gzip"},
    )
    assert response.status_code == 200
    assert response.headers["content-encoding"] == "gzip"
    assert "/api/rooms/" in response.json()["paths"]


def test_oversized_body_gets_413_json_from_nginx_and_never_reaches_the_app(stack: Stack) -> None:
    marker = f"too-big-{uuid.uuid4().hex[:8]}"
    response = httpx.post(f"{stack.http}/api/rooms/{marker}/messages/", content=b"x" * (2 * 1024 * 1024))
    assert response.status_code == 413
    assert response.json() == {"detail": "Request body too large (limit: 1m)."}
    time.sleep(0.5)
    assert not [r for r in stack.log_records("app") if marker in str(r.get("path", ""))]


def test_request_id_is_the_same_in_nginx_and_app_logs(stack: Stack) -> None:
    response = httpx.get(f"{stack.http}/api/hello/")
    request_id = response.headers["x-request-id"]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        app = [r for r in stack.log_records("app") if r.get("request_id") == request_id]
        proxy = [r for r in stack.log_records("nginx") if r.get("request_id") == request_id]
        if app and proxy:
            break
        time.sleep(0.5)
    assert len(app) == 1, app
    assert len(proxy) == 1, proxy
    assert (app[0]["logger"], app[0]["path"], app[0]["status"]) == ("mainkode_example.access", "/api/hello/", 200)
    assert (proxy[0]["uri"], proxy[0]["status"]) == ("/api/hello/", 200)


def test_every_app_log_line_is_json(stack: Stack) -> None:
    lines = stack.log_lines("app")  # read once: the healthchecks keep adding lines
    records = json_records(lines)
    assert len(records) == len(lines) > 0
    assert all({"time", "level", "logger", "message"} <= set(record) for record in records)
