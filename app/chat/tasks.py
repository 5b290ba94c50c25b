"""The chat domain's background tasks (Django's task API: `django.tasks` from Django 6.0,
the django-tasks backport on 5.2). Enqueued by the views, run by the worker service."""

from __future__ import annotations

from django_tasks import task

from chat import exports


@task()
def export_room(export_id: str) -> dict[str, int]:
    """Build a room export (chat/exports.py)."""
    return exports.build(export_id)
