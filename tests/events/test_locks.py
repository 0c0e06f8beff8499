"""At most one reader of the outbox: the PostgreSQL advisory lock and the Redis lease."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as redis_client
from sqlalchemy.ext.asyncio import AsyncEngine

from src.cli import main as cli
from src.core.db.engines import create_engine
from src.core.outbox.locks import AdvisoryLock, RedisLease
from tests.conftest import RUN_ID, TEST_REDIS_URL, Backend, _reachable_redis


@pytest.fixture
async def pg_engine(backend: Backend) -> AsyncIterator[AsyncEngine]:
    if not backend.is_postgres:
        pytest.skip("the advisory lock is PostgreSQL's")
    engine = create_engine(backend.database_url, backend.settings(), "write")
    try:
        yield engine
    finally:
        await engine.dispose()


async def test_one_process_holds_the_advisory_lock_at_a_time(pg_engine: AsyncEngine) -> None:
    key = uuid.uuid4().int & 0x7FFF_FFFF
    first, second = AdvisoryLock(pg_engine, key), AdvisoryLock(pg_engine, key)
    try:
        assert await first.hold()
        assert not await second.hold()
        assert await first.hold()  # kept while held
        await first.release()
        assert await second.hold()
    finally:
        await first.release()
        await second.release()


async def test_one_process_holds_the_redis_lease_at_a_time() -> None:
    if await _reachable_redis() is not None:
        pytest.skip("Redis is unreachable")
    client = redis_client.from_url(TEST_REDIS_URL)
    key = f"inkwell-test-{RUN_ID}:lease{uuid.uuid4().hex[:8]}"
    first, second = RedisLease(client, key, 5.0), RedisLease(client, key, 5.0)
    try:
        assert await first.hold()
        assert not await second.hold()
        assert await first.hold()  # renewed while it is still ours
        await first.release()
        assert await second.hold()
        await client.delete(key)  # the lease expired (or was taken): the holder notices
        assert await first.hold()
        assert not await second.hold()
    finally:
        await first.release()
        await second.release()
        await client.delete(key)
        await client.aclose()


def test_the_worker_refuses_to_start_without_redis(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    assert cli(["worker"]) == 2
    assert "needs REDIS_URL" in capsys.readouterr().err
