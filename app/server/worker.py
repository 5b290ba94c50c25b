"""The Gunicorn worker class: uvicorn-worker's, with the uvicorn options Gunicorn has no flag for."""

from __future__ import annotations

from typing import Any

from uvicorn_worker import UvicornWorker

from server.http import DrainOnRecycleHttpToolsProtocol
from server.websocket import LingeringCloseWebSocketProtocol


class DjangoUvicornWorker(UvicornWorker):
    """Why each option: docs/design.md (The server layer)."""

    CONFIG_KWARGS: dict[str, Any] = {
        "loop": "uvloop",
        "http": DrainOnRecycleHttpToolsProtocol,
        "ws": LingeringCloseWebSocketProtocol,
        "ws_per_message_deflate": False,
        "lifespan": "off",  # Django implements no ASGI lifespan
        "access_log": False,  # the app writes its own (core.access_log)
        "proxy_headers": True,
    }


def worker_class(**options: Any) -> type[DjangoUvicornWorker]:
    """DjangoUvicornWorker with more uvicorn options (gunicorn.conf.py's knobs)."""
    return type(
        "DjangoUvicornWorker",
        (DjangoUvicornWorker,),
        {"CONFIG_KWARGS": {**DjangoUvicornWorker.CONFIG_KWARGS, **options}, "__module__": __name__},
    )
