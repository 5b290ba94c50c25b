"""core/metrics.py: each metric moves as it should for a known sequence of requests,
sockets and group sends (this process's values; the live tests read the merged view of a
real Gunicorn master)."""

from __future__ import annotations

import logging

import pytest
from channels.testing import WebsocketCommunicator
from django.test import Client
from prometheus_client import REGISTRY

from core.groups import Inbox, deliver, group_send, group_send_sync
from core.metrics import DB_POOL_CONNECTIONS, UNMATCHED, PoolStats
from mainkode_example.asgi import application
from tests.app.app_process import load_settings_and_run


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.mark.django_db
def test_requests_are_counted_and_timed_by_url_pattern_never_by_raw_path(client: Client) -> None:
    before = {
        "hello": value("app_http_requests_total", method="GET", route="api/hello/", status="200"),
        "refused": value("app_http_requests_total", method="POST", route="api/hello/", status="405"),
        "room": value("app_http_requests_total", method="GET", route="api/rooms/<slug:slug>/", status="404"),
        "unmatched": value("app_http_requests_total", method="GET", route=UNMATCHED, status="404"),
        "timed": value("app_http_request_duration_seconds_count", route="api/hello/"),
        "liveness": value("app_http_requests_total", method="GET", route=UNMATCHED, status="200"),
        "odd": value("app_http_requests_total", method="other", route="api/hello/", status="405"),
    }
    for _ in range(3):
        assert client.get("/api/hello/").status_code == 200
    assert client.post("/api/hello/", {}).status_code == 405
    assert client.generic("BREW", "/api/hello/").status_code == 405  # any token is a method to HTTP
    assert client.get("/api/rooms/no-such-room/").status_code == 404
    assert client.get("/no/such/page/").status_code == 404
    assert client.get("/healthz").status_code == 200  # answered before the metrics: probes are not traffic

    assert value("app_http_requests_total", method="GET", route="api/hello/", status="200") == before["hello"] + 3
    assert value("app_http_requests_total", method="POST", route="api/hello/", status="405") == before["refused"] + 1
    assert (
        value("app_http_requests_total", method="GET", route="api/rooms/<slug:slug>/", status="404")
        == before["room"] + 1
    )
    assert value("app_http_requests_total", method="GET", route=UNMATCHED, status="404") == before["unmatched"] + 1
    assert value("app_http_request_duration_seconds_count", route="api/hello/") == before["timed"] + 5  # 405s too
    assert value("app_http_requests_total", method="GET", route=UNMATCHED, status="200") == before["liveness"]
    assert value("app_http_requests_total", method="other", route="api/hello/", status="405") == before["odd"] + 1
    assert value("app_http_requests_total", method="BREW", route="api/hello/", status="405") == 0
    assert value("app_http_requests_in_flight") == 0


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_a_socket_is_counted_from_accept_to_close_with_its_frames_and_close_code() -> None:
    route = "ws/chat/"
    opened = value("app_websocket_opened_total", route=route)
    closed = value("app_websocket_closed_total", route=route, code="1000")
    received = value("app_websocket_frames_received_total", route=route)
    sent = value("app_websocket_frames_sent_total", route=route)
    lived = value("app_websocket_duration_seconds_count", route=route)

    ws = WebsocketCommunicator(application, "/ws/chat/")
    connected, _ = await ws.connect()
    assert connected
    assert value("app_websocket_connections", route=route) == 1
    for text in ("Hi", "again"):
        await ws.send_to(text_data=text)
        assert await ws.receive_from() == f'{{"message": "Echo: {text}"}}'
    await ws.disconnect(code=1000)

    assert value("app_websocket_opened_total", route=route) == opened + 1
    assert value("app_websocket_frames_received_total", route=route) == received + 2
    assert value("app_websocket_frames_sent_total", route=route) == sent + 2
    assert value("app_websocket_closed_total", route=route, code="1000") == closed + 1
    assert value("app_websocket_duration_seconds_count", route=route) == lived + 1
    assert value("app_websocket_connections", route=route) == 0


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_a_refused_handshake_is_not_an_open_socket_and_odd_close_codes_share_one_label() -> None:
    route = "ws/chat/"
    opened = value("app_websocket_opened_total", route=route)
    refused = WebsocketCommunicator(application, "/ws/chat/", headers=[(b"origin", b"https://evil.example")])
    connected, _ = await refused.connect()
    assert not connected
    assert value("app_websocket_opened_total", route=route) == opened

    other = value("app_websocket_closed_total", route=route, code="other")
    ws = WebsocketCommunicator(application, "/ws/chat/")
    assert (await ws.connect())[0]
    await ws.disconnect(code=3777)  # a client-chosen code: no label value of its own
    assert value("app_websocket_closed_total", route=route, code="other") == other + 1
    assert value("app_websocket_closed_total", route=route, code="3777") == 0


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_group_sends_are_counted_and_timed() -> None:
    sends = value("app_channel_layer_group_sends_total")
    timed = value("app_channel_layer_group_send_duration_seconds_count")
    failures = value("app_channel_layer_group_send_failures_total")
    await group_send("metrics-test", {"type": "chat.message", "message": "nobody listens"})
    assert value("app_channel_layer_group_sends_total") == sends + 1
    assert value("app_channel_layer_group_send_duration_seconds_count") == timed + 1
    assert value("app_channel_layer_group_send_failures_total") == failures


def test_group_sends_from_sync_code_are_counted_and_timed_too() -> None:
    """The tasks' helper (core.groups.group_send_sync) records what the async one does."""
    sends = value("app_channel_layer_group_sends_total")
    timed = value("app_channel_layer_group_send_duration_seconds_count")
    group_send_sync("metrics-test", {"type": "chat.message", "message": "nobody listens"})
    assert value("app_channel_layer_group_sends_total") == sends + 1
    assert value("app_channel_layer_group_send_duration_seconds_count") == timed + 1


@pytest.mark.parametrize(("enabled", "recorded"), [("true", True), ("false", False)])
def test_metrics_enabled_off_takes_the_metrics_out_of_requests_and_sockets(enabled: str, recorded: bool) -> None:
    code = (
        "from django.conf import settings\n"
        "from mainkode_example import asgi\n"
        "print('core.metrics.RequestMetricsMiddleware' in settings.MIDDLEWARE, type(asgi.socket_app).__name__)"
    )
    result = load_settings_and_run(code, METRICS_ENABLED=enabled)
    assert result.returncode == 0, result.stderr
    middleware, socket_app = result.stdout.split()[-2:]
    assert (middleware == "True", socket_app == "SocketMetricsMiddleware") == (recorded, recorded)


@pytest.mark.django_db
def test_the_pool_gauges_are_read_at_most_once_a_second_from_a_thread_with_a_connection(client: Client) -> None:
    PoolStats.read_at = 0.0
    assert client.get("/api/rooms/").status_code == 200  # a query: this thread holds a pooled connection
    size = value("app_db_pool_connections")
    assert size >= 1
    assert 0 <= value("app_db_pool_idle") <= size
    assert value("app_db_pool_waiting") == 0

    # Read within the second: the gauges are left as they are.
    DB_POOL_CONNECTIONS.set(-1)
    assert client.get("/api/rooms/").status_code == 200
    assert value("app_db_pool_connections") == -1
    # A second later (made so here), read again.
    PoolStats.read_at -= 1.0
    assert client.get("/api/rooms/").status_code == 200
    assert value("app_db_pool_connections") >= 1


def test_a_full_inbox_takes_no_more_events_logs_once_and_counts_what_it_drops(caplog: pytest.LogCaptureFixture) -> None:
    """A client that stops reading: one WARNING line for its socket, however many events it
    misses (an outside probe filled the disk with one line per event)."""
    inbox = Inbox(maxsize=2)
    before = value("app_websocket_events_dropped_total")
    with caplog.at_level(logging.WARNING, logger="core.groups"):
        for n in range(10):
            deliver(inbox, {"type": "chat.message", "n": n})
    assert inbox.overflowed
    assert inbox.qsize() == 2
    assert value("app_websocket_events_dropped_total") - before == 8
    assert len([record for record in caplog.records if "inbox is full" in record.getMessage()]) == 1
