"""A handler that fails only because the database is unreachable uses none of the event's
attempts: once the database is back the event is applied, never dead-lettered."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import text

from src.core.db.uow import UnitOfWork
from src.core.events import EventHandlers, EventMeta
from src.core.outbox.stream import dead_stream_key
from src.slices.signup.events import UserSignedUp
from src.worker import Worker
from tests.conftest import (
    RUN_ID,
    TEST_REDIS_URL,
    Backend,
    _empty_tables,
    _forget_redis_keys,
    _reachable_redis,
)
from tests.events.conftest import app_with_handlers, eventually, outbox_rows, processed
from tests.helpers import sign_up

OUTAGE_CALLS = 5  # more than EVENT_MAX_ATTEMPTS below


def flaky(calls: list[uuid.UUID]) -> EventHandlers:
    async def handle(uow: UnitOfWork, event: UserSignedUp, meta: EventMeta) -> None:
        calls.append(meta.event_id)
        if len(calls) <= OUTAGE_CALLS:
            raise ConnectionRefusedError("the database is unreachable")
        await uow.execute(text("SELECT 1"))

    handlers = EventHandlers()
    handlers.subscribe("test.flaky", UserSignedUp, handle)
    return handlers


async def test_an_outage_uses_no_attempt_embedded(backend: Backend) -> None:
    await _empty_tables(backend.database_url)
    calls: list[uuid.UUID] = []
    async with app_with_handlers(
        backend, flaky(calls), redis_url=None, event_max_attempts=2
    ) as client:
        await sign_up(client)

        async def applied() -> bool:
            return len(await processed(client)) == 1

        await eventually(applied)
        (row,) = await outbox_rows(client)
        assert row["dead_at"] is None
        assert row["attempts"] == 0
        assert len(calls) == OUTAGE_CALLS + 1


async def test_an_outage_uses_no_attempt_with_a_worker(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    if backend.redis_url is None and await _reachable_redis() is not None:
        pytest.skip("Redis is unreachable")
    monkeypatch.setattr("src.core.outbox.stream.REQUEUE_PAUSE_SECONDS", 0.05)
    await _empty_tables(backend.database_url)
    calls: list[uuid.UUID] = []
    prefix = f"inkwell-test-{RUN_ID}:outage{uuid.uuid4().hex[:8]}:"
    settings: dict[str, Any] = {
        "redis_url": backend.redis_url or TEST_REDIS_URL,
        "redis_key_prefix": prefix,
        "event_max_attempts": 2,
        "event_claim_seconds": 0.2,
    }
    handlers = flaky(calls)
    try:
        async with app_with_handlers(backend, handlers, **settings) as client:
            worker = Worker(backend.settings(**settings), handlers)
            async with worker.app.router.lifespan_context(worker.app):
                await sign_up(client)

                async def applied() -> bool:
                    return len(await processed(client)) == 1

                await eventually(applied)
                redis = worker.app.state.resources.redis
                assert await redis.xlen(dead_stream_key(prefix)) == 0
        assert len(calls) == OUTAGE_CALLS + 1
    finally:
        await _forget_redis_keys(prefix)
