"""Gunicorn's and uvicorn's own log lines: one JSON object each, without per-socket chatter."""

from __future__ import annotations

import logging
from typing import Any


class OneLinePerSocket(logging.Filter):
    """Drops the INFO lines uvicorn and websockets write per socket (handshake, open,
    close): the app's access log writes one per socket. Warnings and errors pass."""

    CHATTER = frozenset(
        {'%s - "WebSocket %s" [accepted]', '%s - "WebSocket %s" 403', '%s - "WebSocket %s" %d'}
        | {"connection open", "connection closed"}
    )

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.levelno == logging.INFO and record.msg in self.CHATTER)


def config(level: str) -> dict[str, Any]:
    """Gunicorn's `logconfig_dict`: its and uvicorn's loggers at `level`, as JSON lines on
    stderr; no access log (the app writes its own, core.access_log)."""
    return {
        "filters": {"one_line_per_socket": {"()": OneLinePerSocket}},
        "loggers": {
            "gunicorn.error": {"level": level.upper(), "handlers": ["error_console"], "propagate": False},
            # uvicorn-worker sets this logger's handlers and level; the filter stays.
            "uvicorn.error": {"level": level.upper(), "filters": ["one_line_per_socket"], "propagate": False},
            "gunicorn.access": {"level": "INFO", "handlers": [], "propagate": False},
        },
        "formatters": {
            "generic": {
                "()": "pythonjsonlogger.json.JsonFormatter",
                "fmt": "%(asctime)s %(levelname)s %(name)s %(process)d %(message)s",
                "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger", "process": "pid"},
            }
        },
    }
