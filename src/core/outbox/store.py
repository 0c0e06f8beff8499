"""The outbox table's statements, shared by the embedded runner and the relay.

They run without client spans (`quiet`): a runner polls every 200 ms, and a span per poll
would bury the traces that matter; the handling of an event has its own span, joined to the
request's trace. Reads take an autocommit connection (on SQLite, no write lock to read).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from opentelemetry.instrumentation.utils import suppress_instrumentation
from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from src.core.db.engines import primary_reader
from src.core.outbox.delivery import Envelope
from src.core.tables import outbox, processed_events, utcnow

# Delivered rows are kept this long (what was just delivered can still be looked at), then
# purged; dedupe keys long enough to outlive any redelivery (a claimed entry, a replayed
# stream).
DELIVERED_RETENTION = dt.timedelta(seconds=60)
PROCESSED_RETENTION = dt.timedelta(days=7)


def envelope_of(row: Any) -> Envelope:
    return Envelope(
        event_id=row.event_id,
        event_type=row.event_type,
        aggregate_id=row.aggregate_id,
        payload=row.payload,
        committed_at=row.committed_at,
        traceparent=row.traceparent,
        tracestate=row.tracestate,
        position=row.position,
    )


async def undelivered(engine: AsyncEngine, limit: int) -> list[Any]:
    """The oldest rows neither delivered nor dead, in position order."""
    with suppress_instrumentation():
        async with primary_reader(engine) as connection:
            result = await connection.execute(
                select(outbox)
                .where(outbox.c.delivered_at.is_(None), outbox.c.dead_at.is_(None))
                .order_by(outbox.c.position)
                .limit(limit)
            )
            return list(result)


async def count_undelivered(engine: AsyncEngine) -> int:
    with suppress_instrumentation():
        async with primary_reader(engine) as connection:
            count = await connection.scalar(
                select(func.count())
                .select_from(outbox)
                .where(outbox.c.delivered_at.is_(None), outbox.c.dead_at.is_(None))
            )
    return int(count or 0)


async def mark_delivered(engine: AsyncEngine, positions: list[int]) -> None:
    if not positions:
        return
    with suppress_instrumentation():
        async with engine.begin() as connection:
            await connection.execute(
                update(outbox).where(outbox.c.position.in_(positions)).values(delivered_at=utcnow())
            )


async def mark_failed(
    engine: AsyncEngine,
    position: int,
    attempts: int,
    reason: str,
    *,
    dead: bool,
    retry_at: dt.datetime | None,
) -> None:
    values: dict[str, Any] = {"attempts": attempts, "last_error": reason[:2000]}
    if dead:
        values["dead_at"] = utcnow()
    else:
        values["next_attempt_at"] = retry_at
    with suppress_instrumentation():
        async with engine.begin() as connection:
            await connection.execute(
                update(outbox).where(outbox.c.position == position).values(values)
            )


async def purge(engine: AsyncEngine) -> int:
    """Delete delivered rows past their retention, and old dedupe keys; rows removed."""
    now = utcnow()
    with suppress_instrumentation():
        async with engine.begin() as connection:
            delivered = await connection.execute(
                delete(outbox).where(outbox.c.delivered_at < now - DELIVERED_RETENTION)
            )
            await connection.execute(
                delete(processed_events).where(
                    processed_events.c.processed_at < now - PROCESSED_RETENTION
                )
            )
    return int(delivered.rowcount or 0)
