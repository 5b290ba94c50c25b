"""TLS switched on from .env (docker-compose.tls.yml), in production mode with real
secrets: HTTP redirects to HTTPS, HTTPS carries HSTS, sockets work over wss, the rendered
config passes gixy, and Django's deploy checks pass inside the running container."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect

from tests.stack.compose import Stack, client_tls, gixy, rendered_nginx_config
from tests.support import HELLO_BODY

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
