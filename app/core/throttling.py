"""A rate limit that holds under concurrency, shared by every process and replica: an
atomic counter in Redis (docs/design.md: Security and configuration says why)."""

from __future__ import annotations

import functools
from typing import Any

from django.core.cache import caches
from django.core.cache.backends.base import BaseCache
from rest_framework.throttling import SimpleRateThrottle


@functools.cache
def shared_cache() -> BaseCache:
    """The default cache, one client per process: Django's `cache` is a new client, with a
    new Redis connection, in every request's context (docs/design.md: Security)."""
    return caches.create_connection("default")


def new_cache_settings(setting: str, **kwargs: object) -> None:
    """setting_changed receiver (tests): a new CACHES gets a new client."""
    if setting == "CACHES":
        shared_cache.cache_clear()


class AtomicRateThrottle(SimpleRateThrottle):
    """At most the `scope`'s rate (REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]) of attempts
    per identity: the client address for a request, or what `allow` is given."""

    @property
    def cache(self) -> BaseCache:  # type: ignore[override]
        """DRF's documented `cache` attribute: one client per process (shared_cache)."""
        return shared_cache()

    # Set by SimpleRateThrottle.__init__ from the rate (DRF's stubs leave them out).
    num_requests: int
    duration: int
    retry_after = 0.0

    def get_cache_key(self, request: Any, view: Any) -> str:
        return str(self.get_ident(request))

    def allow_request(self, request: Any, view: Any) -> bool:
        return self.allow(self.get_cache_key(request, view))

    def allow(self, ident: str) -> bool:
        if self.rate is None:
            return True
        key = self.cache_format % {"scope": self.scope, "ident": ident}
        now = self.timer()
        # The window opens with the first attempt and closes `duration` later (SET NX, with
        # that expiry); INCR keeps the expiry.
        self.cache.add(f"{key}:opened", now, self.duration)
        self.cache.add(key, 0, self.duration)
        try:
            attempt = self.cache.incr(key)
        except ValueError:  # the window closed between the two calls: this opens the next
            self.cache.add(key, 1, self.duration)
            attempt = 1
        opened = self.cache.get(f"{key}:opened", now)
        self.retry_after = max(1.0, opened + self.duration - now)
        return bool(attempt <= self.num_requests)

    def wait(self) -> float:
        return float(self.retry_after)


class LoginThrottle(AtomicRateThrottle):
    """Login attempts per client address (AUTH_THROTTLE_RATE), on both logins (core.auth)."""

    scope = "auth"
