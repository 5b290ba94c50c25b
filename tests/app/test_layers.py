"""What each kind of process loads, beyond what the import contracts (pyproject.toml) see:
the imports a running process really makes."""

from __future__ import annotations

import subprocess
import sys

from tests.sources import ROOT


def loaded(code: str) -> set[str]:
    """The top-level packages in sys.modules after `code` runs in a fresh interpreter in app/."""
    result = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys; print(' '.join(sys.modules))"],
        cwd=ROOT / "app",
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return set(result.stdout.split())


def test_gunicorn_conf_and_the_server_layer_load_without_django() -> None:
    """Gunicorn loads its configuration before the app: the server layer imports none of it."""
    modules = {name.split(".")[0] for name in loaded("import runpy; runpy.run_path('../gunicorn.conf.py')")}
    assert modules & {"django", "channels", "rest_framework", "core", "chat", "demo", "worker"} == set()


def test_web_processes_load_the_worker_service_s_signals_but_not_its_loop() -> None:
    """A web process (the ASGI app, every URL and route) never imports django-tasks-db's
    management command, which the worker service's loop subclasses."""
    modules = loaded(
        "import django; django.setup()\n"
        "import mainkode_example.asgi, mainkode_example.urls, mainkode_example.routing\n"
        "import chat.views, chat.consumers"
    )
    assert "worker.signals" in modules  # what chat connects to
    assert {"worker.loop", "worker.heartbeat", "django_tasks_db.management.commands.db_worker"} & modules == set()
