"""docs/benchmarks.md, its chart and the raw figures (benchmarks.json) from one run."""

from __future__ import annotations

import json
import statistics
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt

THIS = "this stack: Gunicorn + UvicornWorker"
CEILING = "nginx alone (return 200)"
# The performance issue's targets for WebSockets: app CPU per delivered frame to a room of
# 1,000 sockets, and app memory per idle socket.
TARGET_US_PER_FRAME = 80
TARGET_KIB_PER_IDLE_SOCKET = 30
CHART = "benchmarks-latency.png"
# Figures added by hand after reading a run (profile findings, before/after of a change).
NOTES = Path(__file__).with_name("notes.md")


def http_table(rows: list[dict[str, Any]]) -> list[str]:
    base = {(r["endpoint"], r["connections"]): r["rps"] for r in rows if r["server"] == THIS}
    out = [
        "| server | endpoint | connections | requests/s | p50 ms | p99 ms | errors | x this stack "
        "| Postgres connections (peak) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        ratio = r["rps"] / base[(r["endpoint"], r["connections"])] if base.get((r["endpoint"], r["connections"])) else 0
        pg = str(r["pg_peak"]) if r["server"] != CEILING else "-"
        out.append(
            f"| {r['server']} | {r['endpoint']} | {r['connections']} | {r['rps']:.0f} | {r['p50_ms']:.1f} | "
            f"{r['p99_ms']:.1f} | {r['errors']} | {ratio:.2f} | {pg} |"
        )
    return out


def chart(rows: list[dict[str, Any]], path: Path) -> None:
    figure, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for axis, endpoint in zip(axes, ("hello", "messages (Postgres)"), strict=True):
        for server in dict.fromkeys(r["server"] for r in rows):
            points = sorted(
                (r["connections"], r["p50_ms"], r["p99_ms"])
                for r in rows
                if r["server"] == server and r["endpoint"] == endpoint
            )
            if not points:
                continue
            xs = [p[0] for p in points]
            line = axis.plot(xs, [p[1] for p in points], marker="o", label=f"{server} p50")[0]
            axis.plot(
                xs, [p[2] for p in points], marker="x", linestyle="--", color=line.get_color(), label=f"{server} p99"
            )
        axis.set_title(f"{endpoint}: latency against load (through nginx)")
        axis.set_xlabel("concurrent connections (wrk)")
        axis.set_ylabel("latency, ms (log)")
        axis.set_yscale("log")
        axis.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=6, loc="upper left")  # the left chart has every series (nginx alone too)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def section_http(results: dict[str, Any]) -> list[str]:
    plan = results["plan"]
    return [
        f"wrk (one thread, `--latency`), {plan['seconds']:g} s per run, median of {plan['repeats']} runs, "
        f"against `/api/hello/` and `/api/rooms/bench/messages/` (DRF, cursor pagination, a page of 50 "
        f"messages from Postgres), after a warm-up. Every server runs the same app image with "
        f"{results['workers']} processes (= cores; the second sync row follows Gunicorn's own advice, "
        "2 x cores + 1) behind the same nginx (rate limits raised for the run), and each writes the same JSON "
        "access line per request (core/access_log.py); only the command differs. `nginx alone` answers the "
        "hello JSON itself on the same nginx.conf: the ceiling.",
        "",
        *http_table(results["http"]),
        "",
        f"![latency against load]({CHART})",
        "",
        "## 2. Postgres connections",
        "",
        "The last column above is the highest count of the app's connections (`application_name = "
        "'mainkode_example'`) in `pg_stat_activity`, polled every 0.2 s during each run. The bound is processes "
        f"x `DB_POOL_MAX_SIZE` (4): {results['workers']} x 4 = {results['workers'] * 4}.",
    ]


def section_fanout(results: dict[str, Any]) -> list[str]:
    plan = results["plan"]
    return [
        f"One sender, N receivers on `/ws/rooms/<slug>/` through nginx (spread by the kernel over "
        f"{results['workers']} worker processes), {plan['messages']} messages each way, one every 0.25 s, "
        "posted over REST (stored, then broadcast on commit) or sent on the sender's socket. Latency: from "
        "just before the send to each receiver's arrival (client clock, same machine). Receivers run in 2 "
        "Node processes (`ws`, bench/receivers.mjs) on the same cores as the servers.",
        "",
        "App CPU per frame: user + system CPU time of the app's worker processes from the moment every "
        "receiver is connected until the last message's stragglers have arrived, divided by the frames "
        "delivered.",
        "",
        "| channel layer | via | receivers | deliveries expected | p50 ms | p99 ms | max ms | lost | duplicated "
        "| app CPU per frame, µs |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        *(
            f"| {r['layer']} | {r['via']} | {r['receivers']} | {r['receivers'] * r['messages']} | "
            f"{r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['max_ms']:.1f} | {r['lost']} | {r['duplicated']} | "
            f"{r.get('app_cpu_us_per_frame', float('nan')):.0f} |"
            for r in results["fanout"]
        ),
    ]


def section_targets(results: dict[str, Any]) -> list[str]:
    """Each target of the performance issue against this run's figures: met, or by how much
    it was missed (the notes above say why)."""
    lines = []
    if "http" in results:
        rows = [r for r in results["http"] if r["server"] != CEILING]
        for endpoint in dict.fromkeys(r["endpoint"] for r in rows):
            for connections in results["plan"]["concurrency"]:
                here = [r for r in rows if r["endpoint"] == endpoint and r["connections"] == connections]
                this = next(r for r in here if r["server"] == THIS)
                # A layout that answered with errors is not ahead, however fast its errors came.
                best = max((r for r in here if r["server"] != THIS and not r["errors"]), key=lambda r: r["rps"])
                ratio = this["rps"] / best["rps"]
                verdict = "met" if ratio >= 1 else f"missed by {1 - ratio:.0%}"
                lines.append(
                    f"- HTTP `{endpoint}`, {connections} connections, at or above the best other layout: {verdict} "
                    f"(this stack {this['rps']:.0f} requests/s, {this['errors']} errors; best other: {best['server']}, "
                    f"{best['rps']:.0f}; {ratio:.2f}x)"
                )
    if "fanout" in results:
        core = [r for r in results["fanout"] if r["layer"] == "core"]
        for r in (r for r in core if r["receivers"] >= 1000):
            cost = r.get("app_cpu_us_per_frame", float("nan"))
            verdict = "met" if cost <= TARGET_US_PER_FRAME else f"missed, {cost / TARGET_US_PER_FRAME:.1f}x the target"
            lines.append(
                f"- WebSocket fan-out to {r['receivers']} sockets via {r['via']}, at most {TARGET_US_PER_FRAME} µs of "
                f"app CPU per delivered frame: {verdict} ({cost:.0f} µs; {r['lost']} lost, {r['duplicated']} "
                f"duplicated; p99 {r['p99_ms']:.0f} ms)"
            )
        lines += [
            f"- fan-out p99, {r['receivers']} receivers via {r['via']} (reported, no target): {r['p99_ms']:.0f} ms"
            for r in core
            if r["receivers"] < 1000
        ]
    if "capacity" in results:
        c = results["capacity"]
        per_socket = (c["app_rss_after_mib"] - c["app_rss_before_mib"]) * 1024 / max(c["opened"], 1)
        verdict = (
            "met"
            if per_socket <= TARGET_KIB_PER_IDLE_SOCKET
            else f"missed by {per_socket / TARGET_KIB_PER_IDLE_SOCKET - 1:.0%}"
        )
        python = (
            f"; its Python objects, measured apart: {results['socket_memory']['python_kib_per_socket']:.0f} KiB"
            if "socket_memory" in results
            else ""
        )
        lines.append(
            f"- app memory per idle socket, aim {TARGET_KIB_PER_IDLE_SOCKET} KiB: {verdict} "
            f"({per_socket:.1f} KiB{python})"
        )
    if "ops" in results:
        took = results["ops"]["cold_up_seconds"]
        lines.append(f"- cold start, `up --wait` in 10 s or less: {'met' if took <= 10 else 'missed'} ({took:.1f} s)")
    return lines


def section_capacity(results: dict[str, Any]) -> list[str]:
    c = results["capacity"]
    held = max(c["opened"], 1)
    return [
        f"Target {c['target']} idle sockets on `/ws/chat/<room>/` (rooms of 100) through nginx, opened in "
        f"{c['open_seconds']:.0f} s; {c['opened']} opened"
        + (f" (stopped by: `{c['stopped_by']}`)" if c["stopped_by"] else "")
        + f", {c['alive_after_10s']} still open 10 s later; a message between two of them "
        + ("was" if c["room_message_delivered"] else "was NOT")
        + " delivered while all were held.",
        "",
        "| process | RSS before, MiB | RSS with the sockets, MiB | per socket, KiB |",
        "|---|---:|---:|---:|",
        f"| app (every Gunicorn process) | {c['app_rss_before_mib']:.0f} | {c['app_rss_after_mib']:.0f} | "
        f"{(c['app_rss_after_mib'] - c['app_rss_before_mib']) * 1024 / held:.1f} |",
        f"| nginx | {c['nginx_rss_before_mib']:.0f} | {c['nginx_rss_after_mib']:.0f} | "
        f"{(c['nginx_rss_after_mib'] - c['nginx_rss_before_mib']) * 1024 / held:.1f} |",
        *section_socket_memory(results),
    ]


def section_socket_memory(results: dict[str, Any]) -> list[str]:
    """What one idle socket's Python objects weigh, by the package that allocated them."""
    if "socket_memory" not in results:
        return []
    m = results["socket_memory"]
    return [
        "",
        f"Python memory one idle room socket holds in a worker: {m['python_kib_per_socket']:.1f} KiB "
        f"(tracemalloc over {m['sockets']} sockets in one uvicorn process configured as gunicorn.conf.py "
        "configures a worker; clients offer permessage-deflate, as browsers do; "
        "`bench/socket_memory.py`). The rest of the RSS per socket above is the allocator's "
        "(freed blocks it keeps, arenas partly used) and the interpreter's.",
        "",
        "| allocated by | KiB per socket |",
        "|---|---:|",
        *(f"| {name} | {kib:.2f} |" for name, kib in m["by_owner"]),
        "",
        "| largest allocation sites | KiB per socket |",
        "|---|---:|",
        *(f"| `{where}` | {kib:.2f} |" for where, kib in m["top_lines"]),
    ]


def section_ops(results: dict[str, Any]) -> list[str]:
    o = results["ops"]
    return [
        f"- cold `docker compose up --detach --wait` (images built, empty volume: initdb, migrations, every "
        f"healthcheck green): {o['cold_up_seconds']:.1f} s",
        f"- rebuild of the app image after a one-line edit of `app/chat/views.py`: {o['rebuild_seconds']:.1f} s",
        f"- image sizes: app {o['app_image_mib']:.0f} MiB, proxy (nginx + static files) {o['proxy_image_mib']:.0f} MiB",
        "",
        "The cold `up --wait`, from Docker's container events (seconds from its start):",
        "",
        "| service | created | started | healthy | exited |",
        "|---|---:|---:|---:|---:|",
        *timeline_rows(o.get("cold_up_timeline", [])),
    ]


def timeline_rows(timeline: list[tuple[float, str, str]]) -> list[str]:
    """One row per service, in the order they started: the first time of each event."""
    firsts: dict[str, dict[str, float]] = {}
    for seconds, service, status in timeline:
        firsts.setdefault(service, {}).setdefault(status, seconds)
    order = sorted(firsts, key=lambda service: firsts[service].get("start", float("inf")))
    return [
        f"| {service} | "
        + " | ".join(
            f"{firsts[service][s]:.1f}" if s in firsts[service] else "" for s in ("create", "start", "healthy", "die")
        )
        + " |"
        for service in order
    ]


def section_tasks(results: dict[str, Any]) -> list[str]:
    t = results["tasks"]
    rows = [
        f"| {m['mode']} | {phase} | {m[phase]['hello_p50_ms']:.1f} | {m[phase]['hello_p99_ms']:.1f} | "
        f"{m[phase]['echo_p50_ms']:.1f} | {m[phase]['echo_p99_ms']:.1f} | {m[phase]['samples']} |"
        for m in t["modes"]
        for phase in ("idle", "busy")
    ]
    took = ", ".join(f"{m['mode']}: {m['exports_seconds']:.1f} s" for m in t["modes"])
    return [
        f"{t['modes'][0]['exports']} exports of a room of {t['export_messages']:,} messages asked at once (gzip JSON "
        "Lines, docs/api.md), while one client GETs `/api/hello/` and another sends `Hi` on `/ws/chat/` and "
        "waits for the echo, one after another, 20 ms apart: before (idle) and while the exports run (busy). "
        "In the worker service (one replica, the default) or inside the requests that ask for them "
        f"(`TASKS_INLINE=true`, a switch only this benchmark uses). All exports done in: {took}.",
        "",
        "| exports run | phase | hello p50 ms | hello p99 ms | echo p50 ms | echo p99 ms | samples |",
        "|---|---|---:|---:|---:|---:|---:|",
        *rows,
        "",
        f"- pickup, enqueue to start (the task table's timestamps), a small export asked while the worker is "
        f"idle: median {t['pickup_ms_median']:.0f} ms, max {t['pickup_ms_max']:.0f} ms over {t['pickups']} "
        "(the worker polls every `WORKER_POLL_INTERVAL`, 1 s)",
        f"- throughput: {t['small_jobs']} exports of a 100-message room asked at once: "
        f"{t['jobs_per_second']:.1f} jobs/s with one worker replica (end to end, as the clients saw them finish)",
    ]


def section_profile(results: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    for p in results["profile"]:
        lines += [f"### {p['load']}", ""]
        if not p["top"]["inclusive"]:
            lines += [f"No profile: {p['error']}", ""]
            continue
        # Frames every sample shares (thread bootstrap, the executor loop) say nothing.
        boring = ("threading.py", "concurrent/futures/thread.py", "<module>", "gunicorn/arbiter.py", "gunicorn/app/")
        inclusive = [(f, share) for f, share in p["top"]["inclusive"] if not any(b in f for b in boring)]
        lines += [
            f"py-spy (from the host, 100 Hz, {results['plan']['profile_seconds']} s; samples of waiting threads "
            "left out) on one worker of this stack.",
            "",
            "| thread | share of samples |",
            "|---|---:|",
            *(f"| {role} | {share:.1f}% |" for role, share in p["top"].get("roles", [])),
            "",
            "| function (on the stack) | share of samples |",
            "|---|---:|",
            *(f"| `{frame}` | {share:.1f}% |" for frame, share in inclusive[:20]),
            "",
            "| function (running itself) | share of samples |",
            "|---|---:|",
            *(f"| `{frame}` | {share:.1f}% |" for frame, share in p["top"]["self"][:12]),
            "",
        ]
    return lines


def section_metrics(results: dict[str, Any]) -> list[str]:
    """What recording the metrics costs: each figure with METRICS_ENABLED on and off, in
    rounds of one run each; the difference is taken within each round (the machine drifts
    between rounds more than the metrics cost), and the median of the rounds shown."""
    found = results["metrics"]
    on = [row for row in found["rows"] if row["metrics"] == "on"]
    off = [row for row in found["rows"] if row["metrics"] == "off"]
    figures = [
        ("`/api/hello/` requests/s", "hello", "rps", ".0f"),
        ("`/api/hello/` p99 ms", "hello", "p99_ms", ".1f"),
        ("fan-out app CPU per frame, µs", "fanout", "app_cpu_us_per_frame", ".0f"),
        ("fan-out p99 ms", "fanout", "p99_ms", ".1f"),
    ]
    lines = [
        f"The app with its metrics recorded (the default) and with `METRICS_ENABLED=false`, in {len(on)} "
        f"round(s) of one run each: `/api/hello/` through nginx at {found['connections']} connections (median "
        f"of {results['plan']['repeats']} wrk runs of {results['plan']['seconds']:.0f} s), then the fan-out of "
        f"{results['plan']['messages']} REST posts to {found['receivers']} sockets on the core layer. This "
        "machine drifts between rounds by more than the metrics cost, so each round's on is compared with "
        "its own off; the table shows each round's figures and the median of the rounds' differences.",
        "",
        "| figure | on (each round) | off (each round) | on vs off, median of rounds |",
        "|---|---|---|---:|",
    ]
    for label, part, key, form in figures:
        pairs = [(a[part][key], b[part][key]) for a, b in zip(on, off, strict=True)]
        changes = [(a - b) / b * 100 for a, b in pairs if b]
        median = f"{statistics.median(changes):+.1f}%" if changes else "n/a"
        lines.append(
            f"| {label} | {', '.join(f'{a:{form}}' for a, _ in pairs)} | "
            f"{', '.join(f'{b:{form}}' for _, b in pairs)} | {median} |"
        )
    return lines


SECTIONS = [
    ("http", "## Against the targets", section_targets),
    ("http", "## 1. HTTP through nginx", section_http),
    ("fanout", "## 3. WebSocket fan-out", section_fanout),
    ("capacity", "## 4. Idle WebSocket connections", section_capacity),
    ("ops", "## 5. Operations", section_ops),
    ("tasks", "## 6. Background tasks", section_tasks),
    ("metrics", "## 7. What the metrics cost", section_metrics),
    ("profile", "## Where a worker's time goes", section_profile),
]


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")


def write(results: dict[str, Any], out: Path) -> list[Path]:
    when = results.get("written") or now()
    results["written"] = when
    smoke = " --smoke (a smoke run: figures mean nothing)" if results["smoke"] else ""
    lines = [
        "# Benchmarks: this stack against the servers a user might pick instead",
        "",
        f"Written by `scripts/bench`{smoke} on {when}, in {results['took_seconds'] / 60:.1f} minutes. Every "
        "figure is from that one run on one machine; load generator, servers, nginx, Postgres and Redis share "
        "its cores, so the ratios travel better than the absolute numbers. Raw figures: `benchmarks.json`.",
        "",
        *(
            f"Section `{name}` was run again alone on {at} (`scripts/bench --only {name}`), on the same machine.\n"
            for name, at in results.get("rerun", {}).items()
        ),
        "## Machine",
        "",
        *(f"- {key}: {value}" for key, value in results["machine"].items()),
        "",
    ]
    if NOTES.exists() and not results["smoke"]:
        lines += [NOTES.read_text().rstrip(), ""]
    for key, title, render in SECTIONS:
        lines += [title, ""]
        if key in results:
            lines += [*render(results), ""]
        else:
            lines += [f"Not measured in this run: `{results.get('failed', {}).get(key, 'skipped')}`", ""]
    doc = out / "benchmarks.md"
    doc.write_text("\n".join(lines))
    written = [doc]
    if "http" in results:
        chart(results["http"], out / CHART)
        written.append(out / CHART)
    raw = out / "benchmarks.json"
    raw.write_text(json.dumps(results, indent=1, default=str) + "\n")
    return [*written, raw]
