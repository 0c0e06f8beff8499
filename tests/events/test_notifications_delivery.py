"""The slices' own handlers, delivered by the outbox through the HTTP API: a follow and a
publication each give exactly one notification per recipient — embedded on both backends'
databases, and with Redis through a worker."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from src.main import build_handlers
from src.worker import Worker
from tests.conftest import RUN_ID, Backend, _empty_tables, _forget_redis_keys
from tests.events.conftest import app_with_handlers, eventually, processed
from tests.helpers import authed_user, publish


@asynccontextmanager
async def delivering(backend: Backend, mode: str) -> AsyncIterator[httpx.AsyncClient]:
    await _empty_tables(backend.database_url)
    if mode == "embedded":
        async with app_with_handlers(backend, build_handlers(), redis_url=None) as client:
            yield client
        return
    if backend.redis_url is None:
        pytest.skip("this backend has no Redis")
    prefix = f"inkwell-test-{RUN_ID}:notify{uuid.uuid4().hex[:8]}:"
    try:
        async with app_with_handlers(backend, build_handlers(), redis_key_prefix=prefix) as client:
            worker = Worker(backend.settings(redis_key_prefix=prefix), build_handlers())
            async with worker.app.router.lifespan_context(worker.app):
                yield client
    finally:
        await _forget_redis_keys(prefix)


async def notifications_of(client: httpx.AsyncClient, user: dict[str, Any]) -> list[Any]:
    response = await client.get("/api/v1/notifications", headers=user["headers"])
    assert response.status_code == 200, response.text
    items: list[Any] = response.json()["items"]
    return items


@pytest.mark.parametrize("mode", ["embedded", "worker"])
async def test_a_follow_and_a_publication_notify_once(backend: Backend, mode: str) -> None:
    async with delivering(backend, mode) as client:
        author = await authed_user(client, name="Author One")
        readers = [await authed_user(client) for _ in range(2)]
        for reader in readers:
            answer = await client.put(
                f"/api/v1/users/{author['id']}/follow", headers=reader["headers"]
            )
            assert answer.status_code == 204, answer.text
        again = await client.put(
            f"/api/v1/users/{author['id']}/follow", headers=readers[0]["headers"]
        )
        assert again.status_code == 204  # a repeated PUT makes no second notification
        item = await publish(client, author)

        async def delivered() -> bool:
            names = [handler for handler, _ in await processed(client)]
            return (
                names.count("notifications.new_follower") == 2
                and names.count("notifications.content_published") == 1
            )

        await eventually(delivered)
        followed = await notifications_of(client, author)
        assert sorted(n["actor"]["id"] for n in followed) == sorted(r["id"] for r in readers)
        assert {n["type"] for n in followed} == {"new_follower"}
        for reader in readers:
            (published,) = await notifications_of(client, reader)
            assert published["type"] == "content_published"
            assert published["content"]["id"] == item["id"]
            assert published["actor"]["id"] == author["id"]
