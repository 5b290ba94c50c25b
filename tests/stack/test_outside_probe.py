"""What an outside probe found at nginx, answered as it must be: requests for a name the
site does not serve stop at nginx (no redirect to it, no Django error); nginx's own error
answers carry the security headers (and HSTS over HTTPS); nginx's 429 says when to retry
(pages as the API); the app's probes are for the orchestrator only;
inline styles are allowed on the API docs page only; a socket is upgraded only under /ws/
(with its per-address limit)."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.sources import ROOT
from tests.stack.compose import Stack, client_tls, create_user, log_in

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


@pytest.mark.asyncio
@pytest.mark.parametrize("path", ["/api/hello/", "/"])
async def test_a_burst_past_the_rate_per_address_gets_429_with_when_to_retry(tls_stack: Stack, path: str) -> None:
    """The API and, since the third probe (L4), the pages: nothing that reaches the app is
    unmetered."""
    base = f"https://localhost:{tls_stack.https_port}"
    async with httpx.AsyncClient(base_url=base, verify=client_tls(tls_stack)) as http:
        responses = await asyncio.gather(*(http.get(path) for _ in range(150)))
    statuses = [response.status_code for response in responses]
    assert set(statuses) == {200, 429}
    assert statuses.count(200) >= 40  # the burst allowance passes
    limited = [response for response in responses if response.status_code == 429]
    assert limited[0].json() == {"detail": "Too many requests; slow down and retry."}
    assert all(int(response.headers["retry-after"]) >= 1 for response in limited)
    await asyncio.sleep(3)  # let the bucket refill for the tests that follow


@pytest.mark.parametrize("probe", ["/healthz", "/readyz"])
def test_the_app_probes_are_not_served_to_the_public(tls_stack: Stack, probe: str) -> None:
    """The third probe's L4: /readyz was public, each request a Redis connection and a query
    (322 a second from one client). nginx answers 404; its internal port has them."""
    public = httpx.get(f"https://localhost:{tls_stack.https_port}{probe}", verify=client_tls(tls_stack))
    assert (public.status_code, public.json()) == (404, {"detail": "Not found."})
    internal = tls_stack.compose("exec", "-T", "nginx", "curl", "--fail", "--silent", f"http://127.0.0.1:8081{probe}")
    assert json.loads(internal.stdout)["status"] == "ok"


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
    "files": set(),
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


@pytest.mark.parametrize("service", ["postgres", "redis"])
def test_the_store_images_setuid_binaries_grant_nothing(stack: Stack, service: str) -> None:
    """The stores run their upstream images, setuid binaries and all (docs/design.md says why
    they are not stripped). no-new-privileges makes the kernel ignore the bit: chage, which
    reads /etc/shadow through it, fails as the service's user; in a container of the same
    image without that option it succeeds (the control: the test can fail)."""
    user = service  # both images run their server as a user of the service's name
    image = str(inspect(stack, service)["Config"]["Image"])
    control = subprocess.run(
        ["docker", "run", "--rm", "--user", user, "--entrypoint", "chage", image, "-l", user],
        capture_output=True,
        text=True,
        check=False,
    )
    assert control.returncode == 0, control.stderr
    inside = stack.compose("exec", "-T", "--user", user, service, "chage", "-l", user, check=False)
    assert inside.returncode != 0
    assert "cannot open /etc/shadow" in inside.stderr


def network_field(network: str, template: str) -> str:
    """`docker network inspect --format TEMPLATE NETWORK`."""
    command = ["docker", "network", "inspect", "--format", template, network]
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip()


def test_only_the_published_services_have_a_network_with_a_route_out(stack: Stack) -> None:
    """nginx and, in the monitoring profile, Prometheus (a published port needs a network
    that is not internal); nothing else."""
    for service in ALLOWED_CAPABILITIES:
        for name in inspect(stack, service)["NetworkSettings"]["Networks"]:
            internal = network_field(name, "{{.Internal}}")
            published = service in ("nginx", "prometheus") and name.endswith("_public")
            assert internal == "true" or published, (service, name)


REACH_HOST = """
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3).close()
    print("reached")
except OSError as error:
    print(f"refused: {error}")
"""


def test_scripts_host_firewall_closes_the_host_to_the_internal_networks(stack: Stack) -> None:
    """The third probe's L3: the app reached a service on the Docker host through its
    network's gateway. scripts/host-firewall closes that, and the stack serves on."""
    backend = f"{stack.project}_backend"
    gateway = network_field(backend, "{{(index .IPAM.Config 0).Gateway}}")
    firewall = [str(ROOT / "scripts" / "host-firewall")]
    env = {**stack.env(), "COMPOSE": " ".join(stack.flags())}
    with socket.socket() as listener:  # a service on the host, on every address
        listener.bind(("0.0.0.0", 0))  # noqa: S104 (the point: the host's service listens everywhere)
        listener.listen()
        port = str(listener.getsockname()[1])

        def from_app() -> str:
            return stack.compose("exec", "-T", "app", "python", "-c", REACH_HOST, gateway, port).stdout.strip()

        assert from_app() == "reached"  # what the probe found
        try:
            closed = subprocess.run(firewall, env=env, capture_output=True, text=True, check=True, cwd=ROOT)
            assert from_app().startswith("refused")
            again = subprocess.run(firewall, env=env, capture_output=True, text=True, check=True, cwd=ROOT)
            assert "already closed" in again.stdout
            assert httpx.get(f"{stack.http}/api/hello/").status_code == 200
        finally:
            subprocess.run([*firewall, "--remove"], env=env, capture_output=True, text=True, check=True, cwd=ROOT)
        assert from_app() == "reached"
    print(closed.stdout.strip())


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


@pytest.mark.asyncio
async def test_a_frame_flood_on_a_design_documents_room_is_refused_past_the_socket_rate(tls_stack: Stack) -> None:
    """The third probe's M2: one socket sent 572 frames/s to /ws/chat/<room>/, each fanned
    out. With the defaults (production, TLS), frames past CHAT_ROOM_FRAME_RATE (20 a
    second) get an error frame and reach no one."""
    url = f"wss://localhost:{tls_stack.https_port}/ws/chat/flood-{uuid.uuid4().hex[:8]}/"
    sent = 60
    async with connect(url, ssl=client_tls(tls_stack)) as sender, connect(url, ssl=client_tls(tls_stack)) as listener:
        for n in range(sent):
            await sender.send(json.dumps({"message": f"flood {n}"}))
        relayed = await frames_until_quiet(listener)
        answers = await frames_until_quiet(sender)
    refused = [frame for frame in answers if frame.get("error") == "rate_limited"]
    assert 20 <= len(relayed) <= 40, len(relayed)  # 20 per one-second window; the burst may straddle two
    assert len(relayed) + len(refused) == sent
    print(f"{sent} frames at once on one socket: {len(relayed)} relayed, {len(refused)} refused")


async def frames_until_quiet(ws: Any) -> list[dict[str, Any]]:
    frames = []
    while True:
        try:
            frames.append(json.loads(await asyncio.wait_for(ws.recv(), 1.5)))
        except TimeoutError:
            return frames


def test_a_malformed_token_is_a_401_and_logging_out_ends_a_token(stack: Stack) -> None:
    """The third probe's M3 and L1, through nginx: bytes that are not UTF-8 in the token
    were a 500 with an ERROR traceback; the page's "Log out" left the token valid. And an
    answer to credentials is not cached (no-store)."""
    began = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    malformed = httpx.get(f"{stack.http}/api/rooms/", headers=[(b"Authorization", b"Token \xff\xfe\xfd")])
    assert (malformed.status_code, malformed.json()) == (401, {"detail": "Invalid token."})
    token = log_in(stack, create_user(stack))
    headers = {"Authorization": f"Token {token}"}
    rooms = httpx.get(f"{stack.http}/api/rooms/", headers=headers)
    assert rooms.status_code == 200
    assert "no-store" in rooms.headers["cache-control"]
    assert httpx.post(f"{stack.http}/api/auth/logout/", headers=headers).status_code == 204
    assert httpx.get(f"{stack.http}/api/rooms/", headers=headers).status_code == 401
    loud = [r for r in stack.log_records("app", since=began) if r.get("level") in ("ERROR", "CRITICAL")]
    assert loud == []
