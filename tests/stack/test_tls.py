"""TLS switched on from .env (docker-compose.tls.yml), in production mode with real
secrets: HTTP redirects to HTTPS, HTTPS carries HSTS, sockets work over wss, the rendered
config passes gixy, and Django's deploy checks pass inside the running container."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect

from tests.clients import HELLO_BODY
from tests.stack.compose import Stack, client_tls, gixy, rendered_nginx_config

pytestmark = pytest.mark.stack


def https(stack: Stack) -> str:
    return f"https://localhost:{stack.https_port}"


def test_plain_http_redirects_to_https(tls_stack: Stack) -> None:
    response = httpx.get(f"http://localhost:{tls_stack.port}/api/hello/?x=1")
    assert response.status_code == 301
    assert response.headers["location"] == f"{https(tls_stack)}/api/hello/?x=1"


def test_https_serves_the_hello_answer_with_hsts(tls_stack: Stack) -> None:
    response = httpx.get(f"{https(tls_stack)}/api/hello/", verify=client_tls(tls_stack))
    assert response.status_code == 200
    assert response.content == HELLO_BODY
    assert response.headers.get_list("strict-transport-security") == ["max-age=31536000; includeSubDomains"]


def test_session_and_csrf_cookies_are_secure_over_https(tls_stack: Stack) -> None:
    response = httpx.get(f"{https(tls_stack)}/", verify=client_tls(tls_stack))
    assert response.status_code == 200
    assert "Secure" in response.headers["set-cookie"]


def test_websocket_over_wss(tls_stack: Stack) -> None:
    async def echo() -> str:
        async with connect(f"wss://localhost:{tls_stack.https_port}/ws/chat/", ssl=client_tls(tls_stack)) as ws:
            await ws.send("Hi")
            return str(await asyncio.wait_for(ws.recv(), 5))

    assert asyncio.run(echo()) == '{"message": "Echo: Hi"}'


def test_diagnostics_are_not_routed_in_production(tls_stack: Stack) -> None:
    response = httpx.get(f"{https(tls_stack)}/api/diagnostics/sleep/?seconds=0", verify=client_tls(tls_stack))
    assert response.status_code == 404


def test_deploy_checks_pass_inside_the_running_app(tls_stack: Stack) -> None:
    result = tls_stack.compose(
        "exec", "-T", "app", "python", "manage.py", "check", "--deploy", "--fail-level", "WARNING", check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_tls_nginx_config_has_no_gixy_findings(tls_stack: Stack, tmp_path: Path) -> None:
    config = rendered_nginx_config(tls_stack)
    assert "ssl_certificate" in config
    result = gixy(config, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No issues found" in result.stdout


# What testssl.sh may report about the test stack, and why that is fine.
TESTSSL_ACCEPTED = {
    "cert_chain_of_trust": "the test stack's certificate is self-signed (scripts/certs)",
    "cert_revocation": "a self-signed certificate names no CRL or OCSP responder",
    # BREACH needs a secret reflected in a compressed answer: Django masks its CSRF token
    # anew in every response, and the token endpoint's answer is below gzip_min_length.
    "BREACH": "gzip on text answers, with Django's per-response CSRF masking",
}


def test_testssl_finds_nothing_to_fix(tls_stack: Stack, tmp_path: Path) -> None:
    """testssl.sh (Debian's), an outside tool: protocols, server defaults, the known
    vulnerabilities and the HTTP security headers of the HTTPS server."""
    report = tmp_path / "testssl.json"
    command = [
        shutil.which("testssl") or "testssl",
        "--quiet",
        "--color",
        "0",
        "--warnings",
        "off",
        "--ip",
        "127.0.0.1",
        "--jsonfile",
        str(report),
        "--protocols",
        "--server-defaults",
        "--vulnerable",
        "--headers",
        f"localhost:{tls_stack.https_port}",
    ]
    subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    findings = {finding["id"]: finding for finding in json.loads(report.read_text())}
    serious = {
        name: finding["finding"]
        for name, finding in findings.items()
        if finding["severity"] in {"MEDIUM", "HIGH", "CRITICAL"} and name not in TESTSSL_ACCEPTED
    }
    assert serious == {}
    for protocol in ("SSLv2", "SSLv3", "TLS1", "TLS1_1"):
        assert findings[protocol]["finding"] == "not offered", protocol
    for protocol in ("TLS1_2", "TLS1_3"):
        assert findings[protocol]["finding"].startswith("offered"), protocol
    assert findings["HSTS_time"]["severity"] == "OK", findings["HSTS_time"]
    print(f"testssl.sh: {len(findings)} findings, none to fix; accepted: {', '.join(sorted(TESTSSL_ACCEPTED))}")
