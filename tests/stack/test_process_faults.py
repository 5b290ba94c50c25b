"""Faults of the processes and clients: a Gunicorn worker killed with SIGKILL under
traffic, a misconfigured container refusing to start, a slowloris client. (Runs on the
main stack after test_hardening and before the disruptive operations tests.)"""

from __future__ import annotations

import socket
import time

import pytest

from tests.stack.conftest import Stack
from tests.stack.test_scaling_and_shutdown import Traffic

pytestmark = pytest.mark.stack

WORKER_PIDS = (
    "import os\n"
    "for pid in sorted(p for p in os.listdir('/proc') if p.isdigit()):\n"
    "    stat = open(f'/proc/{pid}/stat').read().split()\n"
    "    if stat[3] == '1' and b'gunicorn' in open(f'/proc/{pid}/cmdline', 'rb').read():\n"
    "        print(pid)"
)


def worker_pids(stack: Stack) -> list[int]:
    """The Gunicorn workers (children of PID 1, the master) of the first app replica."""
    result = stack.compose("exec", "-T", "--index", "1", "app", "python", "-c", WORKER_PIDS)
    return [int(pid) for pid in result.stdout.split()]


def test_a_killed_worker_is_replaced_and_traffic_does_not_notice(stack: Stack) -> None:
    before = worker_pids(stack)
    assert len(before) == 2
    traffic = Traffic(f"{stack.http}/healthz")
    try:
        time.sleep(1)
        victim = before[0]
        stack.compose("exec", "-T", "--index", "1", "app", "python", "-c", f"import os; os.kill({victim}, 9)")
        deadline = time.monotonic() + 30
        while True:
            now = worker_pids(stack)
            if len(now) == 2 and victim not in now:
                break
            assert time.monotonic() < deadline, f"no replacement for worker {victim}: {now}"
            time.sleep(0.5)
        replaced_in = 30 - (deadline - time.monotonic())
        failures_at_replacement = len(traffic.failures)
        time.sleep(3)  # traffic after the replacement
    finally:
        traffic.stop()
    assert failures_at_replacement <= 1, traffic.failures
    assert len(traffic.failures) == failures_at_replacement, "requests failed after the replacement"
    print(f"kill -9 worker: replaced within {replaced_in:.1f} s; {traffic.sent} GETs, {len(traffic.failures)} failed")


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("DJANGO_SECRET_KEY", "", "Environment variable DJANGO_SECRET_KEY is required"),
        ("POSTGRES_PORT", "fifty", "Environment variable POSTGRES_PORT is invalid: expected an integer"),
        ("DJANGO_ENV", "staging", "Environment variable DJANGO_ENV is invalid"),
    ],
)
def test_misconfigured_app_container_refuses_to_start_and_says_why(
    stack: Stack, variable: str, value: str, expected: str
) -> None:
    result = stack.compose("run", "--rm", "--no-deps", "-e", f"{variable}={value}", "app", check=False, timeout=120)
    assert result.returncode != 0
    assert expected in result.stdout + result.stderr


def test_slowloris_headers_are_cut_off_by_nginx_before_the_app_sees_them(stack: Stack) -> None:
    marker = f"/slowloris-{time.monotonic_ns()}"
    with socket.create_connection(("127.0.0.1", stack.port), timeout=30) as client:
        client.sendall(f"GET {marker} HTTP/1.1\r\nHost: localhost\r\n".encode())
        started = time.monotonic()
        closed = False
        while time.monotonic() - started < 25:
            try:
                client.sendall(b"X-Slow: 1\r\n")  # never the blank line that ends the headers
                client.recv(1024, socket.MSG_DONTWAIT)  # b"" (closed) or a 408: either way, cut off
                closed = True
                break
            except BlockingIOError:
                pass
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            time.sleep(2)
        cut_after = time.monotonic() - started
    assert closed, "nginx kept a client that never finished its headers"
    assert cut_after < 20  # client_header_timeout is 10 s
    assert not [r for r in stack.log_records("app") if r.get("path") == marker]
    print(f"slowloris: nginx closed the connection after {cut_after:.1f} s; the app never saw it")
