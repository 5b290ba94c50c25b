"""The REST API of stored rooms and their messages."""

from __future__ import annotations

from typing import Any

from asgiref.sync import async_to_sync
from django.db import transaction
from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import generics, serializers
from rest_framework.permissions import IsAuthenticatedOrReadOnly
from rest_framework.request import Request
from rest_framework.response import Response

from chat.broadcast import message_payload, publish
from chat.models import Message, Room
from chat.pagination import MessageCursorPagination, RoomPagination
from chat.serializers import AfterQuerySerializer, MessageSerializer, RoomSerializer


class RoomListCreateView(generics.ListCreateAPIView[Room]):
    """List rooms (anyone); create one (authenticated users)."""

    queryset = Room.objects.select_related("created_by")
    serializer_class = RoomSerializer
    permission_classes = [IsAuthenticatedOrReadOnly]
    pagination_class = RoomPagination

    def perform_create(self, serializer: serializers.BaseSerializer[Room]) -> None:
        serializer.save(created_by=self.request.user)


class RoomDetailView(generics.RetrieveAPIView[Room]):
    queryset = Room.objects.select_related("created_by")
    serializer_class = RoomSerializer
    lookup_field = "slug"


@extend_schema_view(
    get=extend_schema(
        parameters=[
            OpenApiParameter(
                "after", OpenApiTypes.INT, description="Only messages with a larger id, oldest first (catch-up)."
            )
        ]
    )
)
class RoomMessagesView(generics.ListCreateAPIView[Message]):
    """A room's messages (anyone reads); post one (authenticated users). A posted message
    is stored, then delivered to every socket in the room, on whichever worker or replica."""

    serializer_class = MessageSerializer
    permission_classes = [IsAuthenticatedOrReadOnly]
    pagination_class = MessageCursorPagination

    def room(self) -> Room:
        if not hasattr(self, "_room"):
            self._room = get_object_or_404(Room, slug=self.kwargs["slug"])
        return self._room

    def get_queryset(self) -> QuerySet[Message]:
        queryset = Message.objects.filter(room=self.room()).select_related("room", "author")
        query = AfterQuerySerializer(data=self.request.query_params)
        query.is_valid(raise_exception=True)
        after = query.validated_data.get("after")
        if after is not None:
            queryset = queryset.filter(id__gt=after)
        return queryset

    def perform_create(self, serializer: serializers.BaseSerializer[Message]) -> None:
        room = self.room()
        message = serializer.save(room=room, author=self.request.user)
        payload = message_payload(message)
        # Only once the row is committed, so a client never hears of a message it cannot
        # then fetch. This sync view runs in a worker thread under ASGI; async_to_sync
        # hands the send to the worker's event loop (its pooled Redis connections) and
        # waits, so the 201 goes out after the broadcast. robust: if Redis is down the
        # failure is logged and the 201 still stands: the row is stored, and clients
        # fetch it with ?after= when their sockets come back.
        transaction.on_commit(lambda: async_to_sync(publish)(room.group_name, payload), robust=True)

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        self.room()  # 404 for an unknown room before validating the body
        return super().create(request, *args, **kwargs)
