"""The real Redis stores, returns and expires values."""

from __future__ import annotations

import asyncio
import uuid


async def test_set_then_get_returns_the_value(redis_client) -> None:
    key = f"test:{uuid.uuid4().hex}"
    await redis_client.set(key, b"value", ex=30)
    assert await redis_client.get(key) == b"value"
    await redis_client.delete(key)


async def test_value_expires_after_its_ttl(redis_client) -> None:
    key = f"test:{uuid.uuid4().hex}"
    await redis_client.set(key, b"short-lived", px=300)
    assert 0 < await redis_client.pttl(key) <= 300
    await asyncio.sleep(0.5)
    assert await redis_client.get(key) is None
    assert await redis_client.exists(key) == 0
