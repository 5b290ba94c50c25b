"""The containers' healthcheck client, exit 0 when healthy: `python -m core.probe PATH`
asks the local server (a 2xx); `--ready-then-alive`, /readyz until it first answers, then
/healthz; `--worker`, the worker service's last heartbeat. A plain socket, no Django, no
urllib: docs/design.md (Images; Beyond one host for the second).
"""

import os
import socket
import sys
import time

PORT = 8000  # gunicorn.conf.py's bind
# Memory in the container (/tmp is a tmpfs); a test running several workers on one host
# gives each its own.
WORKER_HEALTH_FILE = os.environ.get("WORKER_HEALTH_FILE", "/tmp/worker.alive")  # noqa: S108
# Written once the app was first ready; a container's /tmp starts empty at each start.
READY_ONCE_FILE = os.environ.get("APP_READY_FILE", "/tmp/app.ready")  # noqa: S108


def worker_alive() -> int:
    try:
        with open(WORKER_HEALTH_FILE) as health_file:
            deadline = float(health_file.read())
    except (OSError, ValueError) as error:
        sys.stderr.write(f"no heartbeat yet: {error}\n")
        return 1
    if time.time() < deadline:
        return 0
    sys.stderr.write(f"last heartbeat expired {time.time() - deadline:.0f} s ago (Postgres unreachable?)\n")
    return 1


def ready_then_alive() -> int:
    """Where one healthcheck both routes traffic and restarts (compose, Swarm): ready to
    start with, then alive, so a store outage restarts no healthy replica."""
    if os.path.exists(READY_ONCE_FILE):
        return answers("/healthz")
    status = answers("/readyz")
    if status == 0:
        with open(READY_ONCE_FILE, "w"):
            pass
    return status


def main() -> int:
    if sys.argv[1:] == ["--worker"]:
        return worker_alive()
    if sys.argv[1:] == ["--ready-then-alive"]:
        return ready_then_alive()
    return answers(sys.argv[1] if len(sys.argv) > 1 else "/healthz")


def answers(path: str) -> int:
    where = f"http://127.0.0.1:{PORT}{path}"
    try:
        with socket.create_connection(("127.0.0.1", PORT), timeout=4) as connection:
            connection.sendall(f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n".encode())
            answer = b""
            while chunk := connection.recv(65536):
                answer += chunk
    except OSError as error:
        sys.stderr.write(f"{where}: {error}\n")
        return 1
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0].decode("latin-1")
    parts = status_line.split(" ", 2)
    if len(parts) >= 2 and parts[1].isdigit() and 200 <= int(parts[1]) < 300:
        return 0
    sys.stderr.write(f"{where}: {status_line or 'no answer'} {body[:500].decode(errors='replace')}\n")
    return 1


if __name__ == "__main__":
    sys.exit(main())
