"""`python -m core.probe /readyz`: the container healthcheck's HTTP client (exit 0 on a
2xx); `python -m core.probe --worker`: the worker service's, which reads the deadline its
last heartbeat wrote. A plain socket, no Django, no urllib: docs/design.md (Images).
"""

import os
import socket
import sys
import time

PORT = 8000  # gunicorn.conf.py's bind
# Memory in the container (/tmp is a tmpfs); a test running several workers on one host
# gives each its own.
WORKER_HEALTH_FILE = os.environ.get("WORKER_HEALTH_FILE", "/tmp/worker.alive")  # noqa: S108


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


def main() -> int:
    if sys.argv[1:] == ["--worker"]:
        return worker_alive()
    path = sys.argv[1] if len(sys.argv) > 1 else "/healthz"
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
