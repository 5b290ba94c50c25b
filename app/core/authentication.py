"""The API's token authentication (REST_FRAMEWORK's DEFAULT_AUTHENTICATION_CLASSES, and
the socket login in core/websocket.py). A module of its own: DRF imports it while its
views module loads, so it imports no view."""

from __future__ import annotations

from typing import Any

from knox import auth
from rest_framework import exceptions


class TokenAuthentication(auth.TokenAuthentication):
    """django-rest-knox's, except that a token that is not UTF-8 is a 401 like any other
    invalid token (knox decodes it unguarded: a 500 with a traceback)."""

    def authenticate_credentials(self, token: bytes) -> tuple[Any, Any]:
        try:
            token.decode("utf-8")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("Invalid token.") from None
        return super().authenticate_credentials(token)  # type: ignore[no-any-return]
