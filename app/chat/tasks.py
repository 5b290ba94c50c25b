"""The chat domain's background tasks (Django's task API: `django.tasks` from Django 6.0,
the django-tasks backport on 5.2). Enqueued by the views, run by the worker service."""

from __future__ import annotations

from typing import Any

from django.utils import timezone
from django_tasks import task

from chat import exports
from chat.models import RoomExport


@task()
def export_room(export_id: str) -> dict[str, int]:
    """Build a room export (chat/exports.py)."""
    return exports.build(export_id)


def record_failure(sender: Any, task_result: Any, **kwargs: Any) -> None:
    """task_finished receiver: an export whose task failed (it raised, or its worker went
    silent too often: worker.heartbeat) is recorded as failed with the error, and its
    requester told."""
    if task_result.task.func is not export_room.func or task_result.status != "FAILED":
        return
    error = task_result.errors[-1].traceback.strip().splitlines()[-1] if task_result.errors else "failed"
    updated = RoomExport.objects.filter(pk=task_result.args[0]).exclude(status=RoomExport.Status.FAILED)
    if updated.update(status=RoomExport.Status.FAILED, error=error[:2000], finished_at=timezone.now()):
        exports.notify(task_result.args[0])
