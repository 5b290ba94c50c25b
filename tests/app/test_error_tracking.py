"""core/error_tracking.py against a local HTTP endpoint that records what sentry-sdk sends
(nothing leaves the machine): a request's unhandled exception and a failed task arrive as
events carrying the request id, the environment and the release; without a DSN the SDK
stays off."""

from __future__ import annotations

import gzip
import json
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import sentry_sdk
from django.http import HttpRequest, HttpResponse
from django.test import Client
from django.urls import path

from chat.tasks import export_room
from core import error_tracking
from tests.app.app_process import load_settings_and_run
from tests.app.test_exports import run_queue
from tests.clients import free_port


def failing_view(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("a bug in a view")


# The URLconf of the request test: one view that raises.
urlpatterns = [path("boom/", failing_view)]


class Recorder(ThreadingHTTPServer):
    """Sentry's ingest endpoint, as far as the SDK can tell: keeps the events it receives."""

    def __init__(self, port: int) -> None:
        self.events: list[dict[str, Any]] = []
        self.requests = 0
        super().__init__(("127.0.0.1", port), RecorderHandler)


class RecorderHandler(BaseHTTPRequestHandler):
    server: Recorder

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        self.server.requests += 1
        # An envelope: a header line, then pairs of item header and payload lines.
        lines = body.split(b"\n")[1:]
        for header, payload in zip(lines[::2], lines[1::2], strict=False):
            if json.loads(header).get("type") == "event":
                self.server.events.append(json.loads(payload))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def recorder(settings: Any) -> Iterator[Recorder]:
    """The SDK on, sending to the recorder, and the middleware settings.py adds with a DSN
    (test_a_dsn_adds_the_request_id_middleware_after_liveness); off again afterwards."""
    port = free_port()
    server = Recorder(port)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    settings.MIDDLEWARE = [
        *settings.MIDDLEWARE[:2],
        "core.error_tracking.RequestIdTagMiddleware",
        *settings.MIDDLEWARE[2:],
    ]
    settings.SENTRY_DSN = f"http://public-key@127.0.0.1:{port}/42"
    settings.SENTRY_ENVIRONMENT = "test-environment"
    settings.SENTRY_RELEASE = "test-release"
    assert error_tracking.init()
    try:
        yield server
    finally:
        sentry_sdk.flush(timeout=5)
        sentry_sdk.get_global_scope().set_client(None)  # the SDK's "not initialised" client
        server.shutdown()
        server.server_close()


def test_without_a_dsn_the_sdk_stays_off(settings: Any) -> None:
    settings.SENTRY_DSN = ""
    assert error_tracking.init() is False
    assert not sentry_sdk.get_client().is_active()


def test_a_dsn_adds_the_request_id_middleware_after_liveness() -> None:
    code = "from django.conf import settings; print(settings.MIDDLEWARE[:2])"
    without = load_settings_and_run(code)
    with_dsn = load_settings_and_run(code, SENTRY_DSN="https://public-key@sentry.example.com/42")
    assert "RequestIdTagMiddleware" not in without.stdout
    assert with_dsn.stdout.strip().endswith(
        "['core.health.LivenessMiddleware', 'core.error_tracking.RequestIdTagMiddleware']"
    )


@pytest.mark.urls(__name__)
def test_an_unhandled_request_error_is_sent_with_its_request_id(recorder: Recorder) -> None:
    request_id = uuid.uuid4().hex
    response = Client(raise_request_exception=False).get("/boom/", HTTP_X_REQUEST_ID=request_id)
    assert response.status_code == 500
    sentry_sdk.flush(timeout=5)
    [event] = recorder.events
    assert event["exception"]["values"][-1]["type"] == "RuntimeError"
    assert event["tags"]["request_id"] == request_id
    assert (event["environment"], event["release"]) == ("test-environment", "test-release")
    assert "cookies" not in event["request"]  # send_default_pii off


@pytest.mark.django_db(transaction=True)
def test_a_failed_task_is_sent_with_its_exception(recorder: Recorder) -> None:
    export_room.enqueue(str(uuid.uuid4()))  # an export that does not exist: the task raises
    run_queue()
    sentry_sdk.flush(timeout=5)
    [event] = recorder.events
    assert event["logger"] == "django_tasks"
    assert "chat.tasks.export_room" in event["logentry"]["formatted"]
    assert event["exception"]["values"][-1]["type"] == "RoomExport.DoesNotExist"
