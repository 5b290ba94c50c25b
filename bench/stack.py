"""The benchmark's own compose project: docker-compose.yml plus bench/compose.yml, on a
free loopback port, with limits raised so nginx measures the servers, not its guards."""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.clients import OnLoopback, free_port
from tests.sources import NGINX_RESOLVE_SECONDS, ROOT, environment_for, write_env_file

PROJECT = "mainkode-bench"
FILES = ("docker-compose.yml", "bench/compose.yml")

# In a container: resident memory (KiB) of every process whose command line has `needle`.
RSS = (
    "import os, sys\n"
    "total = 0\n"
    "for pid in (p for p in os.listdir('/proc') if p.isdigit()):\n"
    "    try:\n"
    "        if sys.argv[1].encode() in open(f'/proc/{pid}/cmdline', 'rb').read():\n"
    "            total += int(open(f'/proc/{pid}/status').read().split('VmRSS:')[1].split()[0])\n"
    "    except OSError:\n"
    "        pass\n"
    "print(total)"
)


@dataclass
class BenchStack(OnLoopback):
    workdir: Path
    workers: int
    port: int = field(default_factory=free_port)
    ceiling_port: int = field(default_factory=free_port)
    server_env: dict[str, str] = field(default_factory=dict)
    replicas: int = 1

    @property
    def env_file(self) -> Path:
        return self.workdir / "bench.env"

    def write_env(self) -> None:
        overrides = {
            "HTTP_PORT": str(self.port),
            "BENCH_CEILING_PORT": str(self.ceiling_port),
            "APP_TAG": "bench",
            "GUNICORN_WORKERS": str(self.workers),
            # nginx's per-address guards would measure themselves: one client does all.
            "NGINX_API_RATE": "1000000r/s",
            "NGINX_API_BURST": "1000000",
            "NGINX_WS_CONN_PER_ADDRESS": "20000",
            "CHAT_ROOM_FRAME_RATE": "1000000/second",
            "CHAT_ROOM_ADDRESS_FRAME_RATE": "1000000/second",
            # The capacity scenario reaches nginx by its address on the compose network
            # (nginx_ws_direct), a name no configuration could list in advance.
            "DJANGO_ALLOWED_HOSTS": "*",
            # A subnet of its own: the test suite's stacks may run beside it.
            "EDGE_SUBNET": "10.211.252.0/24",
            "EDGE_DYNAMIC_RANGE": "10.211.252.128/25",
            "NGINX_EDGE_ADDRESS": "10.211.252.2",
        }
        write_env_file(self.env_file, overrides)

    def compose(
        self, *args: str, timeout: float = 900, check: bool = True, files: tuple[str, ...] = FILES
    ) -> subprocess.CompletedProcess[str]:
        """`docker compose` on the bench project; `files`: the stack alone, without the bench's layer."""
        files_flags = [arg for name in files for arg in ("--file", name)]
        command = [
            "docker",
            "compose",
            "--project-name",
            PROJECT,
            *files_flags,
            "--env-file",
            str(self.env_file),
            *args,
        ]
        env = environment_for(self.env_file) | self.server_env
        result = subprocess.run(
            command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and result.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}")
        return result

    def serve(
        self, command: str, replicas: int = 1, env: dict[str, str] | None = None, *, force: bool = False
    ) -> float:
        """(Re)start the app service under `command` with `env` (compose's variables);
        seconds until every replica is healthy. Nothing to do (0 s) if it already runs so,
        unless `force`."""
        wanted = {"BENCH_APP_COMMAND": command, **(env or {})}
        if not force and wanted == self.server_env and replicas == self.replicas:
            return 0.0
        self.server_env, self.replicas = wanted, replicas
        started = time.monotonic()
        self.compose("up", "--detach", "--wait", "--no-deps", "--scale", f"app={replicas}", "--force-recreate", "app")
        took = time.monotonic() - started
        self.wait_until_nginx_routes()
        return took

    def wait_until_nginx_routes(self) -> None:
        """Until nginx re-resolves `app` it still tries the replaced containers. Measuring
        starts once NGINX_RESOLVE_SECONDS have passed and 20 answers in a row are 200."""
        started, in_a_row = time.monotonic(), 0
        with httpx.Client(timeout=5) as client:
            while in_a_row < 20 or time.monotonic() - started < NGINX_RESOLVE_SECONDS:
                try:
                    ok = client.get(f"{self.http}/api/hello/").status_code == 200
                except httpx.HTTPError:
                    ok = False
                in_a_row = in_a_row + 1 if ok else 0
                if time.monotonic() - started > 120:
                    raise RuntimeError("nginx did not route to the new app containers within 120 s")
                time.sleep(0.05)

    def up(self, command: str) -> None:
        self.server_env, self.replicas = {"BENCH_APP_COMMAND": command}, 1
        self.compose("down", "--volumes", "--remove-orphans", check=False)
        self.compose("up", "--detach", "--wait", "--build")

    def down(self) -> None:
        self.compose("down", "--volumes", "--remove-orphans", "--timeout", "10", check=False)

    def nginx_ws_direct(self) -> str:
        """ws:// to nginx's own address on the compose network, not its published loopback
        port: on loopback Docker puts its userland proxy (docker-proxy) in the path, and
        here it stopped accepting (every published connection dropped) at about 3,300
        sockets. Traffic from other machines reaches nginx through iptables DNAT instead."""
        cid = self.compose("ps", "--quiet", "nginx").stdout.strip()
        address = subprocess.run(
            ["docker", "inspect", "--format", "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}", cid],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()[0]
        return f"ws://{address}:80"

    def rss_kib(self, service: str, needle: str) -> int:
        ids = self.compose("ps", "--quiet", service).stdout.split()
        return sum(
            int(
                subprocess.run(
                    ["docker", "exec", cid, "python", "-c", RSS, needle], capture_output=True, text=True, check=True
                ).stdout
            )
            for cid in ids
        )

    def nginx_rss_kib(self) -> int:
        """nginx has no Python: its master's and workers' VmRSS from `ps` on the host."""
        cid = self.compose("ps", "--quiet", "nginx").stdout.strip()
        top = subprocess.run(["docker", "top", cid, "-o", "pid,rss"], capture_output=True, text=True, check=True)
        return sum(int(line.split()[1]) for line in top.stdout.splitlines()[1:])

    def sql(self, query: str) -> str:
        return self.compose(
            "exec",
            "-T",
            "postgres",
            "sh",
            "-c",
            f'exec psql --username "$POSTGRES_APP_USER" --dbname "$POSTGRES_DB" -tAc "{query}"',
        ).stdout.strip()

    def app_cpu_seconds(self) -> float:
        """User + system CPU the app's worker processes have used so far (host /proc)."""
        ticks = os.sysconf("SC_CLK_TCK")
        total = 0
        for pid in self.app_container_pids():
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
        return total / ticks

    def app_container_pids(self) -> list[int]:
        """Host PIDs of the Gunicorn/uvicorn worker processes (for py-spy)."""
        pids = []
        for cid in self.compose("ps", "--quiet", "app").stdout.split():
            top = subprocess.run(
                ["docker", "top", cid, "-o", "pid,ppid,args"], capture_output=True, text=True, check=True
            ).stdout.splitlines()[1:]
            rows = [line.split(None, 2) for line in top]
            parents = {pid for pid, _, _ in rows}
            pids += [int(pid) for pid, ppid, _ in rows if ppid in parents]
        return pids
