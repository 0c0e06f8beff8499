"""With Redis the API only records events; `inkwell worker` (in this process here) relays them
to the stream and its handlers make the notifications: the same answers as embedded."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from src.worker import Worker
from tests.conftest import (
    RUN_ID,
    TEST_REDIS_URL,
    Backend,
    _forget_redis_keys,
    _reachable_redis,
)
from tests.helpers import authed_user, follow, publish


@pytest.fixture
async def client(
    make_client: Callable[..., Any], backend: Backend
) -> AsyncIterator[httpx.AsyncClient]:
    """The API on Redis (it delivers nothing itself) and a worker with the real handlers."""
    if backend.redis_url is None and await _reachable_redis() is not None:
        pytest.skip("Redis is unreachable")
    prefix = f"inkwell-test-{RUN_ID}:notify{uuid.uuid4().hex[:8]}:"
    settings = {"redis_url": backend.redis_url or TEST_REDIS_URL, "redis_key_prefix": prefix}
    try:
        async with make_client(**settings) as http:
            worker = Worker(backend.settings(**settings))
            async with worker.app.router.lifespan_context(worker.app):
                yield http
    finally:
        await _forget_redis_keys(prefix)


async def _until(
    client: httpx.AsyncClient, user: dict[str, Any], count: int, timeout: float = 20.0
) -> list[dict[str, Any]]:
    """The user's notifications once there are `count` (the deadline only turns a hang into a
    failure)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        response = await client.get("/api/v1/notifications", headers=user["headers"])
        assert response.status_code == 200, response.text
        items: list[dict[str, Any]] = response.json()["items"]
        if len(items) >= count:
            return items
        assert asyncio.get_running_loop().time() < deadline, f"never {count}: {items}"
        await asyncio.sleep(0.05)


async def test_a_follow_and_a_publication_notify_through_the_worker(
    client: httpx.AsyncClient,
) -> None:
    author = await authed_user(client)
    followers = [await authed_user(client) for _ in range(2)]
    for follower in followers:
        await follow(client, follower, author)
    await follow(client, followers[0], author)  # repeated: nobody is told twice
    item = await publish(client, author)
    for follower in followers:
        (notification,) = await _until(client, follower, 1)
        assert notification["type"] == "content_published"
        assert notification["content"]["id"] == item["id"]
    told = await _until(client, author, 2)
    assert sorted(n["actor"]["id"] for n in told) == sorted(f["id"] for f in followers)
    assert {n["type"] for n in told} == {"new_follower"}
