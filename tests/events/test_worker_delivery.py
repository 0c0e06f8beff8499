"""With Redis: the serve process only records; the worker (in this process here; as a real
process in tests/resilience/test_event_delivery.py) relays the outbox to the stream and
applies each entry once per handler."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import redis.asyncio as redis_client
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from src.core.outbox.stream import GROUP, dead_stream_key, stream_key
from src.worker import Worker
from tests.conftest import (
    RUN_ID,
    TEST_REDIS_URL,
    Backend,
    _empty_tables,
    _forget_redis_keys,
    _reachable_redis,
)
from tests.events.conftest import (
    Calls,
    app_with_handlers,
    eventually,
    handlers_for_tests,
    outbox_rows,
    processed,
)
from tests.helpers import sign_up


@asynccontextmanager
async def api_and_worker(
    backend: Backend, calls: Calls, **overrides: Any
) -> AsyncIterator[tuple[httpx.AsyncClient, Worker]]:
    # SQLite + Redis too: the relay's lock is then a Redis lease.
    redis_url = backend.redis_url or TEST_REDIS_URL
    if backend.redis_url is None and await _reachable_redis() is not None:
        pytest.skip("Redis is unreachable")
    await _empty_tables(backend.database_url)
    prefix = f"inkwell-test-{RUN_ID}:worker{uuid.uuid4().hex[:8]}:"
    settings = {
        "redis_key_prefix": prefix,
        "redis_url": redis_url,
        "event_max_attempts": 3,
        **overrides,
    }
    handlers = handlers_for_tests(calls)
    try:
        async with app_with_handlers(backend, handlers, **settings) as client:
            worker = Worker(backend.settings(**settings), handlers)
            async with worker.app.router.lifespan_context(worker.app):
                yield client, worker
    finally:
        await _forget_redis_keys(prefix)


async def stream_length(backend: Backend, key: str) -> int:
    client = redis_client.from_url(backend.redis_url or TEST_REDIS_URL)
    try:
        return int(await client.xlen(key))
    finally:
        await client.aclose()


async def test_the_serve_process_does_not_handle_events_with_redis(
    backend: Backend, calls: Calls
) -> None:
    if backend.redis_url is None:
        pytest.skip("this backend has no Redis")
    await _empty_tables(backend.database_url)
    async with app_with_handlers(backend, handlers_for_tests(calls)) as client:
        assert client.app.state.event_runner is None  # type: ignore[attr-defined]
        await sign_up(client)
        (row,) = await outbox_rows(client)
        assert row["delivered_at"] is None
    assert calls.seen == []


async def test_a_signup_is_relayed_and_handled_once(backend: Backend, calls: Calls) -> None:
    async with api_and_worker(backend, calls) as (client, worker):
        user = await sign_up(client)

        async def handled() -> bool:
            return len(await processed(client)) == 2

        await eventually(handled)
        (row,) = await outbox_rows(client)
        assert row["delivered_at"] is not None  # relayed
        assert [str(e.user_id) for _, _, e in calls.of("test.signed_up")] == [user["id"]]
        prefix = worker.settings.redis_key_prefix
        assert await stream_length(backend, stream_key(prefix)) >= 0
        health = await _probe(worker, "/ready")
        assert health.status_code == 200
        assert set(health.json()["checks"]) >= {"database", "redis"}


async def _probe(worker: Worker, path: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=worker.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://worker") as probe:
        return await probe.get(path)


async def test_a_duplicated_stream_entry_is_a_no_op(backend: Backend, calls: Calls) -> None:
    async with api_and_worker(backend, calls) as (client, worker):
        await sign_up(client)

        async def handled() -> bool:
            return len(await processed(client)) == 2

        await eventually(handled)
        # A relay that died between its XADD and its mark relays the row again.
        (row,) = await outbox_rows(client)
        from src.core.outbox.stream import entry_of
        from tests.events.test_embedded_delivery import _Row

        r = redis_client.from_url(backend.redis_url or TEST_REDIS_URL)
        try:
            await r.xadd(stream_key(worker.settings.redis_key_prefix), entry_of(_Row(row)))  # type: ignore[arg-type]
        finally:
            await r.aclose()
        assert worker.consumer is not None
        consumer = worker.consumer

        async def acked() -> bool:
            return consumer.handled == 2 and await consumer.pending() == 0

        await eventually(acked)
        assert len(calls.of("test.signed_up")) == 1
        assert await processed(client) == sorted(
            [("test.poison", row["event_id"]), ("test.signed_up", row["event_id"])]
        )


async def test_a_poison_event_goes_to_the_dead_letter_stream(
    backend: Backend, calls: Calls
) -> None:
    async with api_and_worker(backend, calls, event_claim_seconds=0.2) as (client, worker):
        await sign_up(client, name="Poison Pill")
        dead_key = dead_stream_key(worker.settings.redis_key_prefix)

        async def dead() -> bool:
            return await stream_length(backend, dead_key) == 1

        await eventually(dead)
        assert len(calls.of("test.poison")) == 3  # EVENT_MAX_ATTEMPTS
        r = redis_client.from_url(backend.redis_url or TEST_REDIS_URL)
        try:
            ((_, fields),) = await r.xrange(dead_key)
            summary = await r.xpending(stream_key(worker.settings.redis_key_prefix), GROUP)
        finally:
            await r.aclose()
        assert b"test.poison: RuntimeError" in fields[b"reason"]
        assert summary["pending"] == 0  # acknowledged: never delivered again
        metrics = worker.app.state.runtime.metrics.registry
        assert (
            metrics.get_sample_value(
                "events_processed_total", {"handler": "test.poison", "outcome": "dead_lettered"}
            )
            == 1
        )
        assert len(calls.of("test.signed_up")) == 1


async def test_the_handling_span_joins_the_requests_trace_through_the_stream(
    backend: Backend, calls: Calls, recorded_spans: InMemorySpanExporter
) -> None:
    async with api_and_worker(backend, calls) as (client, _worker):
        trace_id = uuid.uuid4().hex
        response = await client.post(
            "/api/v1/signup",
            json={"name": "Traced", "email": f"t.{uuid.uuid4().hex[:8]}@example.com",
                  "password": "correct horse battery"},
            headers={"traceparent": f"00-{trace_id}-b7ad6b7169203331-01"},
        )  # fmt: skip
        assert response.status_code == 201

        def handler_spans() -> list[Any]:
            return [
                s for s in recorded_spans.get_finished_spans() if s.name == "event test.signed_up"
            ]

        async def traced() -> bool:
            return bool(handler_spans())

        await eventually(traced)
        (span,) = handler_spans()
        assert format(span.context.trace_id, "032x") == trace_id
