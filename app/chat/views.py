"""The REST API of stored rooms and their messages."""

from __future__ import annotations

from typing import Any, cast

from asgiref.sync import async_to_sync
from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Q, QuerySet, Sum
from django.http import FileResponse, HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import generics, serializers, status
from rest_framework.exceptions import Throttled
from rest_framework.permissions import IsAuthenticated, IsAuthenticatedOrReadOnly
from rest_framework.request import Request
from rest_framework.response import Response

from chat import exports
from chat.broadcast import message_payload, publish
from chat.models import Message, Room, RoomExport
from chat.pagination import MessageCursorPagination, RoomPagination
from chat.serializers import AfterQuerySerializer, MessageSerializer, RoomExportSerializer, RoomSerializer
from chat.tasks import export_room
from core.throttling import AtomicRateThrottle


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
        # Once the row is committed (no client hears of a message it cannot fetch), on the
        # worker's event loop, before the 201; with Redis down the failure is logged and the
        # 201 stands (clients catch up with ?after=). docs/design.md: Posting over REST.
        transaction.on_commit(lambda: async_to_sync(publish)(room.group_name, payload), robust=True)

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        self.room()  # 404 for an unknown room before validating the body
        return super().create(request, *args, **kwargs)


class ExportCreateThrottle(AtomicRateThrottle):
    """Exports created per user (EXPORT_CREATE_RATE); a reused one is not counted."""

    scope = "export_create"


class RoomExportCreateView(generics.GenericAPIView[RoomExport]):
    """Ask for an export of the room's whole history (logged-in users): 202, and the worker
    service builds it; the requester's sockets hear when it is done, as its status URL
    says. The requester's last export of an unchanged room is answered instead (200 if
    ready, else 202)."""

    serializer_class = RoomExportSerializer
    permission_classes = [IsAuthenticated]

    @extend_schema(request=None, responses={200: RoomExportSerializer, 202: RoomExportSerializer})
    def post(self, request: Request, slug: str) -> Response:
        room = get_object_or_404(Room, slug=slug)
        requester = cast(User, request.user)  # IsAuthenticated
        # The queue is a table in this same database: the task row commits with the export
        # row, or neither does (a rolled-back request enqueues nothing), and no worker sees
        # the task before the export it builds exists. The requester's row is locked first,
        # so one user's requests are checked one at a time (concurrent ones cannot all pass).
        with transaction.atomic():
            User.objects.select_for_update().filter(pk=requester.pk).exists()
            export = self.reusable(room, requester)
            reused = export is not None
            if export is None:
                self.check_limits(requester)
                export = RoomExport.objects.create(room=room, requested_by=requester)
                export.task_id = str(export_room.enqueue(str(export.pk)).id)
                export.save(update_fields=["task_id"])
        export.refresh_from_db()
        data = self.get_serializer(export).data
        ready = reused and export.status == RoomExport.Status.SUCCEEDED
        code = status.HTTP_200_OK if ready else status.HTTP_202_ACCEPTED
        return Response(data, status=code, headers={"Location": data["url"]})

    @staticmethod
    def reusable(room: Room, requester: User) -> RoomExport | None:
        """The requester's newest export of the room that is queued or holds every message."""
        newest = Message.objects.filter(room=room).order_by("-id").values_list("id", flat=True).first() or 0
        return (
            RoomExport.objects.filter(room=room, requested_by=requester)
            .filter(Q(status=RoomExport.Status.QUEUED) | Q(last_message_id__gte=newest))
            .exclude(status=RoomExport.Status.FAILED)
            .order_by("-requested_at")
            .first()
        )

    def check_limits(self, requester: User) -> None:
        """429 past MAX_UNFINISHED_PER_USER, EXPORT_USER_QUOTA_BYTES or EXPORT_CREATE_RATE."""
        own = RoomExport.objects.filter(requested_by=requester)
        unfinished = own.filter(status__in=[RoomExport.Status.QUEUED, RoomExport.Status.RUNNING]).count()
        if unfinished >= exports.MAX_UNFINISHED_PER_USER:
            raise Throttled(
                detail=f"You have {exports.MAX_UNFINISHED_PER_USER} exports queued or running; wait for one to finish."
            )
        stored = own.filter(status=RoomExport.Status.SUCCEEDED).aggregate(total=Sum("size"))["total"] or 0
        if stored >= settings.EXPORT_USER_QUOTA_BYTES:
            raise Throttled(
                detail=f"Your exports hold {stored} bytes, your quota is {settings.EXPORT_USER_QUOTA_BYTES}:"
                f" each is deleted {settings.EXPORT_RETENTION_HOURS} hours after it finished."
            )
        throttle = ExportCreateThrottle()
        if not throttle.allow(f"user-{requester.pk}"):
            raise Throttled(wait=throttle.wait())


class OwnExportMixin(generics.GenericAPIView[RoomExport]):
    def get_queryset(self) -> QuerySet[RoomExport]:
        """The requester's own exports (staff: everyone's); another user's is a 404."""
        exports_seen = RoomExport.objects.select_related("room")
        if not self.request.user.is_staff:
            exports_seen = exports_seen.filter(requested_by=cast(User, self.request.user))
        return exports_seen


class RoomExportDetailView(OwnExportMixin, generics.RetrieveAPIView[RoomExport]):
    """An export's status: queued, running, succeeded (with its download URL) or failed (with the error)."""

    serializer_class = RoomExportSerializer
    permission_classes = [IsAuthenticated]


class RoomExportDownloadView(OwnExportMixin):
    """The export's file: gzip-compressed JSON Lines (docs/api.md). 409 until it has succeeded."""

    serializer_class = RoomExportSerializer
    permission_classes = [IsAuthenticated]

    @extend_schema(responses={(200, "application/gzip"): OpenApiTypes.BINARY, 409: None})
    def get(self, request: Request, pk: str) -> HttpResponseBase:
        export = self.get_object()
        if export.status != RoomExport.Status.SUCCEEDED:
            return Response({"detail": f"The export is {export.status}."}, status=status.HTTP_409_CONFLICT)
        if settings.EXPORT_SERVED_BY == "nginx":
            # nginx sends the file from the `files` service (nginx/templates: locations.conf).
            response: HttpResponseBase = HttpResponse(content_type="application/gzip")
            response["X-Accel-Redirect"] = f"{exports.ACCEL_REDIRECT_PREFIX}{export.file_name}"
        else:
            try:
                file = exports.path_of(export).open("rb")
            except FileNotFoundError:
                return Response({"detail": "The export's file is gone."}, status=status.HTTP_410_GONE)
            response = FileResponse(file, content_type="application/gzip")
        response["Content-Disposition"] = f'attachment; filename="{export.room.slug}-{export.pk}.jsonl.gz"'
        return response
