"""The local cache tier across two real processes sharing PostgreSQL and Redis.

A write through process A reaches B's local copy through Redis's invalidation channel; once B
shows the write it never shows the old value again. While B's channel is down (its
subscription killed and refused), B answers from Redis only, so a write through A during the
outage is seen by B's very next read; when the channel returns B uses its local tier again.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis

from tests.helpers import authed_user, publish
from tests.resilience.pair import eventually, metric, running_pair
from tests.resilience.servers import InkwellProcess, RedisServer

pytestmark = pytest.mark.slow

READS_AFTER = 50


@pytest.fixture
def pair(
    pg_database: str, private_redis: RedisServer, tmp_path: Path
) -> Iterator[tuple[InkwellProcess, InkwellProcess]]:
    # Local copies that outlive the test: only an invalidation can make B change its answer.
    with running_pair(
        pg_database, private_redis.url, tmp_path, CACHE_LOCAL_TTL_SECONDS="600"
    ) as pair:
        yield pair


@pytest.fixture
async def redis(private_redis: RedisServer) -> AsyncIterator[Redis]:
    client = Redis.from_url(private_redis.url)
    try:
        yield client
    finally:
        await client.execute_command("ACL", "SETUSER", "default", "+subscribe")
        await client.aclose()


async def _local_hits(client: httpx.AsyncClient, cache: str = "content") -> float:
    return await metric(client, "cache_requests_total", cache=f"{cache}_local", result="hit")


async def _held_locally(client: httpx.AsyncClient, url: str, cache: str = "content") -> None:
    """Read `url` until an answer comes from the local tier (the channel is up by then)."""

    async def answered_locally() -> bool:
        before = await _local_hits(client, cache)
        assert (await client.get(url)).status_code == 200
        return await _local_hits(client, cache) > before

    await eventually(answered_locally, what=f"a local hit on {url}")


async def test_a_write_through_one_process_is_never_read_stale_through_the_other_once_seen(
    pair: tuple[InkwellProcess, InkwellProcess],
) -> None:
    a, b = pair
    async with (
        httpx.AsyncClient(base_url=a.url, timeout=10) as via_a,
        httpx.AsyncClient(base_url=b.url, timeout=10) as via_b,
    ):
        author = await authed_user(via_a)
        item = await publish(via_a, author, title="First")
        url = f"/api/v1/content/{item['id']}"
        await _held_locally(via_b, url)
        await _held_locally(via_b, "/api/v1/content", "content_list")

        changed = await via_a.patch(url, json={"title": "Second"}, headers=author["headers"])
        assert changed.status_code == 200, changed.text
        added = await publish(via_a, author, title="Another")

        async def item_changed() -> bool:
            return (await via_b.get(url)).json()["title"] == "Second"

        async def page_changed() -> bool:
            page = (await via_b.get("/api/v1/content")).json()
            return any(entry["id"] == added["id"] for entry in page["items"])

        await eventually(item_changed, what="B showing the edit")
        await eventually(page_changed, what="B's first page showing the new item")
        for _ in range(READS_AFTER):
            assert (await via_b.get(url)).json()["title"] == "Second"
            page = (await via_b.get("/api/v1/content")).json()
            assert any(entry["id"] == added["id"] for entry in page["items"])
        assert await _local_hits(via_b) > 0  # the reads after were local ones


async def test_with_its_channel_down_a_process_serves_no_local_copy(
    pair: tuple[InkwellProcess, InkwellProcess], redis: Redis
) -> None:
    a, b = pair
    async with (
        httpx.AsyncClient(base_url=a.url, timeout=10) as via_a,
        httpx.AsyncClient(base_url=b.url, timeout=10) as via_b,
    ):
        author = await authed_user(via_a)
        item = await publish(via_a, author, title="Before")
        url = f"/api/v1/content/{item['id']}"
        await _held_locally(via_b, url)

        # Sever every subscription and refuse new ones: the channel stays down.
        await redis.execute_command("ACL", "SETUSER", "default", "-subscribe")
        await redis.execute_command("CLIENT", "KILL", "TYPE", "pubsub")

        changed = await via_a.patch(url, json={"title": "During"}, headers=author["headers"])
        assert changed.status_code == 200, changed.text
        local_before = await _local_hits(via_b)
        for _ in range(10):
            read = await via_b.get(url)
            assert read.json()["title"] == "During"
            assert read.headers["cache-status"] in ("inkwell; hit", "inkwell; fwd=miss")
        assert await _local_hits(via_b) == local_before  # every answer came from Redis

        await redis.execute_command("ACL", "SETUSER", "default", "+subscribe")
        await _held_locally(via_b, url)  # resubscribed: the local tier is used again
        assert (await via_b.get(url)).json()["title"] == "During"
