"""The base of the project's own Django middleware, and the one that keeps answers to a
client's credentials out of caches."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.http import HttpRequest, HttpResponseBase
from django.utils.cache import add_never_cache_headers


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


class NoStoreWithCredentialsMiddleware(SyncAndAsyncMiddleware):
    """An answer to a request that carried credentials (an Authorization header or a
    session cookie) gets `Cache-Control: no-store` (with Django's other never-cache
    headers), unless the view set its own: no cache on the way keeps one user's answer."""

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self.acall(request)
        return self.private(request, self.get_response(request))

    async def acall(self, request: HttpRequest) -> Any:
        return self.private(request, await self.get_response(request))

    @staticmethod
    def private(request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
        credentials = "HTTP_AUTHORIZATION" in request.META or settings.SESSION_COOKIE_NAME in request.COOKIES
        if credentials and not response.has_header("Cache-Control"):
            add_never_cache_headers(response)
        return response
