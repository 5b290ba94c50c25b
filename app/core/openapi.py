"""drf-spectacular's description of the project's own authentication class (imported by
CoreConfig.ready, which registers it): the API token scheme, as for knox's own class."""

from __future__ import annotations

from drf_spectacular.contrib.knox_auth_token import KnoxTokenScheme


class TokenScheme(KnoxTokenScheme):  # type: ignore[no-untyped-call]
    target_class = "core.authentication.TokenAuthentication"
