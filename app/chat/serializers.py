"""What the API and the sockets accept and send for rooms and messages."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.urls import reverse
from rest_framework import serializers

from chat.models import Message, Room, RoomExport


class StrictCharField(serializers.CharField):
    """A CharField that refuses numbers and booleans instead of turning them into text."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class RoomSerializer(serializers.ModelSerializer[Room]):
    created_by: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = Room
        fields = ["slug", "title", "created_by", "created_at"]
        read_only_fields = ["created_by", "created_at"]


class MessageSerializer(serializers.ModelSerializer[Message]):
    """One message, as REST returns it and as every socket in the room receives it."""

    room: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    author: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(slug_field="username", read_only=True)
    body = StrictCharField(max_length=settings.CHAT_MESSAGE_MAX_LENGTH, allow_blank=False, trim_whitespace=False)

    class Meta:
        model = Message
        fields = ["id", "room", "author", "body", "created_at"]
        read_only_fields = ["id", "room", "author", "created_at"]

    def validate_body(self, value: str) -> str:
        if not value.strip():
            raise serializers.ValidationError("This field may not be blank.")
        return value


class AfterQuerySerializer(serializers.Serializer[dict[str, Any]]):
    """`?after=<id>`: only messages with a larger id (catching up after a reconnect)."""

    after = serializers.IntegerField(min_value=0, required=False)


class RoomExportSerializer(serializers.ModelSerializer[RoomExport]):
    """An export's status, as REST returns it and as the requester's sockets receive it."""

    room: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    url = serializers.SerializerMethodField(help_text="This status.")
    download_url = serializers.SerializerMethodField(help_text="The file, once the status is succeeded; else null.")

    class Meta:
        model = RoomExport
        fields = [
            "id",
            "room",
            "status",
            "requested_at",
            "finished_at",
            "message_count",
            "size",
            "error",
            "url",
            "download_url",
        ]
        read_only_fields = fields

    def get_url(self, export: RoomExport) -> str:
        return reverse("export-detail", args=[export.pk])

    def get_download_url(self, export: RoomExport) -> str | None:
        if export.status != RoomExport.Status.SUCCEEDED:
            return None
        return reverse("export-download", args=[export.pk])
