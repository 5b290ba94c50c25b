"""Chat rooms and their messages: the data the API and the sockets share."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.core.validators import MinLengthValidator
from django.db import models

ROOM_SLUG_MAX_LENGTH = 64


class Room(models.Model):
    # Letters, digits, "-" and "_" (SlugField): also valid in a Channels group name.
    slug = models.SlugField(max_length=ROOM_SLUG_MAX_LENGTH, unique=True)
    title = models.CharField(max_length=200)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug

    @property
    def group_name(self) -> str:
        """The channel layer group of the room's sockets."""
        return f"room.{self.slug}"


class Message(models.Model):
    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="messages")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="chat_messages")
    body = models.TextField(validators=[MinLengthValidator(1)])
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            # History and catch-up (`?after=<id>`) read one room by id range.
            models.Index(fields=["room", "id"], name="chat_message_room_id"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(body__regex=r"\S"),
                name="chat_message_body_not_blank",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.room_id}#{self.pk}"


class RoomExport(models.Model):
    """A room's history as a file, built by the worker service (chat/exports.py)."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    # Unguessable: the id is in the export's URLs.
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="exports")
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    # The django-tasks result id (the admin's Task Results list).
    task_id = models.CharField(max_length=64, blank=True)
    requested_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True, db_index=True)
    message_count = models.PositiveIntegerField(null=True, blank=True)
    # The newest message it holds: a request with no message past it reuses this export.
    last_message_id = models.PositiveBigIntegerField(null=True, blank=True)
    # The file's bytes; the file itself is `file_name` in EXPORT_ROOT (chat/exports.py).
    size = models.PositiveBigIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-requested_at"]

    def __str__(self) -> str:
        return f"{self.room_id}/{self.pk}"

    @property
    def finished(self) -> bool:
        return self.status in (self.Status.SUCCEEDED, self.Status.FAILED)

    @property
    def file_name(self) -> str:
        return f"{self.pk}.jsonl.gz"
