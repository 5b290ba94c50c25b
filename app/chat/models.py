"""Chat rooms and their messages: the data the API and the sockets share."""

from __future__ import annotations

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
