"""The Kubernetes overlays rendered as a user renders them (`kubectl kustomize`, with
throwaway secret files), and the properties every rendering must have, as one function
that lists what breaks them (so a test can also break a rule on purpose)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.sources import (
    REQUIRED_VARIABLES,
    ROOT,
    gunicorn_default,
    nginx_defaults,
    variables_read_by_app_code,
    variables_read_by_nginx,
)

KUBERNETES = ROOT / "deploy" / "kubernetes"
OVERLAYS = sorted(path.name for path in (KUBERNETES / "overlays").iterdir())
SECRET_FILES = ("django-secret-key", "postgres-password", "redis-password")
WORKLOADS = {"Deployment", "StatefulSet", "Job"}
# What the app needs to start in production (the settings' required variables, and the
# admin path production insists on).
REQUIRED = {*REQUIRED_VARIABLES, "DJANGO_ADMIN_URL"}


def render(overlay: str, workdir: Path) -> list[dict[str, Any]]:
    """The overlay's objects, as `kubectl kustomize` renders them from a copy of the tree
    holding throwaway secret files (real ones are the user's, never committed)."""
    tree = workdir / "kubernetes"
    shutil.copytree(KUBERNETES, tree)
    for name in SECRET_FILES:
        (tree / "base" / "secrets" / name).write_text(f"throwaway-{name}-0123456789abcdefghijklmnopqrstuvwxyz\n")
    rendered = subprocess.run(
        ["kubectl", "kustomize", str(tree / "overlays" / overlay)], capture_output=True, text=True, check=True
    ).stdout
    (workdir / f"{overlay}.yaml").write_text(rendered)
    return [item for item in yaml.safe_load_all(rendered) if item]


def named(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any] | None:
    return next((o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name), None)


def pod_templates(objects: list[dict[str, Any]]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    return [(o, o["spec"]["template"]) for o in objects if o["kind"] in WORKLOADS]


def cpu_count(value: str) -> float:
    return float(value[:-1]) / 1000 if str(value).endswith("m") else float(value)


def matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def violations(objects: list[dict[str, Any]]) -> list[str]:  # noqa: PLR0912 (one list of rules)
    found: list[str] = []
    config: dict[str, str] = next((o["data"] for o in objects if o["kind"] == "ConfigMap"), {})
    secret = next((o for o in objects if o["kind"] == "Secret"), None)
    namespace = next((o["metadata"]["name"] for o in objects if o["kind"] == "Namespace"), None)
    if secret is None or namespace is None:
        return ["the rendering has no Secret or no Namespace"]

    for workload, template in pod_templates(objects):
        where = f"{workload['kind']}/{workload['metadata']['name']}"
        spec = template["spec"]
        labels = template["metadata"].get("labels", {})
        if workload["kind"] != "Job" and not matches(workload["spec"]["selector"]["matchLabels"], labels):
            found.append(f"{where}: its selector does not match its pods' labels")
        if spec.get("automountServiceAccountToken") is not False:
            found.append(f"{where}: mounts a service-account token")
        pod_security = spec.get("securityContext", {})
        if pod_security.get("runAsNonRoot") is not True:
            found.append(f"{where}: may run as root")
        if pod_security.get("seccompProfile", {}).get("type") != "RuntimeDefault":
            found.append(f"{where}: no RuntimeDefault seccomp profile")
        secret_mounts = {
            volume["name"]: volume["secret"]["secretName"] for volume in spec.get("volumes", []) if "secret" in volume
        }
        for container in spec["containers"]:
            here = f"{where}/{container['name']}"
            security = container.get("securityContext", {})
            if security.get("allowPrivilegeEscalation") is not False or security.get("privileged"):
                found.append(f"{here}: may escalate privileges")
            if security.get("readOnlyRootFilesystem") is not True:
                found.append(f"{here}: writable root filesystem")
            if security.get("capabilities", {}).get("drop") != ["ALL"] or security.get("capabilities", {}).get("add"):
                found.append(f"{here}: keeps Linux capabilities")
            resources = container.get("resources", {})
            for kind in ("requests", "limits"):
                if not {"cpu", "memory"} <= set(resources.get(kind, {})):
                    found.append(f"{here}: no CPU and memory {kind}")
            if workload["kind"] != "Job":
                for probe in ("readinessProbe", "livenessProbe"):
                    if probe not in container:
                        found.append(f"{here}: no {probe}")
            env = {item["name"]: item for item in container.get("env", [])}
            for name, item in env.items():
                if name.endswith("_FILE"):
                    mount = next(
                        (
                            m
                            for m in container.get("volumeMounts", [])
                            if item["value"].startswith(m["mountPath"] + "/")
                        ),
                        None,
                    )
                    key = item["value"].rsplit("/", 1)[1]
                    if mount is None or mount["name"] not in secret_mounts or key not in secret.get("data", {}):
                        found.append(f"{here}: {name} points at no key of a mounted Secret")
            if container["name"] in {"app", "worker", "migrate"}:
                provided = set(config) | {name.removesuffix("_FILE") for name in env}
                for name in sorted(REQUIRED - provided):
                    found.append(f"{here}: the app needs {name}, and nothing provides it")

    if named(objects, "Deployment", "worker") is None:
        found.append("no worker Deployment (background tasks)")
    app = named(objects, "Deployment", "app")
    if app is None:
        return [*found, "no app Deployment"]
    spec = app["spec"]["template"]["spec"]
    container = spec["containers"][0]
    if app["spec"].get("strategy", {}).get("rollingUpdate", {}).get("maxUnavailable") != 0:
        found.append("app: a rolling update may take pods away before new ones are ready")
    if "startupProbe" not in container:
        found.append("app: no startupProbe")
    pre_stop = container.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
    if len(pre_stop) != 2 or pre_stop[0] != "sleep":
        found.append("app: no preStop pause")
        pause = 0
    else:
        pause = int(pre_stop[1])
    graceful = int(config.get("GUNICORN_GRACEFUL_TIMEOUT") or gunicorn_default("GUNICORN_GRACEFUL_TIMEOUT"))
    if spec.get("terminationGracePeriodSeconds", 30) <= pause + graceful:
        found.append(
            f"app: terminationGracePeriodSeconds is not longer than the pause ({pause}) + graceful ({graceful})"
        )
    if not any(c.get("topologyKey") == "kubernetes.io/hostname" for c in spec.get("topologySpreadConstraints", [])):
        found.append("app: pods are not spread over nodes")
    cpu = container.get("resources", {}).get("limits", {}).get("cpu", "0")
    if cpu_count(cpu) < 1 or cpu_count(cpu) != int(cpu_count(cpu)) or container["resources"]["requests"]["cpu"] != cpu:
        found.append("app: the CPU limit is not whole CPUs equal to the request (Gunicorn's worker count)")
    workers = config.get("GUNICORN_WORKERS")
    if workers and int(workers) != cpu_count(cpu):
        found.append("app: GUNICORN_WORKERS differs from the CPU limit")

    # nginx finds the app through its Service's full name in this namespace.
    service = named(objects, "Service", "app")
    if service is None or service["spec"].get("clusterIP") != "None":
        found.append("app: no headless Service `app` for nginx to resolve")
    if config.get("NGINX_APP_HOST") != f"app.{namespace}.svc.cluster.local":
        found.append(f"nginx: NGINX_APP_HOST is not the app Service's name in namespace {namespace}")
    nginx = named(objects, "Deployment", "nginx")
    if nginx is not None:
        ports = {
            p["containerPort"] for c in nginx["spec"]["template"]["spec"]["containers"] for p in c.get("ports", [])
        }
        if int(config.get("NGINX_HTTP_LISTEN", 80)) not in ports:
            found.append("nginx: NGINX_HTTP_LISTEN is not its container port")

    # Every Service selects pods, on a port they have.
    templates = [t for _, t in pod_templates(objects)]
    for service in (o for o in objects if o["kind"] == "Service"):
        name = service["metadata"]["name"]
        pods = [t for t in templates if matches(service["spec"]["selector"], t["metadata"].get("labels", {}))]
        if not pods:
            found.append(f"Service/{name}: selects no pods")
        for port in service["spec"]["ports"]:
            target = port.get("targetPort", port["port"])
            declared = {p.get("name") for t in pods for c in t["spec"]["containers"] for p in c.get("ports", [])} | {
                p["containerPort"] for t in pods for c in t["spec"]["containers"] for p in c.get("ports", [])
            }
            if target not in declared:
                found.append(f"Service/{name}: targets port {target}, which its pods do not declare")
    for budget in (o for o in objects if o["kind"] in {"PodDisruptionBudget"}):
        if not any(
            matches(budget["spec"]["selector"]["matchLabels"], t["metadata"].get("labels", {})) for t in templates
        ):
            found.append(f"PodDisruptionBudget/{budget['metadata']['name']}: selects no pods")
    for scaler in (o for o in objects if o["kind"] == "HorizontalPodAutoscaler"):
        if named(objects, scaler["spec"]["scaleTargetRef"]["kind"], scaler["spec"]["scaleTargetRef"]["name"]) is None:
            found.append(f"HorizontalPodAutoscaler/{scaler['metadata']['name']}: scales nothing")

    # The settings are the variables the code reads (.env.example's names), none invented;
    # nginx gets every one its templates need that has no default.
    known = variables_read_by_app_code() | variables_read_by_nginx() | set(nginx_defaults())
    found += [f"ConfigMap: {name} is read by no code" for name in sorted(set(config) - known)]
    if "DJANGO_ALLOWED_HOSTS" not in config:
        found.append("nginx: no DJANGO_ALLOWED_HOSTS (its server names)")

    found += network_violations(objects)
    return found


def network_violations(objects: list[dict[str, Any]]) -> list[str]:
    """Default deny, then: only nginx reaches the app; only the app, the worker and the
    migration Job reach Postgres; only the app and the worker reach Redis; the monitoring
    namespace reaches the app's and the worker's metrics port and nothing else."""
    policies = [o for o in objects if o["kind"] == "NetworkPolicy"]
    found = []
    if not any(
        p["spec"]["podSelector"] == {} and "Ingress" in p["spec"]["policyTypes"] and not p["spec"].get("ingress")
        for p in policies
    ):
        found.append("NetworkPolicy: no default deny for ingress")
    # nginx is open to all (the load balancer); the worker to no pod of the namespace.
    allowed_from = {
        "app": {"nginx"},
        "worker": set(),
        "postgres": {"app", "worker", "migrate"},
        "redis": {"app", "worker"},
    }
    for policy in policies:
        name = policy["metadata"]["name"]
        for target in selected_components(policy["spec"]["podSelector"]) & allowed_from.keys():
            for rule in policy["spec"].get("ingress", []):
                peers = rule.get("from")
                if not peers:
                    found.append(f"NetworkPolicy/{name}: anyone may reach {target}")
                    continue
                for peer in peers:
                    if is_prometheus_scrape(target, peer, rule.get("ports", [])):
                        continue
                    source = peer.get("podSelector", {}).get("matchLabels", {}).get("app.kubernetes.io/component")
                    outside = "namespaceSelector" in peer or "ipBlock" in peer
                    if source not in allowed_from[target] or outside:
                        found.append(f"NetworkPolicy/{name}: {source or peer} may reach {target}")
    return found


def selected_components(selector: dict[str, Any]) -> set[str]:
    """The components (app.kubernetes.io/component) a pod selector picks, by label or by an
    In expression."""
    components = set()
    if "app.kubernetes.io/component" in selector.get("matchLabels", {}):
        components.add(selector["matchLabels"]["app.kubernetes.io/component"])
    for expression in selector.get("matchExpressions", []):
        if expression["key"] == "app.kubernetes.io/component" and expression["operator"] == "In":
            components.update(expression["values"])
    return components


def is_prometheus_scrape(target: str, peer: dict[str, Any], ports: list[dict[str, Any]]) -> bool:
    """Pods of the monitoring namespace (any pod there) to the metrics port of the app or
    the worker, and to no other port."""
    namespace = peer.get("namespaceSelector", {}).get("matchLabels", {})
    return (
        target in {"app", "worker"}
        and namespace == {"kubernetes.io/metadata.name": "monitoring"}
        and "podSelector" not in peer
        and [port.get("port") for port in ports] == [9101]
    )
