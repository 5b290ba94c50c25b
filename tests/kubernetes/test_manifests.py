"""The Kubernetes overlays: each renders, validates against the Kubernetes API schemas
(kubernetes-validate --strict, 1.33), and has the properties of manifests.violations();
each rule, broken on purpose, is caught. No cluster runs here: this is what can be known
without one (docs/kubernetes.md says what to check on a first deploy)."""

from __future__ import annotations

import copy
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.kubernetes.manifests import OVERLAYS, named, render, violations
from tests.sources import ROOT

KUBERNETES_VERSION = "1.33.0"
Objects = list[dict[str, Any]]


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Objects, Path]:
    workdir = tmp_path_factory.mktemp(f"kubernetes-{request.param}")
    return request.param, render(request.param, workdir), workdir / f"{request.param}.yaml"


def test_both_overlays_exist() -> None:
    assert OVERLAYS == ["local", "production"]


def test_the_overlay_validates_against_the_kubernetes_api(rendered: tuple[str, Objects, Path]) -> None:
    _, _, path = rendered
    validate = [sys.executable, "-m", "kubernetes_validate", "--strict", "--kubernetes-version", KUBERNETES_VERSION]
    result = subprocess.run([*validate, "--quiet", str(path)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_overlay_has_every_property(rendered: tuple[str, Objects, Path]) -> None:
    _, objects, _ = rendered
    assert violations(objects) == []


def test_the_local_overlay_runs_postgres_and_redis_and_production_does_not(rendered: tuple[str, Objects, Path]) -> None:
    overlay, objects, _ = rendered
    stores = {o["metadata"]["name"] for o in objects if o["kind"] in {"StatefulSet", "Deployment"}} & {
        "postgres",
        "redis",
    }
    kinds = {o["kind"] for o in objects}
    if overlay == "local":
        assert stores == {"postgres", "redis"}
        assert named(objects, "StatefulSet", "postgres")["spec"]["volumeClaimTemplates"]  # type: ignore[index]
    else:
        assert stores == set()
        assert {"HorizontalPodAutoscaler", "PodDisruptionBudget"} <= kinds


def test_the_local_postgres_creates_the_roles_compose_does() -> None:
    """A copy (kustomize reads no file outside the overlay): the same bytes."""
    copy = ROOT / "deploy" / "kubernetes" / "overlays" / "local" / "roles.sh"
    assert copy.read_bytes() == (ROOT / "postgres" / "roles.sh").read_bytes()


def app_container(objects: Objects) -> dict[str, Any]:
    app = named(objects, "Deployment", "app")
    assert app is not None
    container: dict[str, Any] = app["spec"]["template"]["spec"]["containers"][0]
    return container


def drop_readiness(objects: Objects) -> None:
    del app_container(objects)["readinessProbe"]


def allow_escalation(objects: Objects) -> None:
    app_container(objects)["securityContext"]["allowPrivilegeEscalation"] = True


def short_grace(objects: Objects) -> None:
    named(objects, "Deployment", "app")["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = 20  # type: ignore[index]


def open_the_app(objects: Objects) -> None:
    policy = named(objects, "NetworkPolicy", "app-from-nginx")
    policy["spec"]["ingress"].append({"ports": [{"protocol": "TCP", "port": 8000}]})  # type: ignore[index]


def let_monitoring_reach_the_app_port(objects: Objects) -> None:
    policy = named(objects, "NetworkPolicy", "metrics-from-monitoring")
    policy["spec"]["ingress"][0]["ports"].append({"protocol": "TCP", "port": 8000})  # type: ignore[index]


def lose_a_secret_key(objects: Objects) -> None:
    secret = next(o for o in objects if o["kind"] == "Secret")
    del secret["data"]["postgres-password"]


def mismatch_selector(objects: Objects) -> None:
    named(objects, "Service", "app")["spec"]["selector"]["app.kubernetes.io/component"] = "api"  # type: ignore[index]


def fractional_cpu(objects: Objects) -> None:
    app_container(objects)["resources"]["limits"]["cpu"] = "1500m"


def invent_a_setting(objects: Objects) -> None:
    config = next(o for o in objects if o["kind"] == "ConfigMap")
    config["data"]["DJANGO_SECRET_KEY_PATH"] = "/nowhere"


def lose_a_setting(objects: Objects) -> None:
    config = next(o for o in objects if o["kind"] == "ConfigMap")
    del config["data"]["REDIS_URL"]


@pytest.mark.parametrize(
    "breakage",
    [
        drop_readiness,
        allow_escalation,
        short_grace,
        let_monitoring_reach_the_app_port,
        open_the_app,
        lose_a_secret_key,
        mismatch_selector,
        fractional_cpu,
        lose_a_setting,
        invent_a_setting,
    ],
)
def test_a_rule_broken_on_purpose_is_caught(
    rendered: tuple[str, Objects, Path], breakage: Callable[[Objects], None]
) -> None:
    _, objects, _ = rendered
    broken = copy.deepcopy(objects)
    breakage(broken)
    assert violations(broken) != []
