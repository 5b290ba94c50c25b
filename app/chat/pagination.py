"""Cursor pagination of a room's messages: the newest page first, `next` leading to older
ones; with `?after=<id>`, the messages after it, `next` leading to newer ones (catching
up after a reconnect). Pages list oldest to newest; cursors stay stable as messages come.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db.models import QuerySet
from rest_framework.pagination import CursorPagination, PageNumberPagination
from rest_framework.request import Request
from rest_framework.views import APIView


class MessageCursorPagination(CursorPagination):
    page_size = 50
    max_page_size = 200
    page_size_query_param = "page_size"
    ordering = "-id"

    def get_ordering(self, request: Request, queryset: QuerySet[Any], view: APIView | None) -> tuple[str, ...]:
        self.newest_first = "after" not in request.query_params
        return ("-id",) if self.newest_first else ("id",)

    def paginate_queryset(
        self, queryset: QuerySet[Any] | Sequence[Any], request: Request, view: APIView | None = None
    ) -> list[Any]:
        page = list(super().paginate_queryset(queryset, request, view) or [])
        return page[::-1] if self.newest_first else page


class RoomPagination(PageNumberPagination):
    page_size = 100
