"""The base of the project's own Django middleware."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest


class SyncAndAsyncMiddleware:
    """A middleware Django runs as the handler runs, never adapted: under the threaded WSGI
    handler of core.http_threads in the request's thread, under Django's ASGI handler on the
    event loop (Django's MiddlewareMixin would move its hooks to a thread there). A
    subclass's `__call__` answers both ways, looking at `is_async`."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        raise NotImplementedError
