"""What an outside probe found at nginx, answered as it must be: requests for a name the
site does not serve stop at nginx (no redirect to it, no Django error); nginx's own error
answers carry the security headers (and HSTS over HTTPS); nginx's 429 says when to retry;
inline styles are allowed on the API docs page only; a socket is upgraded only under /ws/
(with its per-address limit)."""

from __future__ import annotations

import json
import socket
import subprocess
import uuid
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.stack.compose import Stack, client_tls

pytestmark = pytest.mark.stack

SECURITY_HEADERS = ("x-content-type-options", "x-frame-options", "content-security-policy", "referrer-policy")


def raw_https(stack: Stack, request: bytes) -> bytes:
    """One request written as it is, over TLS to the stack's HTTPS port; the answer's head."""
    with (
        socket.create_connection(("127.0.0.1", stack.https_port or 0), timeout=10) as plain,
        client_tls(stack).wrap_socket(plain, server_hostname="localhost") as tls,
    ):
        tls.sendall(request)
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = tls.recv(65536)
            if not chunk:
                break
            answer += chunk
    return answer.split(b"\r\n\r\n", 1)[0]


def test_an_unknown_host_is_answered_by_nginx_and_never_reaches_django(stack: Stack) -> None:
    response = httpx.get(f"{stack.http}/api/hello/", headers={"Host": "scanner.example"})
    assert response.status_code == 400
    assert response.json() == {"detail": "Unknown host."}
    request_id = response.headers["x-request-id"]
    app_lines = [record for record in stack.log_records("app") if record.get("request_id") == request_id]
    assert app_lines == []
    assert not [record for record in stack.log_records("app") if "scanner.example" in str(record)]


def test_the_https_redirect_goes_to_a_configured_name_only(tls_stack: Stack) -> None:
    known = httpx.get(f"{tls_stack.http}/api/hello/", headers={"Host": "localhost"})
    assert known.status_code == 301
    assert known.headers["location"] == f"https://localhost:{tls_stack.https_port}/api/hello/"
    unknown = httpx.get(f"{tls_stack.http}/api/hello/", headers={"Host": "evil.example"})
    assert unknown.status_code == 400
    assert "location" not in unknown.headers


@pytest.mark.parametrize(
    ("status", "request_bytes"),
    [
        pytest.param(400, b"GET /api/hello/ HTTP/1.1\r\nHost: localhost\r\nHost: localhost\r\n\r\n", id="400"),
        pytest.param(405, b"TRACE /static/ HTTP/1.1\r\nHost: localhost\r\n\r\n", id="405"),
        pytest.param(414, b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\nHost: localhost\r\n\r\n", id="414"),
        # nginx's 494 (header too large) goes out as a 400.
        pytest.param(400, b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Big: " + b"b" * 70_000 + b"\r\n\r\n", id="494"),
        pytest.param(
            501, b"POST /api/hello/ HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", id="501"
        ),
    ],
)
def test_nginx_own_error_answers_carry_the_security_headers_and_hsts(
    tls_stack: Stack, status: int, request_bytes: bytes
) -> None:
    head = raw_https(tls_stack, request_bytes).decode("latin-1").lower()
    assert head.startswith(f"http/1.1 {status} "), head
    for header in (*SECURITY_HEADERS, "strict-transport-security"):
        assert f"\r\n{header}: " in head, (header, head)


def test_nginx_429_says_when_to_retry(stack: Stack) -> None:
    with httpx.Client(base_url=stack.http) as client:
        statuses = [client.get("/api/hello/") for _ in range(120)]
    limited = [response for response in statuses if response.status_code == 429]
    assert limited, "the per-address limit never answered"
    assert all(int(response.headers["retry-after"]) >= 1 for response in limited)


def test_inline_styles_are_allowed_on_the_api_docs_page_only(stack: Stack) -> None:
    def style_src(path: str) -> str:
        policy = httpx.get(f"{stack.http}{path}").headers["content-security-policy"]
        return next(part.strip() for part in policy.split(";") if part.strip().startswith("style-src"))

    assert style_src("/api/docs/") == "style-src 'self' 'unsafe-inline'"
    for path in ("/", "/api/hello/", "/api/schema/"):
        assert style_src(path) == "style-src 'self'"


# --- containers ---------------------------------------------------------------------------------

# Linux capability bits (linux/capability.h) a service may keep, in its effective set.
CAPABILITY_BITS = {"CHOWN": 0, "DAC_OVERRIDE": 1, "FOWNER": 3, "SETGID": 6, "SETUID": 7, "NET_BIND_SERVICE": 10}
ALLOWED_CAPABILITIES = {
    "app": set(),
    "worker": set(),
    "redis": set(),
    "nginx": {"CHOWN", "SETUID", "SETGID", "NET_BIND_SERVICE"},
    "postgres": {"CHOWN", "DAC_OVERRIDE", "FOWNER", "SETUID", "SETGID"},
    # The monitoring profile.
    "prometheus": set(),
    "nginx-exporter": set(),
    "postgres-exporter": set(),
    "redis-exporter": set(),
}


def inspect(stack: Stack, service: str) -> dict[str, Any]:
    return inspect_container(stack.compose("ps", "--quiet", service).stdout.split()[0])


@pytest.mark.parametrize("service", sorted(ALLOWED_CAPABILITIES))
def test_every_service_has_least_privilege_and_limits(stack: Stack, service: str) -> None:
    host_config = inspect(stack, service)["HostConfig"]
    assert host_config["ReadonlyRootfs"] is True
    assert host_config["CapDrop"] == ["ALL"]
    assert set(host_config["CapAdd"] or []) == ALLOWED_CAPABILITIES[service]
    assert "no-new-privileges:true" in host_config["SecurityOpt"]
    assert host_config["Memory"] > 0
    assert host_config["PidsLimit"] > 0
    # What the running server process holds: PID 1's bounding set, at most the allowed.
    status = stack.compose("exec", "-T", service, "cat", "/proc/1/status").stdout
    bounding = int(next(line.split()[1] for line in status.splitlines() if line.startswith("CapBnd")), 16)
    allowed = sum(1 << CAPABILITY_BITS[name] for name in ALLOWED_CAPABILITIES[service])
    assert bounding & ~allowed == 0, f"{service} may hold capabilities {bounding:#x}"


@pytest.mark.parametrize("service", ["app", "nginx", "nginx-exporter"])
def test_runtime_images_hold_no_setuid_binary_and_no_package_manager(stack: Stack, service: str) -> None:
    probe = "find / -xdev -perm /6000 -type f; for tool in pip pip3 apt apt-get dpkg; do command -v $tool; done"
    found = stack.compose("exec", "-T", service, "sh", "-c", probe, check=False).stdout.split()
    assert found == []
    if service == "app":
        no_pip = stack.compose("exec", "-T", "app", "python", "-c", "import pip", check=False)
        assert no_pip.returncode != 0


def test_only_the_published_services_have_a_network_with_a_route_out(stack: Stack) -> None:
    """nginx and, in the monitoring profile, Prometheus (a published port needs a network
    that is not internal); nothing else."""
    for service in ALLOWED_CAPABILITIES:
        for name in inspect(stack, service)["NetworkSettings"]["Networks"]:
            internal = subprocess.run(
                ["docker", "network", "inspect", "--format", "{{.Internal}}", name],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
            published = service in ("nginx", "prometheus") and name.endswith("_public")
            assert internal == "true" or published, (service, name)


def test_the_app_believes_x_forwarded_for_from_nginx_alone(stack: Stack) -> None:
    """Another process that reaches an app replica directly (here: the other replica)
    cannot pick its client address (the probe escaped the login throttle that way)."""
    replicas = stack.compose("ps", "--quiet", "app").stdout.split()
    assert len(replicas) >= 2
    target = next(iter(inspect_container(replicas[0])["NetworkSettings"]["Networks"].values()))["IPAddress"]
    marker = f"/api/xff-{uuid.uuid4().hex[:8]}/"
    spoof = (
        "import urllib.request, urllib.error\n"
        f"request = urllib.request.Request('http://{target}:8000{marker}', "
        "headers={'X-Forwarded-For': '203.0.113.66', 'Host': 'localhost'})\n"
        "try:\n    urllib.request.urlopen(request)\nexcept urllib.error.HTTPError:\n    pass\n"
    )
    subprocess.run(["docker", "exec", replicas[1], "python", "-c", spoof], check=True, capture_output=True)
    lines = [record for record in stack.log_records("app") if record.get("path") == marker]
    assert lines, "the app logged no line for the request"
    assert [record["client"] for record in lines] != ["203.0.113.66"]
    # Through nginx, the app logs the address nginx saw, not one the client claims.
    response = httpx.get(f"{stack.http}/api/hello/", headers={"X-Forwarded-For": "203.0.113.67"})
    logged = [r for r in stack.log_records("app") if r.get("request_id") == response.headers["x-request-id"]]
    assert logged
    assert logged[0]["client"] != "203.0.113.67"


def inspect_container(container: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = json.loads(
        subprocess.run(["docker", "inspect", container], capture_output=True, text=True, check=True).stdout
    )
    return found[0]


@pytest.mark.asyncio
@pytest.mark.parametrize("path", ["/api/x:/ws/chat/", "/x:/ws/chat/"])
async def test_a_socket_is_upgraded_only_under_ws(stack: Stack, path: str) -> None:
    """nginx matched `:/ws/` anywhere in the path: such a socket came in through another
    location, past the /ws/ location's limit of sockets per address."""
    with pytest.raises(InvalidStatus) as refused:
        async with connect(f"{stack.ws}{path}", open_timeout=10):
            pass
    assert refused.value.response.status_code == 404
