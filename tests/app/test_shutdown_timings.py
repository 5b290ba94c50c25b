"""The shutdown chain (docs/design.md, Shutdown timings): each value is read from its one
owner, and the rules that tie them together hold."""

from __future__ import annotations

import re
from typing import Any

import yaml

from tests.sources import ROOT, gunicorn_default, nginx_resolve_seconds

# Seconds every grace period leaves beyond the work it covers.
MARGIN = 5


def seconds(value: str | int) -> int:
    match = re.fullmatch(r"(?:\$\{\w+:-)?(\d+)s?\}?", str(value))
    assert match, f"not a duration in seconds: {value!r}"
    return int(match.group(1))


def uvicorn_graceful_seconds() -> int:
    """uvicorn's deadline for in-flight work, derived from Gunicorn's in gunicorn.conf.py."""
    source = (ROOT / "gunicorn.conf.py").read_text()
    match = re.search(r"timeout_graceful_shutdown=max\(1, graceful_timeout - (\d+)\)", source)
    assert match, "gunicorn.conf.py no longer derives uvicorn's timeout_graceful_shutdown"
    return gunicorn_default("GUNICORN_GRACEFUL_TIMEOUT") - int(match.group(1))


def nginx_upstream_keepalive() -> int:
    template = (ROOT / "nginx" / "templates" / "default.conf.template").read_text()
    upstream = template[template.index("upstream app") :]
    return seconds(re.search(r"keepalive_timeout (\d+s);", upstream).group(1))  # type: ignore[union-attr]


def services(path: str) -> dict[str, Any]:
    return dict(yaml.safe_load((ROOT / path).read_text())["services"])


def kubernetes(path: str) -> dict[str, Any]:
    (deployment,) = [d for d in yaml.safe_load_all((ROOT / path).read_text()) if d and d["kind"] == "Deployment"]
    return dict(deployment["spec"]["template"]["spec"])


def test_gunicorn_keeps_idle_connections_longer_than_nginx_and_drains_past_nginx_keepalive() -> None:
    """nginx closes an idle upstream connection first (never a 502 on reuse); a recycled
    worker's idle connections are closed by nginx within uvicorn's graceful deadline."""
    assert gunicorn_default("GUNICORN_KEEPALIVE") > nginx_upstream_keepalive()
    assert uvicorn_graceful_seconds() > nginx_upstream_keepalive()


def test_compose_holds_a_stopping_replica_past_nginx_re_resolution_and_waits_for_it() -> None:
    app = services("docker-compose.yml")["app"]
    hold = int(app["environment"]["GUNICORN_EXIT_HOLD_SECONDS"])
    assert hold > nginx_resolve_seconds() - 1
    graceful = gunicorn_default("GUNICORN_GRACEFUL_TIMEOUT")
    assert seconds(app["stop_grace_period"]) >= graceful + hold + MARGIN


def test_swarm_drains_a_stopping_replica_past_nginx_re_resolution_and_waits_for_it() -> None:
    app = services("deploy/swarm/stack.yml")["app"]
    drain = int(app["environment"]["GUNICORN_DRAIN_SECONDS"])
    assert drain >= 2 * nginx_resolve_seconds()  # and the DNS change spreading between nodes
    graceful = gunicorn_default("GUNICORN_GRACEFUL_TIMEOUT")
    assert seconds(app["stop_grace_period"]) >= drain + graceful + MARGIN


def test_kubernetes_pauses_past_nginx_re_resolution_and_waits_for_it() -> None:
    spec = kubernetes("deploy/kubernetes/base/app.yaml")
    (container,) = [c for c in spec["containers"] if c["name"] == "app"]
    pause = seconds(container["lifecycle"]["preStop"]["exec"]["command"][1])
    assert pause >= 2 * nginx_resolve_seconds()  # and the cluster DNS's TTL
    graceful = gunicorn_default("GUNICORN_GRACEFUL_TIMEOUT")
    assert spec["terminationGracePeriodSeconds"] >= pause + graceful + MARGIN


def test_the_worker_service_gets_the_same_grace_everywhere() -> None:
    compose = seconds(services("docker-compose.yml")["worker"]["stop_grace_period"])
    swarm = seconds(services("deploy/swarm/stack.yml")["worker"]["stop_grace_period"])
    assert compose == swarm == kubernetes("deploy/kubernetes/base/worker.yaml")["terminationGracePeriodSeconds"]


def test_the_deploy_script_waits_for_nginx_re_resolution_from_its_owner() -> None:
    """scripts/deploy reads nginx's re-resolution period from the template, not a copy."""
    script = (ROOT / "scripts" / "deploy").read_text()
    assert "default.conf.template" in script
    assert not re.search(r"^sleep \d", script, re.MULTILINE)
