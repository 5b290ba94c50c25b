"""The third-party internals the project overrides or calls, pinned to the source they were
checked against: an upgrade that changes one fails here, in seconds, naming the version
checked and the override to re-read (docs/design.md, Overrides of library internals).

After re-reading the override against the new source (and fixing it if need be), update
the digest and the version here in the same change."""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import inspect
from dataclasses import dataclass

import pytest


@dataclass(frozen=True)
class Internal:
    distribution: str
    target: str  # module:qualified.name
    digest: str  # sha256 of inspect.getsource(target), first 16 hex digits
    override: str  # where the project depends on it

    def source(self) -> str:
        module, _, name = self.target.partition(":")
        found: object = importlib.import_module(module)
        for part in name.split("."):
            found = getattr(found, part)
        return inspect.getsource(found)  # type: ignore[arg-type]


# The versions the sources were checked against.
CHECKED = {
    "uvicorn": "0.55.0",
    "gunicorn": "27.0.1",
    "channels": "4.3.2",
    "django": "5.2.20",
    "asgiref": "3.13.0",
    "django-tasks-db": "0.13.0",
}
HTTP = "uvicorn.protocols.http.httptools_impl"
WEBSOCKET = "uvicorn.protocols.websockets.websockets_sansio_impl"
DB_WORKER = "django_tasks_db.management.commands.db_worker"

INTERNALS = [
    # uvicorn's protocols, subclassed by the server layer.
    Internal("uvicorn", f"{HTTP}:HttpToolsProtocol.shutdown", "d7351fa33f00d430", "server/http.py"),
    Internal("uvicorn", f"{HTTP}:HttpToolsProtocol.on_headers_complete", "1ea8589acfad92d8", "server/http.py"),
    Internal("uvicorn", f"{HTTP}:RequestResponseCycle.__init__", "4d2f220910c33c12", "server/http.py"),
    Internal(
        "uvicorn",
        f"{WEBSOCKET}:WebSocketsSansIOProtocol.handle_parser_exception",
        "ff5cf13c764fb332",
        "server/websocket.py",
    ),
    Internal(
        "uvicorn", f"{WEBSOCKET}:WebSocketsSansIOProtocol.data_received", "d6884fcae2995115", "server/websocket.py"
    ),
    Internal(
        "uvicorn", f"{WEBSOCKET}:WebSocketsSansIOProtocol.handle_close", "62fd412b1f5b9e86", "server/websocket.py"
    ),
    # Gunicorn: the arbiter's SIGTERM handler (replaced per instance), the reloader's callback.
    Internal("gunicorn", "gunicorn.arbiter:Arbiter.handle_term", "93d583480a66c6ec", "server/hooks.py (on_starting)"),
    Internal("gunicorn", "gunicorn.arbiter:Arbiter.run", "1ddfab9d644f3a73", "server/hooks.py (on_starting)"),
    Internal(
        "gunicorn", "gunicorn.workers.base:Worker.init_process", "114caccd7a0e3c21", "server/hooks.py (worker_int)"
    ),
    # Channels' consumer loop, rewritten by core.websocket.JsonFrameConsumer.
    Internal(
        "channels",
        "channels.consumer:AsyncConsumer.__call__",
        "e52238720872dbc3",
        "core/websocket.py (JsonFrameConsumer.__call__)",
    ),
    Internal(
        "channels",
        "channels.consumer:AsyncConsumer.dispatch",
        "39f34e7d4fb0f655",
        "core/websocket.py (JsonFrameConsumer.dispatch)",
    ),
    # Django's CSRF origin rules, called for WebSocket handshakes.
    Internal(
        "django",
        "django.middleware.csrf:CsrfViewMiddleware._origin_verified",
        "c244e21ccaaa9f6f",
        "core/websocket.py (BrowserOriginValidator)",
    ),
    # asgiref's WSGI environ, built for the threaded HTTP handler.
    Internal("asgiref", "asgiref.wsgi:WsgiToAsgiInstance.build_environ", "7f2d62eda6941ac9", "core/http_threads.py"),
    # django-tasks-db's loop, subclassed by the worker service.
    Internal("django-tasks-db", f"{DB_WORKER}:Worker.__init__", "91acacbb9ed228dc", "worker/loop.py (TaskWorker)"),
    Internal("django-tasks-db", f"{DB_WORKER}:Worker.run", "99b3cb9412f20cf9", "worker/loop.py (TaskWorker)"),
]


@pytest.mark.parametrize("internal", INTERNALS, ids=[i.target.partition(":")[2] for i in INTERNALS])
def test_each_overridden_internal_is_the_source_it_was_checked_against(internal: Internal) -> None:
    installed = importlib.metadata.version(internal.distribution)
    where = f"{internal.target} ({internal.distribution} {installed}; checked against {CHECKED[internal.distribution]})"
    try:
        source = internal.source()
    except (AttributeError, ImportError) as error:
        pytest.fail(f"{where} is gone ({error}): {internal.override} depends on it; re-read it against the new version")
    digest = hashlib.sha256(source.encode()).hexdigest()[:16]
    assert digest == internal.digest, (
        f"{where} changed: {internal.override} overrides or calls it. Re-read the override against the new "
        f"source, then set this entry's digest to {digest} and CHECKED[{internal.distribution!r}] to {installed}."
    )


def test_a_changed_internal_is_reported_with_the_version_checked_and_the_override() -> None:
    changed = Internal("channels", "channels.consumer:AsyncConsumer.dispatch", "0" * 16, "core/websocket.py")
    with pytest.raises(AssertionError, match=r"checked against 4\.3\.2\).*core/websocket\.py"):
        test_each_overridden_internal_is_the_source_it_was_checked_against(changed)
