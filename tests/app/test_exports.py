"""Room exports (chat/exports.py) and the worker machinery they run on (app/worker/),
against the real Postgres queue and the real Redis layer: the REST side, the task run by
the real django-tasks-db loop, the socket event, failures, lost workers, housekeeping."""

from __future__ import annotations

import gzip
import json
import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import User
from django.db import connection
from django.utils import timezone
from django_tasks_db.models import DBTaskResult
from prometheus_client import REGISTRY
from rest_framework.test import APIClient

from chat import exports
from chat.models import Message, Room, RoomExport
from chat.views import ExportCreateThrottle
from mainkode_example.asgi import application
from worker import heartbeat, housekeeping, loop, queue
from worker.models import WorkerHeartbeat

pytestmark = pytest.mark.django_db(transaction=True)


def run_queue() -> None:
    """The worker service's task loop, until the queue is empty."""
    loop.TaskWorker(
        queue_names=["*"],
        interval=0,
        batch=True,
        backend_name="default",
        startup_delay=False,
        max_tasks=None,
        worker_id="test-worker",
        excluded_queue_names=[],
    ).run()


def request_export(client: APIClient, slug: str = "lobby") -> dict[str, Any]:
    response = client.post(f"/api/rooms/{slug}/exports/")
    assert response.status_code == 202, response.content
    assert response["Location"] == response.json()["url"]
    return dict(response.json())


def room(slug: str, alice: User | None = None) -> str:
    """Another room (a second request for an unchanged room reuses its export)."""
    Room.objects.get_or_create(slug=slug, defaults={"title": slug, "created_by": alice})
    return slug


def lines_of(content: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in gzip.decompress(content).decode().splitlines()]


@pytest.fixture
def talk(lobby: Room, alice: User, bob: User) -> list[Message]:
    return [
        Message.objects.create(room=lobby, author=author, body=body)
        for author, body in [(alice, "hello"), (bob, "ünïcode ✓"), (alice, "line\nbreak"), (bob, '{"json": 1}')]
    ]


def test_requesting_an_export_answers_202_and_queues_one_task(alice_api: APIClient, talk: list[Message]) -> None:
    body = request_export(alice_api)
    assert body["status"] == "queued"
    assert body["room"] == "lobby"
    assert body["download_url"] is None
    export = RoomExport.objects.get(pk=body["id"])
    task = DBTaskResult.objects.get(pk=export.task_id)
    assert (task.status, task.args_kwargs["args"]) == ("READY", [body["id"]])
    assert alice_api.get(body["url"]).json()["status"] == "queued"
    assert alice_api.get(f"{body['url']}download/").status_code == 409


def test_the_worker_builds_the_export_from_every_stored_message(alice_api: APIClient, talk: list[Message]) -> None:
    body = request_export(alice_api)
    run_queue()
    status = alice_api.get(body["url"]).json()
    assert (status["status"], status["message_count"], status["error"]) == ("succeeded", 4, "")
    download = alice_api.get(status["download_url"])
    assert download.status_code == 200
    assert download["Content-Type"] == "application/gzip"
    assert f'filename="lobby-{body["id"]}.jsonl.gz"' in download["Content-Disposition"]
    content = download.getvalue()
    assert status["size"] == len(content)
    header, *rows = lines_of(content)
    assert (header["room"], header["title"], header["messages"]) == ("lobby", "The lobby", 4)
    # Each line is the message as the API gives it.
    api_messages = alice_api.get("/api/rooms/lobby/messages/").json()["results"]
    assert rows == sorted(api_messages, key=lambda message: message["id"])
    assert DBTaskResult.objects.get(pk=RoomExport.objects.get(pk=body["id"]).task_id).status == "SUCCESSFUL"


def test_only_the_requester_or_staff_sees_an_export(
    alice_api: APIClient, bob_token: str, bob: User, api: APIClient, talk: list[Message]
) -> None:
    body = request_export(alice_api)
    run_queue()
    api.credentials(HTTP_AUTHORIZATION=f"Token {bob_token}")
    assert api.get(body["url"]).status_code == 404
    assert api.get(f"{body['url']}download/").status_code == 404
    bob.is_staff = True
    bob.save()
    assert api.get(f"{body['url']}download/").status_code == 200
    anonymous = APIClient()
    assert anonymous.get(body["url"]).status_code == 401
    assert anonymous.post("/api/rooms/lobby/exports/").status_code == 401
    assert alice_api.post("/api/rooms/nowhere/exports/").status_code == 404


def test_a_rolled_back_request_enqueues_nothing(
    alice_api: APIClient, talk: list[Message], monkeypatch: pytest.MonkeyPatch
) -> None:
    real_save = RoomExport.save

    def fail_after_the_enqueue(self: RoomExport, *args: Any, **kwargs: Any) -> None:
        if kwargs.get("update_fields") == ["task_id"]:
            raise RuntimeError("the request fails after its enqueue")
        real_save(self, *args, **kwargs)

    monkeypatch.setattr(RoomExport, "save", fail_after_the_enqueue)
    with pytest.raises(RuntimeError):
        alice_api.post("/api/rooms/lobby/exports/")
    assert RoomExport.objects.count() == 0
    assert DBTaskResult.objects.count() == 0


def test_a_user_has_at_most_three_exports_unfinished(alice_api: APIClient, talk: list[Message]) -> None:
    for n in range(exports.MAX_UNFINISHED_PER_USER):
        request_export(alice_api, room(f"room-{n}"))
    refused = alice_api.post("/api/rooms/lobby/exports/")
    assert refused.status_code == 429
    assert "queued or running" in refused.json()["detail"]
    run_queue()
    request_export(alice_api)


def test_a_room_over_the_limit_fails_with_the_reason(alice_api: APIClient, talk: list[Message], settings: Any) -> None:
    settings.EXPORT_MAX_MESSAGES = 3
    body = request_export(alice_api)
    run_queue()
    status = alice_api.get(body["url"]).json()
    assert status["status"] == "failed"
    assert "EXPORT_MAX_MESSAGES" in status["error"]
    assert status["error"].startswith("chat.exports.ExportTooLarge: room lobby has 4 messages")
    assert status["download_url"] is None
    assert DBTaskResult.objects.get(pk=RoomExport.objects.get(pk=body["id"]).task_id).status == "FAILED"


@pytest.mark.asyncio
@pytest.mark.usefixtures("channel_layer")
async def test_the_requesters_sockets_hear_when_it_is_ready_and_others_do_not(
    alice_token: str, bob_token: str, talk: list[Message]
) -> None:
    sockets = {}
    for name, token in (("alice", alice_token), ("bob", bob_token)):
        sockets[name] = WebsocketCommunicator(
            application, "/ws/rooms/lobby/", subprotocols=["mainkode.v1", f"auth.{token}"]
        )
        assert (await sockets[name].connect())[0]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {alice_token}")
    body = await sync_to_async(request_export)(client)
    await sync_to_async(run_queue)()
    event = await sockets["alice"].receive_json_from(timeout=10)
    assert event["export"]["id"] == body["id"]
    assert event["export"]["status"] == "succeeded"
    assert event["export"]["download_url"] == f"/api/exports/{body['id']}/download/"
    assert await sockets["bob"].receive_nothing(timeout=0.5)
    for socket in sockets.values():
        await socket.disconnect()


def claimed_by(worker_id: str, export_id: str, attempts: int, minutes_ago: int = 5) -> DBTaskResult[Any, Any]:
    """A task row as a worker that was then killed leaves it: running, never finished."""
    result = DBTaskResult.objects.get(pk=RoomExport.objects.get(pk=export_id).task_id)
    result.status = "RUNNING"
    result.started_at = timezone.now() - timedelta(minutes=minutes_ago)
    result.worker_ids = [f"earlier-{n}" for n in range(attempts - 1)] + [worker_id]
    result.save()
    return result


def test_a_task_of_a_silent_worker_runs_again(alice_api: APIClient, talk: list[Message], settings: Any) -> None:
    settings.TASK_MAX_ATTEMPTS = 3
    body = request_export(alice_api)
    WorkerHeartbeat.objects.create(
        worker_id="killed",
        hostname="h",
        pid=1,
        started_at=timezone.now(),
        seen_at=timezone.now() - timedelta(minutes=5),
    )
    WorkerHeartbeat.objects.create(
        worker_id="alive", hostname="h", pid=2, started_at=timezone.now(), seen_at=timezone.now()
    )
    lost = claimed_by("killed", body["id"], attempts=1)
    other_body = request_export(alice_api, room("other"))
    busy = claimed_by("alive", other_body["id"], attempts=1)
    assert heartbeat.recover_lost_tasks() == []
    lost.refresh_from_db()
    busy.refresh_from_db()
    assert (lost.status, busy.status) == ("READY", "RUNNING")
    busy.status = "SUCCESSFUL"  # out of the way of the loop below
    busy.save()
    run_queue()
    assert alice_api.get(body["url"]).json()["status"] == "succeeded"
    assert DBTaskResult.objects.get(pk=lost.pk).worker_ids == ["killed", "test-worker"]


def test_a_task_whose_worker_is_lost_too_often_fails_and_its_export_too(
    alice_api: APIClient, talk: list[Message], settings: Any
) -> None:
    settings.TASK_MAX_ATTEMPTS = 2
    body = request_export(alice_api)
    lost = claimed_by("killed-again", body["id"], attempts=2)
    assert [result.pk for result in heartbeat.recover_lost_tasks()] == [lost.pk]
    lost.refresh_from_db()
    assert lost.status == "FAILED"
    assert lost.exception_class_path == "worker.heartbeat.WorkerLost"
    status = alice_api.get(body["url"]).json()
    assert status["status"] == "failed"
    assert "went silent on each of 2 runs" in status["error"]


def test_a_task_just_claimed_is_left_alone(alice_api: APIClient, talk: list[Message]) -> None:
    # Its worker's first heartbeat may simply not be visible yet.
    body = request_export(alice_api)
    fresh = claimed_by("unknown-yet", body["id"], attempts=1, minutes_ago=0)
    assert heartbeat.recover_lost_tasks() == []
    fresh.refresh_from_db()
    assert fresh.status == "RUNNING"


def housekeeping_in_own_session() -> bool:
    try:
        return housekeeping.run_housekeeping()
    finally:
        connection.close()


def test_housekeeping_prunes_old_exports_and_finished_tasks_in_one_worker_at_a_time(
    alice_api: APIClient, talk: list[Message], settings: Any
) -> None:
    old, recent = request_export(alice_api), request_export(alice_api, room("recent"))
    run_queue()
    long_ago = timezone.now() - timedelta(days=settings.TASK_RESULT_RETENTION_DAYS + 1)
    RoomExport.objects.filter(pk=old["id"]).update(finished_at=long_ago)
    old_task = RoomExport.objects.get(pk=old["id"]).task_id
    DBTaskResult.objects.filter(pk=old_task).update(finished_at=long_ago)
    with connection.cursor() as cursor:
        # Another worker (this thread's database session) is at it: a worker in another
        # session does nothing.
        cursor.execute("SELECT pg_advisory_lock(%s)", [housekeeping.HOUSEKEEPING_LOCK])
        try:
            with ThreadPoolExecutor(1) as elsewhere:
                assert elsewhere.submit(housekeeping_in_own_session).result() is False
        finally:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [housekeeping.HOUSEKEEPING_LOCK])
    assert RoomExport.objects.filter(pk=old["id"]).exists()
    assert housekeeping.run_housekeeping() is True
    assert not RoomExport.objects.filter(pk=old["id"]).exists()
    assert not DBTaskResult.objects.filter(pk=old_task).exists()
    assert RoomExport.objects.filter(pk=recent["id"]).exists()
    assert sorted(path.name for path in settings.EXPORT_ROOT.iterdir()) == [exports.PARTIAL, f"{recent['id']}.jsonl.gz"]


def queue_state() -> dict[str, float]:
    """What the worker's metrics port serves about the queue, read as a scrape reads it."""
    return {family.name: family.samples[0].value for family in queue.TaskQueueCollector().collect()}


def finished(status: str) -> float:
    labels = {"task": "chat.tasks.export_room", "status": status}
    return REGISTRY.get_sample_value("app_tasks_finished_total", labels) or 0.0


def test_the_task_metrics_follow_the_queue_and_each_outcome(
    alice_api: APIClient, talk: list[Message], settings: Any
) -> None:
    empty = {"app_tasks_queued": 0, "app_tasks_running": 0, "app_tasks_oldest_queued_age_seconds": 0}
    assert queue_state() == empty
    succeeded, failed = finished("successful"), finished("failed")
    durations = REGISTRY.get_sample_value("app_task_duration_seconds_count", {"task": "chat.tasks.export_room"}) or 0

    first, second, third = (request_export(alice_api, room(f"room-{n}")) for n in range(3))
    # The first waited ten minutes; the third is not due for an hour (not queued yet).
    DBTaskResult.objects.filter(pk=RoomExport.objects.get(pk=first["id"]).task_id).update(
        enqueued_at=timezone.now() - timedelta(minutes=10)
    )
    DBTaskResult.objects.filter(pk=RoomExport.objects.get(pk=third["id"]).task_id).update(
        run_after=timezone.now() + timedelta(hours=1)
    )
    state = queue_state()
    assert (state["app_tasks_queued"], state["app_tasks_running"]) == (2, 0)
    assert 600 <= state["app_tasks_oldest_queued_age_seconds"] < 660

    settings.TASK_MAX_ATTEMPTS = 1
    claimed_by("killed", second["id"], attempts=1)
    state = queue_state()
    assert (state["app_tasks_queued"], state["app_tasks_running"]) == (1, 1)
    assert heartbeat.recover_lost_tasks()  # its one run is used up: failed
    run_queue()
    assert queue_state() == empty  # the third is still not due
    assert (finished("successful"), finished("failed")) == (succeeded + 1, failed + 1)
    assert REGISTRY.get_sample_value("app_task_duration_seconds_count", {"task": "chat.tasks.export_room"}) == (
        durations + 2
    )


# --- Files, limits and reuse (docs/reliability.md: the third probe, H1 and M1) --------------


def test_behind_nginx_the_app_answers_with_the_file_for_nginx_to_send(
    alice_api: APIClient, talk: list[Message], settings: Any
) -> None:
    settings.EXPORT_SERVED_BY = "nginx"
    body = request_export(alice_api)
    run_queue()
    download = alice_api.get(f"{body['url']}download/")
    assert download.status_code == 200
    assert download["X-Accel-Redirect"] == f"/_exports/{body['id']}.jsonl.gz"
    assert download.content == b""
    assert f'filename="lobby-{body["id"]}.jsonl.gz"' in download["Content-Disposition"]
    # Whole, readable by the files service's user, nothing left half-built.
    path = settings.EXPORT_ROOT / f"{body['id']}.jsonl.gz"
    assert path.stat().st_mode & 0o777 == 0o644
    assert path.stat().st_size == RoomExport.objects.get(pk=body["id"]).size
    assert lines_of(path.read_bytes())[0]["messages"] == 4
    assert list((settings.EXPORT_ROOT / exports.PARTIAL).iterdir()) == []


def test_a_file_gone_from_the_folder_is_a_410_when_the_app_sends_it(
    alice_api: APIClient, talk: list[Message], settings: Any
) -> None:
    body = request_export(alice_api)
    run_queue()
    (settings.EXPORT_ROOT / f"{body['id']}.jsonl.gz").unlink()
    assert alice_api.get(f"{body['url']}download/").status_code == 410


def test_an_export_past_the_byte_cap_fails_and_leaves_no_file(
    alice_api: APIClient, lobby: Room, alice: User, settings: Any
) -> None:
    # Bodies that do not compress: past 20 kB of gzip within the first chunk of lines.
    Message.objects.bulk_create(
        Message(room=lobby, author=alice, body=os.urandom(1500).hex()) for _ in range(3 * exports.CHUNK)
    )
    settings.EXPORT_MAX_BYTES = 20_000
    body = request_export(alice_api)
    run_queue()
    status = alice_api.get(body["url"]).json()
    assert status["status"] == "failed"
    assert "EXPORT_MAX_BYTES" in status["error"]
    assert [path for path in settings.EXPORT_ROOT.rglob("*") if path.is_file()] == []


def test_an_unchanged_room_reuses_the_requesters_export(
    alice_api: APIClient, bob_token: str, talk: list[Message], lobby: Room, alice: User
) -> None:
    first = request_export(alice_api)
    assert request_export(alice_api)["id"] == first["id"]  # queued: it will hold everything
    run_queue()
    again = alice_api.post("/api/rooms/lobby/exports/")
    assert (again.status_code, again.json()["id"], again.json()["status"]) == (200, first["id"], "succeeded")
    # Another user gets an export of their own.
    bob = APIClient()
    bob.credentials(HTTP_AUTHORIZATION=f"Token {bob_token}")
    assert request_export(bob)["id"] != first["id"]
    # A new message: a new export.
    Message.objects.create(room=lobby, author=alice, body="one more")
    assert request_export(alice_api)["id"] != first["id"]
    assert RoomExport.objects.filter(requested_by=alice).count() == 2


def test_concurrent_requests_cannot_pass_the_unfinished_cap_together(alice_token: str, talk: list[Message]) -> None:
    slugs = [room(f"room-{n}") for n in range(20)]

    def ask(slug: str) -> int:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {alice_token}")
        try:
            return int(client.post(f"/api/rooms/{slug}/exports/").status_code)
        finally:
            connection.close()

    with ThreadPoolExecutor(20) as pool:
        codes = list(pool.map(ask, slugs))
    assert sorted(codes) == [202] * exports.MAX_UNFINISHED_PER_USER + [429] * (20 - exports.MAX_UNFINISHED_PER_USER)
    assert RoomExport.objects.count() == exports.MAX_UNFINISHED_PER_USER


def test_a_user_gets_a_429_past_the_export_rate(
    alice_api: APIClient, talk: list[Message], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ExportCreateThrottle, "THROTTLE_RATES", {"export_create": "2/hour"})
    request_export(alice_api, room("one"))
    request_export(alice_api, room("two"))
    refused = alice_api.post(f"/api/rooms/{room('three')}/exports/")
    assert refused.status_code == 429
    assert 3500 < int(refused["Retry-After"]) <= 3600
    # A reused export is not counted.
    assert alice_api.post("/api/rooms/one/exports/").status_code == 202


def test_a_user_whose_exports_fill_the_quota_gets_a_429_until_they_expire(
    alice_api: APIClient, talk: list[Message], settings: Any
) -> None:
    first = request_export(alice_api)
    run_queue()
    settings.EXPORT_USER_QUOTA_BYTES = RoomExport.objects.get(pk=first["id"]).size
    refused = alice_api.post(f"/api/rooms/{room('other')}/exports/")
    assert refused.status_code == 429
    assert "quota" in refused.json()["detail"]
    RoomExport.objects.filter(pk=first["id"]).update(finished_at=timezone.now() - timedelta(days=2))
    housekeeping.run_housekeeping()
    request_export(alice_api, "other")


def test_housekeeping_deletes_files_no_export_names_once_they_are_old(settings: Any) -> None:
    root = settings.EXPORT_ROOT
    (root / exports.PARTIAL).mkdir(parents=True)
    old, young = time.time() - exports.ORPHAN_AFTER_SECONDS - 60, time.time() - 60
    files = {
        "orphan": root / f"{uuid.uuid4()}.jsonl.gz",
        "young orphan": root / f"{uuid.uuid4()}.jsonl.gz",
        "partial": root / exports.PARTIAL / f"{uuid.uuid4()}.jsonl.gz",
        "young partial": root / exports.PARTIAL / f"{uuid.uuid4()}.jsonl.gz",
    }
    for name, path in files.items():
        path.write_bytes(b"x")
        os.utime(path, (old, old) if not name.startswith("young") else (young, young))
    assert housekeeping.run_housekeeping() is True
    assert {name for name, path in files.items() if path.exists()} == {"young orphan", "young partial"}
