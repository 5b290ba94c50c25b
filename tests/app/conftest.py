"""App-layer fixtures: the real Redis channel layer, emptied between tests."""

from collections.abc import AsyncIterator

import pytest_asyncio
from channels.layers import get_channel_layer


@pytest_asyncio.fixture
async def channel_layer() -> AsyncIterator[object]:
    layer = get_channel_layer()
    assert type(layer).__name__ == "RedisChannelLayer", "app tests must run on the real Redis layer"
    await layer.flush()
    yield layer
    await layer.flush()
    await layer.close_pools()
