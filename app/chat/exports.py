"""Room exports: a room's whole history as one compressed file, built by the worker
service (a task: chat/tasks.py), announced to its requester's sockets when it is ready or
has failed. The format is documented in docs/api.md (Room exports)."""

from __future__ import annotations

import contextlib
import gzip
import json
import logging
import os
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone
from redis.exceptions import RedisError

from chat.models import Message, RoomExport
from chat.serializers import RoomExportSerializer
from core.groups import group_send_sync

logger = logging.getLogger(__name__)

# Exports a user may have queued or running at once: each costs a worker CPU time that
# grows with the room; a 429 beyond.
MAX_UNFINISHED_PER_USER = 3
# The consumer method that receives the event (`export.finished` -> `export_finished`).
EVENT_TYPE = "export.finished"
# Messages read from Postgres per round trip while building.
CHUNK = 2000
# The path under which the app tells nginx to send a file (X-Accel-Redirect); nginx's
# location of that name passes it to the `files` service (nginx/templates/locations.conf).
ACCEL_REDIRECT_PREFIX = "/_exports/"
# The folder in EXPORT_ROOT where files are built; renamed out of it once whole.
PARTIAL = ".partial"
# Files in EXPORT_ROOT older than this with no export row (a room deleted, a build cut
# short) are deleted by housekeeping; younger ones may be a build in progress.
ORPHAN_AFTER_SECONDS = 3600


class ExportTooLarge(Exception):
    """The room has more messages than EXPORT_MAX_MESSAGES."""


def user_group(user_id: int) -> str:
    """The channel layer group of every socket of one logged-in user."""
    return f"user.{user_id}"


def _timestamp(value: Any) -> str:
    # As the API writes it (DRF's DateTimeField): ISO 8601, UTC as "Z".
    text: str = value.isoformat()
    return text.removesuffix("+00:00") + "Z" if text.endswith("+00:00") else text


def path_of(export: RoomExport) -> Path:
    return Path(settings.EXPORT_ROOT) / export.file_name


def build(export_id: str) -> dict[str, int]:
    """Build the export's file in EXPORT_ROOT; tell the requester's sockets. The messages
    are those present when the build starts (those posted meanwhile wait for the next
    export). Written under PARTIAL, then renamed: a file in EXPORT_ROOT is always whole."""
    export = RoomExport.objects.select_related("room").get(pk=export_id)
    RoomExport.objects.filter(pk=export.pk).update(status=RoomExport.Status.RUNNING)
    messages = Message.objects.filter(room=export.room)
    last_id = messages.order_by("-id").values_list("id", flat=True).first() or 0
    RoomExport.objects.filter(pk=export.pk).update(last_message_id=last_id)
    messages = messages.filter(id__lte=last_id)
    count = messages.count()
    if count > settings.EXPORT_MAX_MESSAGES:
        raise ExportTooLarge(
            f"room {export.room.slug} has {count} messages; an export holds at most {settings.EXPORT_MAX_MESSAGES}"
            " (EXPORT_MAX_MESSAGES)"
        )
    final = path_of(export)
    # A name of its own: a build run again (its worker seen lost) never writes into another's.
    partial = final.parent / PARTIAL / f"{uuid.uuid4().hex}-{final.name}"
    partial.parent.mkdir(parents=True, exist_ok=True)
    try:
        with partial.open("wb") as raw:
            # mtime=0: the same messages give the same bytes.
            with gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6, mtime=0) as file:
                for lines in _lines(export, messages, count):
                    file.write(lines)
                    if raw.tell() > settings.EXPORT_MAX_BYTES:
                        raise ExportTooLarge(
                            f"room {export.room.slug} makes an export of more than {settings.EXPORT_MAX_BYTES}"
                            " bytes (EXPORT_MAX_BYTES)"
                        )
            raw.flush()
            os.fsync(raw.fileno())
            size = raw.tell()
        # Readable by the `files` service, which runs as another user.
        partial.chmod(0o644)
        partial.replace(final)
    finally:
        partial.unlink(missing_ok=True)
    RoomExport.objects.filter(pk=export.pk).update(
        status=RoomExport.Status.SUCCEEDED,
        size=size,
        message_count=count,
        finished_at=timezone.now(),
        error="",
    )
    notify(export.pk)
    return {"messages": count, "bytes": size}


def _lines(export: RoomExport, messages: QuerySet[Message], count: int) -> Iterator[bytes]:
    """The file's lines (docs/api.md), CHUNK messages at a time."""
    header = {"room": export.room.slug, "title": export.room.title, "exported_at": _timestamp(timezone.now())}
    yield json.dumps({**header, "messages": count}, ensure_ascii=False).encode() + b"\n"
    rows = messages.order_by("id").values_list("id", "author__username", "body", "created_at")
    lines = []
    for message_id, author, body, created_at in rows.iterator(chunk_size=CHUNK):
        lines.append(
            json.dumps(
                {
                    "id": message_id,
                    "room": export.room.slug,
                    "author": author,
                    "body": body,
                    "created_at": _timestamp(created_at),
                },
                ensure_ascii=False,
            )
        )
        if len(lines) == CHUNK:
            yield ("\n".join(lines) + "\n").encode()
            lines.clear()
    if lines:
        yield ("\n".join(lines) + "\n").encode()


def payload(export: RoomExport) -> dict[str, Any]:
    return dict(RoomExportSerializer(export).data)


def notify(export_id: Any) -> None:
    """Tell the requester's open sockets that the export is finished. A lost event loses
    nothing: the status URL says the same."""
    export = RoomExport.objects.select_related("room").get(pk=export_id)
    try:
        group_send_sync(user_group(export.requested_by_id), {"type": EVENT_TYPE, "export": payload(export)})
    except (RedisError, OSError, TimeoutError) as error:
        logger.warning(
            "export %s: its requester's sockets were not told (%s); the status URL is right", export.pk, error
        )


def prune(**kwargs: Any) -> None:
    """worker.signals.housekeeping receiver: exports finished more than EXPORT_RETENTION_HOURS
    ago go, with their files; so do files no export names any more."""
    cutoff = timezone.now() - timedelta(hours=settings.EXPORT_RETENTION_HOURS)
    expired = list(RoomExport.objects.filter(finished_at__lt=cutoff))
    RoomExport.objects.filter(pk__in=[export.pk for export in expired]).delete()
    for export in expired:
        path_of(export).unlink(missing_ok=True)
    if expired:
        logger.info("housekeeping: %d room exports finished before %s deleted", len(expired), cutoff)
    root = Path(settings.EXPORT_ROOT)
    known = {export.file_name for export in RoomExport.objects.only("pk")}
    old = time.time() - ORPHAN_AFTER_SECONDS
    orphans = 0
    for path in [*root.glob("*.jsonl.gz"), *root.glob(f"{PARTIAL}/*.jsonl.gz")]:
        if path.parent.name != PARTIAL and path.name in known:
            continue
        with contextlib.suppress(FileNotFoundError):  # gone meanwhile: a build renamed it
            if path.stat().st_mtime < old:
                path.unlink()
                orphans += 1
    if orphans:
        logger.info("housekeeping: %d export files no export names deleted", orphans)
