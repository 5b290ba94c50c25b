"""The Python memory an idle room socket holds in a worker, by the package that allocated
it (tracemalloc). Runs inside a one-off container of the bench's app image (the bench
mounts this file; `python socket_memory.py SOCKETS`), beside the bench stack's Redis:
uvicorn serves the app in this process, configured as gunicorn.conf.py configures a
worker, and a child process holds the sockets, offering permessage-deflate as browsers
do. Prints one JSON object."""

from __future__ import annotations

import asyncio
import collections
import json
import resource
import runpy
import socket
import sys
import tracemalloc
from pathlib import Path
from typing import Any

import uvicorn
import uvloop

APP = "mainkode_example.asgi:application"  # imported from /app, the image's code

CLIENT = """
import asyncio, sys
from websockets.asyncio.client import connect

async def main():
    url, count = sys.argv[1], int(sys.argv[2])
    held = []
    for start in range(0, count, 200):
        held += await asyncio.gather(*(connect(url, ping_interval=None) for _ in range(min(200, count - start))))
    print(len(held), flush=True)
    await asyncio.to_thread(sys.stdin.read)  # until the parent closes our stdin
    await asyncio.gather(*(ws.close() for ws in held))

asyncio.run(main())
"""


def owner(frames: list[str]) -> str:
    """The package of the innermost frame outside the standard library, or the standard
    library module that allocated."""
    for filename in reversed(frames):
        parts = Path(filename).parts
        if "site-packages" in parts:
            return parts[parts.index("site-packages") + 1]
        if parts[:2] == ("/", "app"):
            return f"app: {parts[2]}"
    return f"stdlib: {Path(frames[-1]).name}"


async def hold(url: str, count: int) -> asyncio.subprocess.Process:
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CLIENT, url, str(count), stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
    )
    assert child.stdout is not None
    opened = int(await child.stdout.readline() or 0)
    if opened != count:
        raise RuntimeError(f"the client opened {opened} of {count} sockets")
    return child


async def release(child: asyncio.subprocess.Process) -> None:
    assert child.stdin is not None
    child.stdin.close()
    await child.wait()


async def measure(count: int) -> dict[str, Any]:
    worker = runpy.run_path("/app/gunicorn.conf.py")["worker_class"]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(APP, host="127.0.0.1", port=port, log_config=None, **worker.CONFIG_KWARGS)
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 (uvicorn sets a flag; it has no event to wait for)
        await asyncio.sleep(0.05)
    url = f"ws://127.0.0.1:{port}/ws/chat/memory/"
    await release(await hold(url, min(count, 200)))  # warm-up: imports, pools, caches
    await asyncio.sleep(1)
    tracemalloc.start(25)
    before = tracemalloc.take_snapshot()
    child = await hold(url, count)
    await asyncio.sleep(2)
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    by_owner: collections.Counter[str] = collections.Counter()
    for stat in after.compare_to(before, "traceback"):
        by_owner[owner([frame.filename for frame in stat.traceback])] += stat.size_diff
    lines = [
        (f"{Path(stat.traceback[0].filename).name}:{stat.traceback[0].lineno}", stat.size_diff / 1024 / count)
        for stat in after.compare_to(before, "lineno")[:8]
    ]
    await release(child)
    server.should_exit = True
    await serving
    return {
        "sockets": count,
        "python_kib_per_socket": sum(by_owner.values()) / 1024 / count,
        "by_owner": [(name, size / 1024 / count) for name, size in by_owner.most_common(8)],
        "top_lines": lines,
    }


if __name__ == "__main__":
    sys.path.insert(0, "/app")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    print(json.dumps(uvloop.run(measure(int(sys.argv[1])))))
