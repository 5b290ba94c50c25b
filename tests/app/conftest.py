"""App-layer fixtures: the real Redis channel layer and cache, emptied between tests;
users with API tokens; a room."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from channels.layers import get_channel_layer
from django.contrib.auth.models import User
from django.core.cache import cache
from knox.models import AuthToken
from rest_framework.test import APIClient

from chat.models import Room


@pytest.fixture(autouse=True)
def _plain_static_storage(settings: Any) -> None:
    # The hashed-name manifest only exists in the image (collectstatic at build).
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


@pytest.fixture(autouse=True)
def _own_export_folder(settings: Any, tmp_path: Path) -> None:
    settings.EXPORT_ROOT = tmp_path / "exports"


@pytest.fixture(autouse=True)
def _empty_cache() -> Iterator[None]:
    # Throttle counters live in Redis and would carry over between tests.
    cache.clear()
    yield
    cache.clear()


@pytest_asyncio.fixture
async def channel_layer() -> AsyncIterator[Any]:
    layer = get_channel_layer()
    assert type(layer).__name__ == "RedisChannelLayer", "app tests must run on the real Redis layer"
    await layer.flush()
    yield layer
    await layer.flush()
    await layer.close_pools()


@pytest.fixture
def alice(django_user_model: type[User]) -> User:
    return django_user_model.objects.create_user("alice", password="alice-password")


@pytest.fixture
def bob(django_user_model: type[User]) -> User:
    return django_user_model.objects.create_user("bob", password="bob-password")


@pytest.fixture
def alice_token(alice: User) -> str:
    return str(AuthToken.objects.create(alice)[1])


@pytest.fixture
def bob_token(bob: User) -> str:
    return str(AuthToken.objects.create(bob)[1])


@pytest.fixture
def lobby(alice: User) -> Room:
    return Room.objects.create(slug="lobby", title="The lobby", created_by=alice)


@pytest.fixture
def api() -> APIClient:
    return APIClient()


@pytest.fixture
def alice_api(alice_token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {alice_token}")
    return client
